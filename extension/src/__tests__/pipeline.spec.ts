/**
 * The Pipeline panel rendering real DOM in jsdom: only the server calls are
 * replaced (the panel's `api` option), and for the event stream only `fetch`,
 * so src/pipeline-api.ts reads a real streamed Response through
 * ServerConnection.makeRequest.
 */
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { emptyBuild, IPipelineEvent, IPipelineSnapshot, ITaskView } from '../pipeline-model';
import { PipelinePanel } from '../pipeline';
import { subscribe } from '../pipeline-api';
import { ApiError } from '../request';

jest.mock('@jupyterlab/ui-components', () => ({ LabIcon: class {} }));

const TASKS: ITaskView[] = [
  {
    name: 'prep',
    upstream: [],
    state: 'up to date',
    reasons: [],
    source: 'notebooks/prep.ipynb',
    executed: 'products/prep/prep.ipynb',
    failure: null
  },
  {
    name: 'fit',
    upstream: ['prep'],
    state: 'failed',
    reasons: ['product missing: products/fit/fit.ipynb'],
    source: 'notebooks/fit.ipynb',
    executed: 'products/_failed/fit/fit.ipynb',
    failure: { cell: 1, line: 'time.sleep(seconds)', error: 'KeyboardInterrupt: ', notebook: null }
  },
  {
    name: 'report',
    upstream: ['fit'],
    state: 'outdated',
    reasons: ['upstream fit is outdated'],
    source: 'notebooks/report.ipynb',
    executed: null,
    failure: null
  }
];

const SNAPSHOT: IPipelineSnapshot = { project: '.', tasks: TASKS, build: emptyBuild() };

function makePanel(api: Record<string, jest.Mock> = {}) {
  const opened: string[] = [];
  let push: (event: IPipelineEvent) => void = () => undefined;
  const close = jest.fn();
  const panel = new PipelinePanel({
    onOpen: async path => {
      opened.push(path);
    },
    api: {
      subscribe: (onEvent: (event: IPipelineEvent) => void) => {
        push = onEvent;
        return { close };
      },
      ...api
    }
  });
  MessageLoop.sendMessage(panel, Widget.Msg.AfterShow); // as when the panel is shown: it listens
  panel.handleEvent({ event: 'snapshot', ...SNAPSHOT });
  return { panel, opened, push: (e: IPipelineEvent) => push(e), close };
}

const q = (panel: PipelinePanel, selector: string) => panel.node.querySelector(selector) as HTMLElement;
const button = (panel: PipelinePanel, mode: string) =>
  q(panel, `.mlnb-pipeline-${mode}`) as HTMLButtonElement;

describe('PipelinePanel', () => {
  it('listens while shown, and stops when hidden', () => {
    const { panel, close } = makePanel();
    expect(close).not.toHaveBeenCalled();
    MessageLoop.sendMessage(panel, Widget.Msg.AfterHide);
    expect(close).toHaveBeenCalledTimes(1);
  });

  it('shows every task with its state, the DAG edges and why tasks are outdated', () => {
    const { panel } = makePanel();
    const nodes = [...panel.node.querySelectorAll('.mlnb-task')] as HTMLElement[];
    expect(nodes.map(n => [n.dataset.task, n.dataset.state])).toEqual([
      ['prep', 'up to date'],
      ['fit', 'failed'],
      ['report', 'outdated']
    ]);
    expect(q(panel, '[data-task="fit"] .mlnb-task-detail').textContent).toBe(
      'failed at cell 1: KeyboardInterrupt: '
    );
    const edges = [...panel.node.querySelectorAll('.mlnb-pipeline-edge')] as SVGPathElement[];
    expect(edges.map(e => `${e.dataset.from}>${e.dataset.to}`)).toEqual(['prep>fit', 'fit>report']);
    expect(q(panel, '.mlnb-why-task[data-task="report"]').textContent).toContain('upstream fit is outdated');
    expect(q(panel, '.mlnb-why-task[data-task="fit"] .mlnb-why-failure').textContent).toBe(
      'failed at cell 1 (time.sleep(seconds)): KeyboardInterrupt: '
    );
    expect(button(panel, 'build').disabled).toBe(false);
    expect(button(panel, 'stop').disabled).toBe(true);
  });

  it('moves with the pushed events of a running build', () => {
    const { panel, push } = makePanel();
    push({ event: 'build-started', pid: 99, origin: 'jupyter', t: 1 });
    push({ event: 'task-started', task: 'fit' });
    push({ event: 'cell', task: 'fit', cell: 2, cells: 4 });
    const fit = q(panel, '[data-task="fit"]');
    expect(fit.dataset.state).toBe('running');
    expect(fit.querySelector('.mlnb-task-detail')!.textContent).toBe('running: cell 2 of 4');
    expect((fit.querySelector('.mlnb-task-progress') as HTMLElement).style.width).toBe('50%');
    expect(q(panel, '.mlnb-pipeline-status').textContent).toBe(
      'Build running (from JupyterLab, pid 99): 0 tasks done, running fit'
    );
    expect(button(panel, 'build').disabled).toBe(true);
    expect(button(panel, 'force').disabled).toBe(true);
    expect(button(panel, 'stop').disabled).toBe(false);
    push({ event: 'task-finished', task: 'fit', status: 'executed', seconds: 2 });
    expect(q(panel, '[data-task="fit"]').dataset.state).toBe('up to date');
  });

  it('opens the executed notebook, or the source notebook of a task that never ran', () => {
    const { panel, opened } = makePanel();
    q(panel, '[data-task="fit"]').click();
    q(panel, '[data-task="report"]').click();
    expect(opened).toEqual(['products/_failed/fit/fit.ipynb', 'notebooks/report.ipynb']);
  });

  it('Build asks the server for mlnb build and shows a refusal in one line', async () => {
    const startBuild = jest
      .fn()
      .mockResolvedValueOnce({ pid: 7, mode: 'force', log: '.mlnb/build/build.log', running: true })
      .mockRejectedValueOnce(
        new ApiError('.mlnb/build.lock: a build is already running in this project (pid 8); wait', 409)
      );
    const { panel, push } = makePanel({ startBuild });
    button(panel, 'force').click();
    expect(button(panel, 'build').disabled).toBe(true); // at once, while the request is on its way
    await new Promise(r => setTimeout(r, 0));
    expect(startBuild).toHaveBeenLastCalledWith('force');
    expect(q(panel, '.mlnb-pipeline-message').textContent).toBe('Started mlnb build --force (pid 7).');
    // running from the answer on (no window for a second click before its first event arrives)
    expect(button(panel, 'build').disabled).toBe(true);
    expect(q(panel, '.mlnb-pipeline-status').textContent).toBe(
      'Build --force running (from JupyterLab, pid 7): 0 tasks done'
    );
    push({ event: 'build-started', pid: 7, origin: 'jupyter', force: true, t: 1 });
    expect(q(panel, '.mlnb-pipeline-message').textContent).toBe('Started mlnb build --force (pid 7).');
    push({ event: 'build-finished', ok: true, interrupted: false, error: null });
    expect(button(panel, 'build').disabled).toBe(false);
    expect(await panel.build('build')).toBe(false);
    expect(q(panel, '.mlnb-pipeline-message').textContent).toContain('already running in this project (pid 8)');
    expect(button(panel, 'build').disabled).toBe(false);
  });

  it('Stop tells which process was interrupted', async () => {
    const stopBuild = jest.fn().mockResolvedValue({ pid: 99, signal: 'SIGINT' });
    const { panel, push } = makePanel({ stopBuild });
    push({ event: 'build-started', pid: 99, origin: 'terminal', t: 1 });
    await panel.stop();
    expect(stopBuild).toHaveBeenCalled();
    expect(q(panel, '.mlnb-pipeline-message').textContent).toBe('Stopping the build (SIGINT sent to pid 99)…');
  });
});

describe('subscribe', () => {
  const encoder = new TextEncoder();

  /** Resolves once `done()` holds (checked on every turn of the event loop; no fixed delay). */
  async function until(done: () => boolean): Promise<void> {
    while (!done()) {
      await new Promise(r => setTimeout(r, 1));
    }
  }

  function streamed(chunks: string[]): Response {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        chunks.forEach(c => controller.enqueue(encoder.encode(c)));
        controller.close();
      }
    });
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  }

  it('reads the authenticated event stream, message by message, across chunks', async () => {
    const fetchMock = jest.fn().mockResolvedValueOnce(
      streamed([
        'data: {"event": "snapshot", "tasks": [], "build": {}}\n\ndata: {"event": "task-',
        'started", "task": "a"}\n\n: keepalive\n\n'
      ])
    );
    fetchMock.mockImplementation(() => new Promise(() => undefined)); // the reconnection waits
    (globalThis as any).fetch = fetchMock;
    const events: IPipelineEvent[] = [];
    const down: string[] = [];
    const stream = subscribe(
      e => events.push(e),
      m => down.push(m),
      1
    );
    await until(() => fetchMock.mock.calls.length === 2);
    stream.close();
    expect(events.map(e => e.event)).toEqual(['snapshot', 'task-started']);
    expect(down).toEqual(['the connection to the Jupyter server was lost; reconnecting']);
    const request = fetchMock.mock.calls[0][0] as Request;
    expect(request.url).toMatch(/\/mlnb\/api\/pipeline\/events(\?\d+)?$/);
    expect(fetchMock.mock.calls.length).toBe(2); // reconnected after the drop
  });

  it('reports the server error of a refused stream', async () => {
    (globalThis as any).fetch = jest.fn().mockResolvedValue(
      new Response(JSON.stringify({ error: 'no mlnb project: no pipeline.yaml' }), { status: 400 })
    );
    const down: string[] = [];
    const stream = subscribe(
      () => undefined,
      m => down.push(m),
      60_000
    );
    await until(() => down.length > 0);
    stream.close();
    expect(down).toEqual(['no mlnb project: no pipeline.yaml']);
  });
});
