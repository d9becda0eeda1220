/**
 * The Runs panel renders what `GET runs` answers: one row per run with its badges and a Promote
 * button only where promoting makes sense, an empty state, and the server's error message.
 * Only the HTTP boundary is replaced (`listRuns`); the DOM is the real one the panel builds.
 */
import { IRun, IRunList, listRuns } from '../request';
import { RunsPanel } from '../panel';

jest.mock('@jupyterlab/ui-components', () => ({ LabIcon: class {} }));
jest.mock('../request', () => {
  class ApiError extends Error {
    constructor(message: string, readonly status: number) {
      super(message);
    }
  }
  return { ApiError, listRuns: jest.fn() };
});

const mockedList = listRuns as jest.MockedFunction<typeof listRuns>;

function run(n: number, extra: Partial<IRun> = {}): IRun {
  return {
    run_id: `${n}`.repeat(32).slice(0, 32),
    start_time: 1_796_000_000_000 + n,
    status: 'ok',
    git_commit: 'abcdef0123456789abcdef0123456789abcdef01',
    gate: 'passed',
    gate_reason: 'candidate F1 >= champion F1 + 0.02',
    failed_task: '',
    metrics: { f1: 0.9 + n / 100, roc_auc: 0.95 },
    model_version: `${n}`,
    champion: false,
    previous: false,
    ...extra
  };
}

const payload: IRunList = {
  model_name: 'tiny',
  champion: { version: '2', run_id: '2'.repeat(32) },
  runs: [
    run(4, { gate: 'failed', status: 'failed', failed_task: 'evaluate', model_version: null }),
    run(3),
    run(2, { champion: true }),
    run(1, { previous: true })
  ]
};

function panel(): RunsPanel {
  return new RunsPanel({ onPromote: async () => false, onRollback: async () => false });
}

const rows = (p: RunsPanel) => Array.from(p.node.querySelectorAll<HTMLElement>('.mlnb-run'));
const status = (p: RunsPanel) => p.node.querySelector('.mlnb-runs-status') as HTMLElement;

describe('RunsPanel', () => {
  beforeEach(() => mockedList.mockReset());

  it('renders one row per run, in the order given, with its figures', async () => {
    mockedList.mockResolvedValue(payload);
    const p = panel();
    await p.refresh();
    expect(rows(p).map(r => r.dataset.runId)).toEqual(payload.runs.map(r => r.run_id));
    const third = rows(p)[1];
    expect(third.querySelector('.mlnb-run-id')?.textContent).toBe('33333333');
    expect(third.querySelector('.mlnb-run-f1')?.textContent).toBe('F1 0.9300');
    expect(third.querySelector('.mlnb-run-roc-auc')?.textContent).toBe('AUC 0.9500');
    expect(third.querySelector('.mlnb-run-commit')?.textContent).toBe('abcdef0');
    expect(p.node.querySelector('.mlnb-runs-model')?.textContent).toBe('tiny · champion v2');
  });

  it('puts the badges and Promote buttons where they belong', async () => {
    mockedList.mockResolvedValue(payload);
    const p = panel();
    await p.refresh();
    const [failed, candidate, champion, previous] = rows(p);
    expect(p.node.querySelectorAll('.mlnb-badge-champion')).toHaveLength(1);
    expect(champion.querySelector('.mlnb-badge-champion')).not.toBeNull();
    expect(previous.querySelector('.mlnb-badge-previous')).not.toBeNull();
    expect(failed.querySelector('.mlnb-badge-gate-failed')?.textContent).toBe('failed');
    expect(candidate.querySelector('.mlnb-badge-gate-passed')?.textContent).toBe('passed');
    const promoteText = (r: HTMLElement) =>
      Array.from(r.querySelectorAll('button')).map(b => b.textContent);
    expect(promoteText(champion)).toEqual([]);
    expect(promoteText(candidate)).toEqual(['Promote']);
    expect(promoteText(failed)).toEqual(['Promote']); // refused by the server unless forced
    expect(promoteText(previous)).toEqual(['Promote']);
  });

  it('says so when there are no runs', async () => {
    mockedList.mockResolvedValue({ model_name: 'tiny', champion: null, runs: [] });
    const p = panel();
    await p.refresh();
    expect(rows(p)).toHaveLength(0);
    expect(status(p).textContent).toContain('No build runs yet');
    expect(p.node.querySelector('.mlnb-runs-model')?.textContent).toBe('tiny · no champion');
  });

  it("shows the server's error, then recovers on the next refresh", async () => {
    mockedList.mockRejectedValueOnce(new Error('no mlnb project: no pipeline.yaml'));
    const p = panel();
    await p.refresh();
    expect(rows(p)).toHaveLength(0);
    expect(status(p).classList.contains('mlnb-runs-error')).toBe(true);
    expect(status(p).textContent).toBe('no mlnb project: no pipeline.yaml');

    mockedList.mockResolvedValueOnce(payload);
    await p.refresh();
    expect(status(p).classList.contains('mlnb-runs-error')).toBe(false);
    expect(status(p).textContent).toBe('');
    expect(rows(p)).toHaveLength(4);
  });

  it('shares one request between concurrent refreshes', async () => {
    let resolve: (v: IRunList) => void = () => undefined;
    mockedList.mockReturnValue(new Promise(r => (resolve = r)));
    const p = panel();
    const a = p.refresh();
    const b = p.refresh();
    expect(p.node.classList.contains('mlnb-mod-loading')).toBe(true);
    resolve(payload);
    await Promise.all([a, b]);
    expect(mockedList).toHaveBeenCalledTimes(1);
    expect(p.node.classList.contains('mlnb-mod-loading')).toBe(false);
  });
});

describe('RunsPanel failed builds', () => {
  beforeEach(() => mockedList.mockReset());

  it('shows the failing task and cell with a Debug button that asks for that task', async () => {
    mockedList.mockResolvedValue({
      ...payload,
      runs: [
        run(5, {
          status: 'failed',
          gate: '-',
          failed_task: 'train',
          failure_task: 'train',
          failure: "cell 5 ('model.fit(X)'): ValueError: bad alpha",
          debuggable: true,
          model_version: null
        }),
        run(4, {
          status: 'failed',
          gate: '-',
          failed_task: 'train',
          failure_task: 'train',
          failure: "cell 5 ('model.fit(X)'): ValueError: older",
          debuggable: false,
          model_version: null
        }),
        run(3)
      ]
    });
    const asked: string[] = [];
    const p = new RunsPanel({
      onPromote: async () => false,
      onRollback: async () => false,
      onDebug: async (task, runId) => {
        asked.push(`${task} ${runId}`);
      }
    });
    await p.refresh();
    const [failed, retired, ok] = rows(p);
    expect(failed.querySelector('.mlnb-run-failure-text')?.textContent).toBe(
      "train: cell 5 ('model.fit(X)'): ValueError: bad alpha"
    );
    expect(ok.querySelector('.mlnb-debug-button')).toBeNull();
    // a failure a later build replaced: still described, no longer offered for debugging
    expect(retired.querySelector('.mlnb-run-failure-text')).not.toBeNull();
    expect(retired.querySelector('.mlnb-debug-button')).toBeNull();
    (failed.querySelector('.mlnb-debug-button') as HTMLButtonElement).click();
    expect(asked).toEqual([`train ${failed.dataset.runId}`]);
  });

  it('offers no Debug button when the build records no failing cell', async () => {
    mockedList.mockResolvedValue({
      ...payload,
      runs: [run(6, { status: 'failed', gate: '-', failed_task: 'train', model_version: null })]
    });
    const p = panel();
    await p.refresh();
    expect(p.node.querySelector('.mlnb-debug-button')).toBeNull();
    expect(p.node.querySelector('.mlnb-badge-status-failed')?.textContent).toBe('build failed (train)');
  });
});
