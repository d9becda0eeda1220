/**
 * The run detail and compare views render what `GET runs/<id>` and `GET compare` answer: params
 * that differ highlighted (and listed first), metric deltas, plots paired by name and fetched
 * through the API. Only the HTTP boundary (src/request.ts) is replaced.
 */
import { differingFirst, formatDelta, verdictLabel } from '../format';
import { compareRuns, fetchArtifact, getLineage, getRun, IComparison, IRunDetail, IRunFull } from '../request';
import { CompareView, RunDetailView } from '../runviews';

jest.mock('../request', () => ({
  compareRuns: jest.fn(),
  fetchArtifact: jest.fn(),
  getLineage: jest.fn(),
  getRun: jest.fn()
}));

const mockedCompare = compareRuns as jest.MockedFunction<typeof compareRuns>;
const mockedGet = getRun as jest.MockedFunction<typeof getRun>;
const mockedFetch = fetchArtifact as jest.MockedFunction<typeof fetchArtifact>;
const mockedLineage = getLineage as jest.MockedFunction<typeof getLineage>;

function full(n: number, extra: Partial<IRunFull> = {}): IRunFull {
  return {
    run_id: `${n}`.repeat(32),
    start_time: 1_796_000_000_000,
    status: 'ok',
    git_commit: 'abcdef0123456789',
    gate: 'passed',
    verdict: 'promotable',
    gate_reason: 'ok',
    failed_task: '',
    metrics: { f1: 0.9 },
    model_version: `${n}`,
    champion: false,
    previous: false,
    params: { 'train.C': '1.0', 'train.model': 'lr' },
    params_diff: [],
    plots: [],
    promotions: [],
    ...extra
  };
}

const plot = (n: number, name: string) => ({ run_id: `${n}`.repeat(32), path: name, task: 'evaluate', name });

const texts = (node: Element, selector: string) =>
  Array.from(node.querySelectorAll(selector)).map(e => e.textContent);

beforeEach(() => {
  mockedCompare.mockReset();
  mockedGet.mockReset();
  mockedFetch.mockReset();
  mockedFetch.mockResolvedValue(new Blob(['png']));
  mockedLineage.mockReset();
  mockedLineage.mockRejectedValue(new Error('lineage: not in this test'));
  (URL as any).createObjectURL = jest.fn(() => 'blob:plot');
  (URL as any).revokeObjectURL = jest.fn();
});

describe('CompareView', () => {
  const comparison: IComparison = {
    model_name: 'tiny',
    a: full(1, { champion: true, plots: [plot(1, 'roc.png'), plot(1, 'confusion_matrix.png')] }),
    b: full(2, { params: { 'train.C': '0.5', 'train.model': 'lr' }, plots: [plot(2, 'roc.png')] }),
    params: [
      { key: 'a.seed', a: '1', b: '1', differs: false },
      { key: 'train.C', a: '1.0', b: '0.5', differs: true },
      { key: 'train.extra', a: null, b: 'x', differs: true }
    ],
    metrics: [
      { key: 'f1', a: 0.9, b: 0.95, differs: true, delta: 0.05 },
      { key: 'roc_auc', a: 0.97, b: 0.97, differs: false, delta: 0 }
    ],
    plots: [
      { name: 'roc.png', a: plot(1, 'roc.png'), b: plot(2, 'roc.png') },
      { name: 'confusion_matrix.png', a: plot(1, 'confusion_matrix.png'), b: null }
    ]
  };

  it('puts params, metrics and plots side by side with the differences marked', async () => {
    mockedCompare.mockResolvedValue(comparison);
    const view = new CompareView('1'.repeat(32), '2'.repeat(32));
    await view.load();
    expect(mockedCompare).toHaveBeenCalledWith('1'.repeat(32), '2'.repeat(32));
    const params = view.node.querySelector('.mlnb-compare-params') as HTMLElement;
    expect(Array.from(params.querySelectorAll<HTMLElement>('tbody tr')).map(r => r.dataset.param)).toEqual([
      'train.C',
      'train.extra',
      'a.seed'
    ]);
    expect(texts(params, 'tr.mlnb-mod-differs td:first-child')).toEqual(['train.C', 'train.extra']);
    expect(texts(params, 'tr[data-param="train.C"] td')).toEqual(['train.C', '1.0', '0.5']);
    expect(texts(params, 'tr[data-param="train.extra"] td')).toEqual(['train.extra', '—', 'x']);
    expect(texts(view.node, 'h3')).toContain('Params (2 differ)');

    const f1 = view.node.querySelector('.mlnb-compare-metrics tr[data-metric="f1"]') as HTMLTableRowElement;
    expect(texts(f1, 'td')).toEqual(['f1', '0.9000', '0.9500', '+0.0500']);
    expect(f1.classList.contains('mlnb-mod-differs')).toBe(true);
    expect(f1.cells[3].classList.contains('mlnb-delta-up')).toBe(true);
    const auc = view.node.querySelector('.mlnb-compare-metrics tr[data-metric="roc_auc"]') as HTMLElement;
    expect(auc.classList.contains('mlnb-mod-differs')).toBe(false);

    const rowsOfPlots = view.node.querySelectorAll<HTMLElement>('.mlnb-compare-plot-row');
    expect(Array.from(rowsOfPlots).map(r => r.dataset.plot)).toEqual(['roc.png', 'confusion_matrix.png']);
    expect(rowsOfPlots[1].querySelectorAll('img')).toHaveLength(1);
    expect(rowsOfPlots[1].querySelector('.mlnb-mod-missing')).not.toBeNull();
    expect(mockedFetch.mock.calls).toEqual([
      ['1'.repeat(32), 'roc.png'],
      ['2'.repeat(32), 'roc.png'],
      ['1'.repeat(32), 'confusion_matrix.png']
    ]);
    await Promise.resolve();
    await Promise.resolve();
    expect((rowsOfPlots[0].querySelector('img') as HTMLImageElement).src).toBe('blob:plot');
    view.dispose();
    expect(URL.revokeObjectURL).toHaveBeenCalledTimes(3);
  });

  it("shows a plot's error in its place and the server's error for the whole view", async () => {
    mockedCompare.mockResolvedValue(comparison);
    mockedFetch.mockRejectedValue(new Error('artifact path: only images are served'));
    const view = new CompareView('1'.repeat(32), '2'.repeat(32));
    await view.load();
    await new Promise(r => setTimeout(r, 0));
    expect(texts(view.node, '.mlnb-plot-error')[0]).toBe('artifact path: only images are served');

    mockedCompare.mockRejectedValue(new Error('run 1111: not a build run of this project'));
    await view.load();
    expect(texts(view.node, '.mlnb-runs-error')).toEqual(['run 1111: not a build run of this project']);
  });
});

describe('RunDetailView', () => {
  const detail: IRunDetail = {
    run: full(3, {
      params: { 'train.C': '0.5', 'train.model': 'lr' },
      params_diff: [{ key: 'train.C', value: '0.5', champion: '1.0' }],
      metrics: { f1: 0.95, brier: 0.1 },
      plots: [plot(3, 'roc.png'), plot(3, 'confusion_matrix.png')],
      mlflow_url: 'https://mlflow.example/#/experiments/2/runs/' + '3'.repeat(32),
      promotions: [
        { action: 'promote', time: '2026-02-03T04:05:06.000+00:00', user: 'ada', version: '3',
          previous_version: '1', note: 'ship', reason: 'gate', forced: true }
      ]
    }),
    champion: { version: '1', run_id: '1'.repeat(32), metrics: { f1: 0.9 }, params: { 'train.C': '1.0' } },
    deltas: { f1: 0.05 },
    promotable: true,
    refusal: null,
    requirements: [
      { name: 'gate', held: true, required: true, detail: 'the gate says promotable: ok' },
      { name: 'nbval', held: false, required: false, detail: 'no nbval run recorded at commit abcdef012345' }
    ]
  };

  it('shows the metrics against the champion, the differing params, the plots and the promotions', async () => {
    mockedGet.mockResolvedValue(detail);
    const promoted: string[] = [];
    const view = new RunDetailView('3'.repeat(32), { onPromote: async id => (promoted.push(id), false) });
    await view.load();
    expect(texts(view.node, '.mlnb-view-metrics tbody td:first-child')).toEqual(['brier', 'f1']);
    expect(texts(view.node, '.mlnb-view-metrics tr[data-metric="f1"] td')).toEqual(['f1', '0.9500', '0.9000', '+0.0500']);
    expect(texts(view.node, '.mlnb-view-params-diff tr[data-param="train.C"] td')).toEqual(['train.C', '0.5', '1.0']);
    expect(texts(view.node, '.mlnb-all-params tr.mlnb-mod-differs td:first-child')).toEqual(['train.C']);
    expect(Array.from(view.node.querySelectorAll<HTMLElement>('.mlnb-plot')).map(f => f.dataset.plot)).toEqual([
      'roc.png',
      'confusion_matrix.png'
    ]);
    expect(texts(view.node, '.mlnb-promotions li.mlnb-mod-forced')).toEqual([
      '2026-02-03 04:05:06 UTC: promoted v3 by ada (forced): ship'
    ]);
    expect((view.node.querySelector('a.mlnb-run-mlflow') as HTMLAnchorElement).href).toBe(detail.run.mlflow_url);
    (view.node.querySelector('.mlnb-promote-button') as HTMLButtonElement).click();
    expect(promoted).toEqual(['3'.repeat(32)]);
  });

  it('lists the promotion requirements and loads the lineage chain when it opens', async () => {
    mockedGet.mockResolvedValue(detail);
    mockedLineage.mockReset();
    let answer: (value: any) => void = () => undefined;
    mockedLineage.mockReturnValue(new Promise(resolve => (answer = resolve)));
    const view = new RunDetailView('3'.repeat(32));
    await view.load();
    expect(texts(view.node, '.mlnb-requirement.mlnb-mod-held .mlnb-requirement-name')).toEqual(['gate promotable']);
    expect(texts(view.node, '.mlnb-requirement.mlnb-mod-not-held .mlnb-requirement-detail')).toEqual([
      'no nbval run recorded at commit abcdef012345'
    ]);
    expect(texts(view.node, '.mlnb-requirements-summary')).toEqual([
      'All 1 required requirements hold: a plain promote is accepted.'
    ]);
    expect(mockedLineage).toHaveBeenCalledWith('3'.repeat(32), false);
    expect(texts(view.node, '.mlnb-lineage-status')).toEqual(['Loading lineage…']);
    answer({
      ref: '3'.repeat(32), model: null,
      build: { run_id: '3'.repeat(32), status: 'ok', start_time: 0, verdict: 'promotable', gate_reason: '', metrics: {} },
      git: { commit: 'abcdef0123456789', clean: 'true', changed: '' }, params: {}, gate_settings_changes: '',
      dvc: { recorded: '', note: '', stages: {} }, notebooks: [], promotions: [], approvals: []
    });
    await new Promise(r => setTimeout(r, 0));
    expect(texts(view.node, '.mlnb-lineage-row[data-link="git"] .mlnb-lineage-hash')).toEqual(['abcdef012345']);
  });

  it('says when there is nothing to diff or plot', async () => {
    mockedGet.mockResolvedValue({ ...detail, champion: null, run: full(4) });
    const view = new RunDetailView('4'.repeat(32));
    await view.load();
    expect(view.node.textContent).toContain('No champion yet.');
    expect(view.node.textContent).toContain('This build logged no plots');
    expect(view.node.querySelector('.mlnb-promote-button')).toBeNull(); // no promote flow given
  });
});

describe('formatters', () => {
  it('labels every verdict and nothing else', () => {
    expect(['promotable', 'not_promotable', 'failed', '-', undefined].map(verdictLabel)).toEqual([
      'promotable',
      'not promotable',
      'gate failed',
      null,
      null
    ]);
  });

  it('signs deltas and keeps differing rows first in their order', () => {
    expect([0.05, -0.0001, 0.00001, null].map(formatDelta)).toEqual(['+0.0500', '-0.0001', '±0.0000', '—']);
    const rows = [
      { k: 'a', differs: false },
      { k: 'b', differs: true },
      { k: 'c', differs: false },
      { k: 'd', differs: true }
    ];
    expect(differingFirst(rows).map(r => r.k)).toEqual(['b', 'd', 'a', 'c']);
  });
});
