/**
 * The Runs panel renders what `GET runs` answers: one row per run with its badges and a Promote
 * button only where promoting makes sense, an empty state, and the server's error message.
 * Only the HTTP boundary is replaced (`listRuns`); the DOM is the real one the panel builds.
 */
import { IRun, IRunList, listRuns } from '../request';
import { IRunsPanelOptions, RunsPanel } from '../panel';

jest.mock('@jupyterlab/ui-components', () => ({ LabIcon: class {} }));
jest.mock('../request', () => {
  class ApiError extends Error {
    constructor(message: string, readonly status: number) {
      super(message);
    }
  }
  return { ApiError, listRuns: jest.fn(), runChanges: jest.fn() };
});

const mockedList = listRuns as jest.MockedFunction<typeof listRuns>;

function run(n: number, extra: Partial<IRun> = {}): IRun {
  return {
    run_id: `${n}`.repeat(32).slice(0, 32),
    start_time: 1_796_000_000_000 + n,
    status: 'ok',
    git_commit: 'abcdef0123456789abcdef0123456789abcdef01',
    gate: 'passed',
    verdict: 'promotable',
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
  token: 't',
  metric_keys: ['f1', 'roc_auc'],
  champion: { version: '2', run_id: '2'.repeat(32) },
  runs: [
    run(4, { gate: 'failed', verdict: 'failed', status: 'failed', failed_task: 'evaluate', model_version: null }),
    run(3),
    run(2, { champion: true }),
    run(1, { previous: true })
  ]
};

function panel(options: Partial<IRunsPanelOptions> = {}): RunsPanel {
  return new RunsPanel({ onPromote: async () => false, onRollback: async () => false, pollInterval: 0, ...options });
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
    expect(third.querySelector('.mlnb-run-metric[data-metric="f1"]')?.textContent).toBe('f1 0.9300');
    expect(third.querySelector('.mlnb-run-metric[data-metric="roc_auc"]')?.textContent).toBe('roc_auc 0.9500');
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
    expect(failed.querySelector('.mlnb-badge-verdict-failed')?.textContent).toBe('gate failed');
    expect(failed.querySelector('.mlnb-badge-status-failed')).toBeNull(); // the gate, not a crash
    expect(candidate.querySelector('.mlnb-badge-verdict-promotable')?.textContent).toBe('promotable');
    const promoteText = (r: HTMLElement) =>
      Array.from(r.querySelectorAll('.mlnb-run-badges button')).map(b => b.textContent);
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
          verdict: '-',
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
    const p = panel({
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
      runs: [run(6, { status: 'failed', gate: '-', verdict: '-', failed_task: 'train', model_version: null })]
    });
    const p = panel();
    await p.refresh();
    expect(p.node.querySelector('.mlnb-debug-button')).toBeNull();
    expect(p.node.querySelector('.mlnb-badge-status-failed')?.textContent).toBe('build failed (train)');
  });
});

describe('RunsPanel: what tells runs apart', () => {
  beforeEach(() => mockedList.mockReset());

  it('shows every metric the runs report, whatever their names, in the order the server gives', async () => {
    mockedList.mockResolvedValue({
      ...payload,
      metric_keys: ['log_loss', 'mae', 'r2'],
      runs: [run(1, { metrics: { r2: 0.81, mae: 3.5, log_loss: 0.2 } }), run(2, { metrics: { r2: 0.8 } })]
    });
    const p = panel();
    await p.refresh();
    const [first, second] = rows(p);
    const names = (r: HTMLElement) =>
      Array.from(r.querySelectorAll<HTMLElement>('.mlnb-run-metric')).map(m => m.dataset.metric);
    expect(names(first)).toEqual(['log_loss', 'mae', 'r2']);
    expect(first.querySelector('.mlnb-run-metric[data-metric="mae"]')?.textContent).toBe('mae 3.5000');
    expect(names(second)).toEqual(['r2']);
    expect(p.node.textContent).not.toMatch(/F1|AUC/);
  });

  it('marks the params that differ from the champion', async () => {
    mockedList.mockResolvedValue({
      ...payload,
      runs: [
        run(3, { params_diff: [{ key: 'train.C', value: '0.5', champion: '1.0' }] }),
        run(2, { champion: true, params_diff: [] })
      ]
    });
    const p = panel();
    await p.refresh();
    const [candidate, champion] = rows(p);
    const chip = candidate.querySelector<HTMLElement>('.mlnb-param-diff[data-param="train.C"]');
    expect(chip?.textContent).toBe('train.C=0.5');
    expect(chip?.title).toBe("differs from the champion's 1.0");
    expect(champion.querySelector('.mlnb-run-params')).toBeNull();
  });

  it('tells a crash, a gate that turned the build down and a promotable build apart', async () => {
    mockedList.mockResolvedValue({
      ...payload,
      runs: [
        run(7, { status: 'failed', verdict: '-', gate: '-', failed_task: 'train', model_version: null }),
        run(6, { verdict: 'not_promotable', gate: 'failed', model_version: null, gate_reason: 'F1 below' }),
        run(5, { verdict: 'promotable' })
      ]
    });
    const p = panel();
    await p.refresh();
    const [crash, turnedDown, good] = rows(p);
    const badges = (r: HTMLElement) =>
      Array.from(r.querySelectorAll('.mlnb-badge')).map(b => b.className.replace('mlnb-badge ', ''));
    expect(badges(crash)).toEqual(['mlnb-badge-status-failed']);
    expect(badges(turnedDown)).toEqual(['mlnb-badge-verdict-not-promotable']);
    expect(turnedDown.querySelector('.mlnb-badge')?.textContent).toBe('not promotable');
    expect((turnedDown.querySelector('.mlnb-badge') as HTMLElement).title).toBe('F1 below');
    expect(badges(good)).toEqual(['mlnb-badge-verdict-promotable', 'mlnb-badge-version']);
    const promote = (r: HTMLElement) => r.querySelector('.mlnb-promote-button') !== null;
    expect([promote(crash), promote(turnedDown), promote(good)]).toEqual([false, true, true]);
  });

  it('reads an older server that only says gate passed/failed', async () => {
    const old = (n: number, gate: 'passed' | 'failed') => {
      const r: any = run(n, { gate });
      delete r.verdict;
      return r as IRun;
    };
    mockedList.mockResolvedValue({ ...payload, runs: [old(1, 'passed'), old(2, 'failed')] });
    const p = panel();
    await p.refresh();
    const [passed, failed] = rows(p);
    expect(passed.querySelector('.mlnb-badge-verdict-promotable')).not.toBeNull();
    expect(failed.querySelector('.mlnb-badge-verdict-failed')).not.toBeNull();
  });

  it('marks a forced promotion, saying who forced it past what', async () => {
    mockedList.mockResolvedValue({
      ...payload,
      runs: [
        run(4, {
          champion: true,
          promotion: {
            action: 'promote', time: '2026-01-02T03:04:05', user: 'ada', version: '4', previous_version: '2',
            note: 'hotfix', reason: 'the gate failed: F1 low', forced: true
          }
        }),
        run(3, {
          promotion: {
            action: 'promote', time: '2026-01-01T00:00:00', user: 'bob', version: '3', previous_version: null,
            note: '', reason: '', forced: false
          }
        })
      ]
    });
    const p = panel();
    await p.refresh();
    const [forced, plain] = rows(p);
    const b = forced.querySelector('.mlnb-badge-forced') as HTMLElement;
    expect(b.textContent).toBe('forced');
    expect(b.title).toContain('ada');
    expect(b.title).toContain('despite: the gate failed: F1 low');
    expect(plain.querySelector('.mlnb-badge-forced')).toBeNull();
  });

  it('links to the MLflow UI only when the server gives a link', async () => {
    const url = 'http://mlflow.example:5000/#/experiments/1/runs/' + '3'.repeat(32);
    mockedList.mockResolvedValue({ ...payload, runs: [run(3, { mlflow_url: url }), run(2, { mlflow_url: null })] });
    const p = panel();
    await p.refresh();
    const [linked, plain] = rows(p);
    const a = linked.querySelector('a.mlnb-run-mlflow') as HTMLAnchorElement;
    expect(a.href).toBe(url);
    expect(a.target).toBe('_blank');
    expect(a.rel).toBe('noopener noreferrer');
    expect(plain.querySelector('a')).toBeNull();
  });

  it('opens a run on its id and compares the two runs ticked last', async () => {
    mockedList.mockResolvedValue(payload);
    const opened: string[] = [];
    const compared: string[][] = [];
    const p = panel({ onOpenRun: id => opened.push(id), onCompare: (a, b) => compared.push([a, b]) });
    await p.refresh();
    const compare = p.node.querySelector('.mlnb-compare-button') as HTMLButtonElement;
    expect(compare.disabled).toBe(true);
    const tick = (i: number) => {
      const box = rows(p)[i].querySelector('.mlnb-compare-input') as HTMLInputElement;
      box.checked = !box.checked;
      box.dispatchEvent(new Event('change'));
    };
    tick(0);
    expect(compare.disabled).toBe(true);
    tick(1);
    tick(2); // a third tick drops the oldest
    expect(p.selected).toEqual([payload.runs[1].run_id, payload.runs[2].run_id]);
    expect((rows(p)[0].querySelector('.mlnb-compare-input') as HTMLInputElement).checked).toBe(false);
    expect(compare.disabled).toBe(false);
    compare.click();
    expect(compared).toEqual([[payload.runs[1].run_id, payload.runs[2].run_id]]);

    await p.refresh(); // the ticks survive a reload
    expect(p.selected).toHaveLength(2);
    expect(rows(p)[1].classList.contains('mlnb-mod-selected')).toBe(true);

    (rows(p)[3].querySelector('.mlnb-run-id') as HTMLButtonElement).click();
    expect(opened).toEqual([payload.runs[3].run_id]);
  });
});
