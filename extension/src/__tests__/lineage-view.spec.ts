/**
 * The run detail's promotion requirements and lineage chain, rendered from what `GET runs/<id>` and
 * `GET runs/<id>/lineage` answer (held / not held classes, the texts, short hashes with the full one
 * in the tooltip). Only the HTTP boundary (src/request.ts) is replaced.
 */
import { getLineage, ILineage, IRequirement } from '../request';
import { LineageSection, lineageChain, lineageRows, verifyList } from '../lineage-view';
import { blocking, requirementList, requirementSummary } from '../requirements';

jest.mock('../request', () => ({ getLineage: jest.fn() }));

const mockedLineage = getLineage as jest.MockedFunction<typeof getLineage>;

const texts = (node: Element, selector: string) =>
  Array.from(node.querySelectorAll(selector)).map(e => e.textContent);

const REQUIREMENTS: IRequirement[] = [
  { name: 'gate', held: true, required: true, detail: 'the gate says promotable: candidate F1 0.9700 >= champion' },
  { name: 'gate_settings', held: true, required: true, detail: "the committed params.yaml's" },
  { name: 'clean_tree', held: false, required: true, detail: 'built from commit 0123456789ab with local edits: x.py' },
  { name: 'dvc', held: false, required: false, detail: 'the project does not use DVC (no .dvc/ and dvc.yaml)' },
  { name: 'nbval', held: false, required: true, detail: 'no nbval run recorded at commit 0123456789ab' },
  { name: 'approvals', held: true, required: false, detail: '0 of 0 approval(s) by people other than ada' }
];

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const RUN = 'c'.repeat(32);
const SHA = 'f'.repeat(64);

const LINEAGE: ILineage = {
  ref: RUN,
  model: {
    name: 'tiny',
    version: '3',
    aliases: ['champion'],
    artifact_sha256: SHA,
    source_run_id: 'e'.repeat(32),
    registered_by: 'mlnb build (export)'
  },
  build: {
    run_id: RUN,
    status: 'ok',
    start_time: 1_796_000_000_000,
    verdict: 'promotable',
    gate_reason: 'candidate F1 0.97 >= champion',
    metrics: { f1: 0.97 }
  },
  git: { commit: COMMIT, clean: 'false', changed: 'notebooks/train.ipynb' },
  params: { 'train.C': '0.5', 'mlflow.x': 'hidden', 'promotion.gate': 'true' },
  gate_settings_changes: '',
  dvc: {
    recorded: 'prepare,train',
    note: '',
    stages: {
      prepare: { deps: { 'data/raw.csv': 'a'.repeat(32), 'mlnb/data.py': 'b'.repeat(32) }, outs: { 'products/prepare/data.parquet': '1'.repeat(32) } },
      train: { deps: { 'products/prepare/data.parquet': '1'.repeat(32) }, outs: { 'products/train/model.pkl': '2'.repeat(32), 'products/train/.hidden': '3'.repeat(32) } }
    }
  },
  notebooks: [{ task: 'train', run_id: 'd'.repeat(32), status: 'ok', artifacts: ['notebooks/train.ipynb'] }],
  promotions: [
    { action: 'promote', time: '2026-02-03T04:05:06+00:00', user: 'ada', version: '3', note: 'ship', forced: true, bypassed: ['nbval'] }
  ],
  approvals: [{ user: 'bob', time: '2026-02-02T01:02:03+00:00', note: 'lgtm' }]
};

describe('requirementList', () => {
  it('marks each requirement held or not held, with its reason line', () => {
    const list = requirementList(REQUIREMENTS);
    const items = Array.from(list.querySelectorAll<HTMLElement>('li.mlnb-requirement'));
    expect(items.map(i => i.dataset.requirement)).toEqual(['gate', 'gate_settings', 'clean_tree', 'dvc', 'nbval', 'approvals']);
    expect(Array.from(list.querySelectorAll<HTMLElement>('.mlnb-mod-held')).map(i => i.dataset.requirement)).toEqual([
      'gate',
      'gate_settings',
      'approvals'
    ]);
    expect(Array.from(list.querySelectorAll<HTMLElement>('.mlnb-mod-not-held')).map(i => i.dataset.requirement)).toEqual([
      'clean_tree',
      'dvc',
      'nbval'
    ]);
    expect(Array.from(list.querySelectorAll<HTMLElement>('.mlnb-mod-optional')).map(i => i.dataset.requirement)).toEqual([
      'dvc',
      'approvals'
    ]);
    const clean = list.querySelector('[data-requirement="clean_tree"]') as HTMLElement;
    expect(texts(clean, '.mlnb-requirement-name')).toEqual(['clean git tree']);
    expect(texts(clean, '.mlnb-requirement-state')).toEqual(['not held']);
    expect(texts(clean, '.mlnb-requirement-detail')).toEqual(['built from commit 0123456789ab with local edits: x.py']);
    expect(texts(list, '[data-requirement="dvc"] .mlnb-requirement-state')).toEqual(['not held (not required)']);
    expect(texts(list, '[data-requirement="gate"] .mlnb-requirement-state')).toEqual(['held']);
    expect(texts(list, '[data-requirement="gate"] .mlnb-requirement-name')).toEqual(['gate promotable']);
  });

  it('sums up what blocks a plain promote', () => {
    expect(blocking(REQUIREMENTS).map(r => r.name)).toEqual(['clean_tree', 'nbval']);
    expect(requirementSummary(REQUIREMENTS)).toBe(
      '2 of 4 required requirements not held: a plain promote is refused (clean git tree, nbval references passed).'
    );
    expect(requirementSummary(REQUIREMENTS.filter(r => r.held))).toBe(
      'All 2 required requirements hold: a plain promote is accepted.'
    );
  });
});

describe('lineage chain', () => {
  it('has one row per link, newest first, as `mlnb lineage` prints it', () => {
    const rows = lineageRows(LINEAGE);
    expect(rows.map(r => r.link)).toEqual([
      'model', 'build', 'git', 'params', 'data', 'stage', 'stage', 'notebook', 'artifact', 'promotion', 'approval'
    ]);
    expect(rows[0].value).toBe('tiny version 3 (champion), registered by mlnb build (export)');
    expect(rows[3].value).toBe('train.C=0.5'); // mlflow.* and promotion.* left out
    expect(rows[9].value).toBe('2026-02-03 04:05:06 by ada, version 3, forced past nbval: ship');
    expect(rows[10].value).toBe('2026-02-02 01:02:03 by bob: lgtm');
  });

  it('shows short hashes with the full value in the tooltip and marks local edits', () => {
    const chain = lineageChain(LINEAGE);
    const row = (link: string) => chain.querySelector(`.mlnb-lineage-row[data-link="${link}"]`) as HTMLElement;
    expect(texts(row('build'), '.mlnb-lineage-label')).toEqual(['build run']);
    const build = row('build').querySelector('.mlnb-lineage-hash') as HTMLElement;
    expect(build.textContent).toBe('cccccccccccc');
    expect(build.title).toBe(RUN);
    const git = row('git');
    expect(texts(git, '.mlnb-lineage-label')).toEqual(['git commit']);
    expect(texts(git, '.mlnb-lineage-value')).toEqual(['local edits: notebooks/train.ipynb']);
    expect((git.querySelector('.mlnb-lineage-hash') as HTMLElement).title).toBe(COMMIT);
    expect(git.classList.contains('mlnb-mod-warn')).toBe(true);
    expect(texts(chain, '[data-link="data"] .mlnb-lineage-value')).toEqual(['data/raw.csv']);
    expect(texts(chain, '[data-link="data"] .mlnb-lineage-hash')).toEqual(['a'.repeat(12)]);
    expect(texts(chain, '[data-link="stage"] .mlnb-lineage-label')).toEqual(['stage prepare', 'stage train']);
    expect(texts(chain, '[data-link="stage"] .mlnb-lineage-value')).toEqual([
      'products/prepare/data.parquet',
      'products/train/model.pkl'
    ]);
    const artifact = row('artifact').querySelector('.mlnb-lineage-hash') as HTMLElement;
    expect([artifact.textContent, artifact.title]).toEqual(['f'.repeat(12), SHA]);
    expect(row('promotion').classList.contains('mlnb-mod-warn')).toBe(true);
  });

  it('says what is missing: no registered version, no dvc.lock, a clean tree', () => {
    const rows = lineageRows({
      ...LINEAGE,
      model: null,
      git: { commit: COMMIT, clean: 'true', changed: '' },
      dvc: { recorded: '', note: 'built with --no-dvc', stages: {} },
      notebooks: [],
      promotions: [],
      approvals: []
    });
    expect(rows.map(r => [r.link, r.value])).toEqual([
      ['model', '(no registered version from this build)'],
      ['build', expect.stringContaining('ok, ')],
      ['git', 'clean tree'],
      ['params', 'train.C=0.5'],
      ['data', 'not recorded in dvc.lock: built with --no-dvc']
    ]);
  });

  it('lists verified links held, broken or unavailable', () => {
    const list = verifyList([
      { name: 'git commit', held: true, detail: '0123456789ab is in this repository' },
      { name: 'products/train/model.pkl', held: false, detail: 'md5 x != dvc.lock s' },
      { name: 'dvc.lock', held: null, detail: 'the build recorded no dvc.lock' }
    ]);
    expect(texts(list, '.mlnb-lineage-check-state')).toEqual(['ok', 'BROKEN', 'n/a']);
    expect(list.querySelector('.mlnb-mod-broken')?.textContent).toContain('products/train/model.pkl');
  });
});

describe('LineageSection', () => {
  beforeEach(() => mockedLineage.mockReset());

  it('loads the chain, verifies on demand and shows an error in its place', async () => {
    mockedLineage.mockResolvedValueOnce(LINEAGE);
    const section = new LineageSection(RUN);
    const loading = section.load();
    expect(texts(section.node, '.mlnb-lineage-status')).toEqual(['Loading lineage…']);
    await loading;
    expect(mockedLineage).toHaveBeenLastCalledWith(RUN, false);
    expect(section.node.querySelectorAll('.mlnb-lineage-row')).toHaveLength(11);

    mockedLineage.mockResolvedValueOnce({ ...LINEAGE, links: [{ name: 'git commit', held: true, detail: 'ok' }] });
    (section.node.querySelector('.mlnb-lineage-verify-button') as HTMLButtonElement).click();
    await new Promise(r => setTimeout(r, 0));
    expect(mockedLineage).toHaveBeenLastCalledWith(RUN, true);
    expect(texts(section.node, '.mlnb-lineage-check-name')).toEqual(['git commit']);

    mockedLineage.mockRejectedValueOnce(new Error('run cccc: no such build run'));
    await section.load();
    expect(texts(section.node, '.mlnb-runs-error')).toEqual(['run cccc: no such build run']);
  });
});
