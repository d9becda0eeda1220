/**
 * The Runs panel over the real src/request.ts and ServerConnection: only `fetch` (the HTTP boundary)
 * is replaced, so the server's `{"error": "..."}` answers, a network failure and a non-JSON answer
 * go through requestAPI's own error handling before the panel shows them.
 */
import { IRunList } from '../request';
import { RunsPanel } from '../panel';

jest.mock('@jupyterlab/ui-components', () => ({ LabIcon: class {} }));

const RUN_ID = 'a'.repeat(32);

const payload: IRunList = {
  model_name: 'tiny',
  token: 't1',
  metric_keys: ['f1', 'roc_auc'],
  champion: { version: '3', run_id: RUN_ID },
  runs: [
    {
      run_id: 'b'.repeat(32),
      start_time: 1_796_000_000_000,
      status: 'ok',
      git_commit: '0123456789abcdef0123456789abcdef01234567-dirty',
      gate: 'passed',
      verdict: 'promotable',
      gate_reason: 'ok',
      failed_task: '',
      metrics: { f1: 0.96512, roc_auc: 0.99 },
      model_version: '4',
      champion: false,
      previous: false
    },
    {
      run_id: RUN_ID,
      start_time: 1_795_000_000_000,
      status: 'ok',
      git_commit: 'unknown',
      gate: '-',
      verdict: '-',
      gate_reason: '',
      failed_task: '',
      metrics: { f1: 0.9, roc_auc: 0.95 },
      model_version: '3',
      champion: true,
      previous: false
    }
  ]
};

const json = (body: unknown, status = 200, statusText = '') =>
  new Response(JSON.stringify(body), {
    status,
    statusText,
    headers: { 'Content-Type': 'application/json' }
  });

let fetchMock: jest.Mock<Promise<Response>, [Request]>;

beforeEach(() => {
  fetchMock = jest.fn();
  (globalThis as any).fetch = fetchMock;
});

function panel(): RunsPanel {
  return new RunsPanel({ onPromote: async () => false, onRollback: async () => false, pollInterval: 0 });
}

const rows = (p: RunsPanel) => p.node.querySelectorAll<HTMLElement>('.mlnb-run[data-run-id]');
const status = (p: RunsPanel) => p.node.querySelector('.mlnb-runs-status') as HTMLElement;

function expectError(p: RunsPanel, message: string): void {
  expect(rows(p)).toHaveLength(0);
  expect(status(p).classList.contains('mlnb-runs-error')).toBe(true);
  expect(status(p).textContent).toBe(message);
}

describe('RunsPanel over requestAPI', () => {
  it('asks GET mlnb/api/runs and renders the answer', async () => {
    fetchMock.mockResolvedValueOnce(json(payload));
    const p = panel();
    await p.refresh();
    expect(fetchMock).toHaveBeenCalledTimes(1);
    const request = fetchMock.mock.calls[0][0];
    expect(request.method).toBe('GET');
    expect(new URL(request.url).pathname).toBe('/mlnb/api/runs');
    expect(new URL(request.url).searchParams.get('limit')).toBe('50');
    expect(Array.from(rows(p)).map(r => r.dataset.runId)).toEqual([
      'b'.repeat(32),
      RUN_ID
    ]);
    const [candidate, champion] = Array.from(rows(p));
    expect(candidate.querySelector('.mlnb-run-id')?.textContent).toBe('bbbbbbbb');
    expect(candidate.querySelector('.mlnb-run-metric[data-metric="f1"]')?.textContent).toBe('f1 0.9651');
    expect(candidate.querySelector('.mlnb-run-commit')?.textContent).toBe('0123456*');
    expect(champion.querySelector('.mlnb-run-commit')?.textContent).toBe('unknown');
    expect(champion.querySelector('[class*="mlnb-badge-verdict-"]')).toBeNull();
    expect(p.node.querySelectorAll('.mlnb-badge-champion')).toHaveLength(1);
    expect(champion.querySelector('.mlnb-badge-champion')).not.toBeNull();
    expect(candidate.querySelector('.mlnb-promote-button')?.textContent).toBe('Promote');
    expect(champion.querySelector('.mlnb-promote-button')).toBeNull();
  });

  it.each([
    [500, 'mlflow: cannot reach the tracking store'],
    [404, 'no mlnb project: no pipeline.yaml in /work']
  ])("shows the server's message of a %i answer", async (code, message) => {
    fetchMock.mockResolvedValueOnce(json({ error: message }, code));
    const p = panel();
    await p.refresh();
    expectError(p, message);
  });

  it('says the server is unreachable when the network fails', async () => {
    fetchMock.mockRejectedValueOnce(new TypeError('Failed to fetch'));
    const p = panel();
    await p.refresh();
    expect(rows(p)).toHaveLength(0);
    expect(status(p).classList.contains('mlnb-runs-error')).toBe(true);
    expect(status(p).textContent).toMatch(/^mlnb server unreachable: .*Failed to fetch/);
  });

  it('names the HTTP status when the error answer is not JSON', async () => {
    fetchMock.mockResolvedValueOnce(
      new Response('<html>proxy error</html>', { status: 502, statusText: 'Bad Gateway' })
    );
    const p = panel();
    await p.refresh();
    expectError(p, 'mlnb server: HTTP 502 Bad Gateway');
  });

  it('replaces the error with the runs on a later successful refresh', async () => {
    fetchMock
      .mockResolvedValueOnce(json({ error: 'mlflow: database is locked' }, 500))
      .mockResolvedValueOnce(json(payload));
    const p = panel();
    await p.refresh();
    expectError(p, 'mlflow: database is locked');
    await p.refresh();
    expect(status(p).classList.contains('mlnb-runs-error')).toBe(false);
    expect(status(p).textContent).toBe('');
    expect(rows(p)).toHaveLength(2);
  });

  it('replaces the error with the empty state when the list is empty', async () => {
    fetchMock
      .mockRejectedValueOnce(new TypeError('Failed to fetch'))
      .mockResolvedValueOnce(json({ model_name: 'tiny', champion: null, runs: [] }));
    const p = panel();
    await p.refresh();
    await p.refresh();
    expect(rows(p)).toHaveLength(0);
    expect(status(p).classList.contains('mlnb-runs-error')).toBe(false);
    expect(status(p).textContent).toBe('No build runs yet: run `mlnb build`.');
  });
});

describe('RunsPanel polling over requestAPI', () => {
  it('asks GET runs/changes and reloads the list only when the token changed', async () => {
    fetchMock
      .mockResolvedValueOnce(json(payload)) // the first list, token t1
      .mockResolvedValueOnce(json({ token: 't1' })) // nothing changed
      .mockResolvedValueOnce(json({ token: 't2' })) // a promotion elsewhere
      .mockResolvedValueOnce(json({ ...payload, token: 't2', runs: payload.runs.slice(1) }));
    const p = panel();
    await p.refresh();
    expect(await p.poll()).toBe(false);
    expect(new URL(fetchMock.mock.calls[1][0].url).pathname).toBe('/mlnb/api/runs/changes');
    expect(rows(p)).toHaveLength(2);
    expect(await p.poll()).toBe(true);
    expect(fetchMock).toHaveBeenCalledTimes(4);
    expect(new URL(fetchMock.mock.calls[3][0].url).pathname).toBe('/mlnb/api/runs');
    expect(rows(p)).toHaveLength(1);
    expect(p.data?.token).toBe('t2');
  });

  it('keeps the list when the changes endpoint fails', async () => {
    fetchMock
      .mockResolvedValueOnce(json(payload))
      .mockResolvedValueOnce(json({ error: 'database is locked' }, 500));
    const p = panel();
    await p.refresh();
    expect(await p.poll()).toBe(false);
    expect(rows(p)).toHaveLength(2);
    expect(status(p).classList.contains('mlnb-runs-error')).toBe(false);
  });
});
