/**
 * The Pipeline panel's pure logic: how pushed build events move the tasks along,
 * the words shown for each state, the DAG layout and the event-stream parser.
 */
import {
  applyEvent,
  buildLine,
  emptyBuild,
  IPipelineState,
  ITaskView,
  parseEventStream,
  shownState,
  taskDetail
} from '../pipeline-model';
import { layout, LAYOUT, rows } from '../pipeline-layout';

function task(name: string, upstream: string[] = [], extra: Partial<ITaskView> = {}): ITaskView {
  return {
    name,
    upstream,
    state: 'outdated',
    reasons: ['product missing: products/x'],
    source: `notebooks/${name}.ipynb`,
    executed: null,
    failure: null,
    ...extra
  };
}

// the example project's shape: evaluate reads train and features, export reads train and evaluate
const EXAMPLE = [
  task('ingest'),
  task('validate', ['ingest']),
  task('features', ['validate']),
  task('train', ['features']),
  task('evaluate', ['train', 'features']),
  task('export', ['train', 'evaluate'])
];

function start(): IPipelineState {
  return applyEvent(
    { snapshot: null, error: null },
    { event: 'snapshot', project: '.', tasks: EXAMPLE, build: emptyBuild() }
  );
}

describe('applyEvent', () => {
  it('follows a build: started, cells, finished tasks, the end', () => {
    let s = start();
    s = applyEvent(s, { event: 'build-started', pid: 42, origin: 'terminal', force: true, t: 5 });
    s = applyEvent(s, { event: 'task-started', task: 'ingest' });
    s = applyEvent(s, { event: 'cell', task: 'ingest', cell: 2, cells: 5 });
    const build = s.snapshot!.build;
    expect(build.running).toBe(true);
    expect(shownState(EXAMPLE[0], build)).toBe('running');
    expect(taskDetail(EXAMPLE[0], build)).toBe('running: cell 2 of 5');
    expect(taskDetail(EXAMPLE[1], build)).toBe('outdated: product missing: products/x');
    expect(buildLine(build, EXAMPLE)).toBe(
      'Build --force running (from a terminal, pid 42): 0 tasks done, running ingest'
    );
    s = applyEvent(s, { event: 'task-finished', task: 'ingest', status: 'executed', seconds: 1.24 });
    s = applyEvent(s, { event: 'task-started', task: 'validate' });
    s = applyEvent(s, { event: 'task-finished', task: 'validate', status: 'failed', seconds: 0.5 });
    const later = s.snapshot!.build;
    expect(taskDetail(EXAMPLE[0], later)).toBe('built (1.2 s)');
    expect(shownState(EXAMPLE[1], later)).toBe('failed');
    expect(buildLine(later, EXAMPLE)).toBe('Build --force running (from a terminal, pid 42): 2 tasks done');
    s = applyEvent(s, { event: 'build-finished', ok: false, interrupted: false, error: null });
    s = applyEvent(s, { event: 'lock', running: false, pid: null });
    expect(buildLine(s.snapshot!.build, EXAMPLE)).toBe('Last build failed: validate.');
    // the snapshot taken after the build: the states on disk hold, the build's are history
    const edited = { ...EXAMPLE[0], state: 'outdated' as const, reasons: ['param x: 1 -> 2'] };
    s = applyEvent(s, {
      event: 'snapshot',
      project: '.',
      tasks: [edited, ...EXAMPLE.slice(1)],
      build: { ...s.snapshot!.build, running: false }
    });
    expect(shownState(edited, s.snapshot!.build)).toBe('outdated');
    expect(taskDetail(edited, s.snapshot!.build)).toBe('outdated: param x: 1 -> 2');
    expect(buildLine(s.snapshot!.build, EXAMPLE)).toBe('Last build failed: validate.');
  });

  it('a snapshot replaces everything and clears an error; a killed build is told', () => {
    let s = applyEvent(start(), { event: 'error', error: 'pipeline.yaml: bad' });
    expect(s.error).toBe('pipeline.yaml: bad');
    s = applyEvent(s, { event: 'build-started', pid: 7, origin: 'jupyter' });
    s = applyEvent(s, { event: 'task-started', task: 'train' });
    s = applyEvent(s, { event: 'build-ended', error: 'the build process ended without reporting (killed?)' });
    expect(s.snapshot!.build.running).toBe(false);
    expect(shownState(EXAMPLE[3], s.snapshot!.build)).toBe('outdated'); // not "running" forever
    expect(buildLine(s.snapshot!.build, EXAMPLE)).toBe(
      'Last build failed: the build process ended without reporting (killed?)'
    );
    s = applyEvent(s, { event: 'snapshot', project: '.', tasks: EXAMPLE, build: emptyBuild() });
    expect(s.error).toBeNull();
    expect(s.snapshot!.build.tasks).toEqual({});
  });

  it('ignores unknown events and events before the first snapshot', () => {
    const empty: IPipelineState = { snapshot: null, error: null };
    expect(applyEvent(empty, { event: 'task-started', task: 'a' })).toBe(empty);
    const s = start();
    expect(applyEvent(s, { event: 'something-new' })).toBe(s);
  });
});

describe('taskDetail', () => {
  it('says where a task failed, from its failure manifest', () => {
    const failed = task('train', [], {
      state: 'failed',
      failure: { cell: 3, line: 'fit()', error: 'ValueError: bad C', notebook: null }
    });
    expect(taskDetail(failed, emptyBuild())).toBe('failed at cell 3: ValueError: bad C');
    expect(taskDetail(task('a', [], { state: 'up to date', reasons: [] }), emptyBuild())).toBe('up to date');
  });
});

describe('layout', () => {
  it('puts each task one row below its deepest upstream task', () => {
    expect(rows(EXAMPLE)).toEqual([['ingest'], ['validate'], ['features'], ['train'], ['evaluate'], ['export']]);
    const wide = [task('a'), task('b'), task('c', ['b']), task('d', ['a'])];
    // c's upstream (b) sits right of d's (a): c goes right of d
    expect(rows(wide)).toEqual([['a', 'b'], ['d', 'c']]);
  });

  it('draws every edge, and edges that skip rows never cross a task box', () => {
    const box = layout(EXAMPLE, 320);
    expect(box.nodes).toHaveLength(6);
    expect(box.edges.map(e => `${e.from}>${e.to}`).sort()).toEqual(
      [
        'ingest>validate',
        'validate>features',
        'features>train',
        'train>evaluate',
        'features>evaluate',
        'train>export',
        'evaluate>export'
      ].sort()
    );
    const numbers = (d: string, command: string) =>
      d
        .split(/(?=[MHVCQ] )/)
        .filter(part => part.startsWith(`${command} `))
        .map(part => Number(part.slice(2).trim()));
    const skipping = box.edges.filter(e => e.d.includes(' V '));
    expect(skipping.map(e => `${e.from}>${e.to}`).sort()).toEqual(['features>evaluate', 'train>export']);
    const right = Math.max(...box.nodes.map(n => n.x + n.width));
    for (const edge of skipping) {
      expect(Math.max(...numbers(edge.d, 'H'))).toBeGreaterThan(right); // its lane is right of every box
      const [gap1, gap2] = numbers(edge.d, 'V'); // where it runs across: between rows only
      for (const y of [gap1, gap2]) {
        expect(box.nodes.some(n => y >= n.y && y <= n.y + n.height)).toBe(false);
      }
    }
    expect(box.height).toBe(2 * LAYOUT.pad + 6 * LAYOUT.nodeHeight + 5 * LAYOUT.rowGap);
    expect(box.nodes.every(n => n.x >= 0 && n.x + n.width <= box.width)).toBe(true);
  });

  it('widens past a narrow panel rather than squeezing boxes below their minimum', () => {
    const many = Array.from({ length: 8 }, (_, i) => task(`t${i}`));
    const box = layout(many, 200);
    expect(Math.min(...box.nodes.map(n => n.width))).toBeGreaterThanOrEqual(LAYOUT.minNodeWidth - 0.001);
    expect(box.width).toBeGreaterThan(200);
  });
});

describe('parseEventStream', () => {
  it('returns whole messages, keeps a partial one, skips keepalives and bad JSON', () => {
    const chunk1 = 'data: {"event": "task-started", "task": "a"}\n\n: keepalive\n\ndata: {"event": "ce';
    const first = parseEventStream(chunk1);
    expect(first.events).toEqual([{ event: 'task-started', task: 'a' }]);
    const second = parseEventStream(first.rest + 'll", "task": "a", "cell": 1, "cells": 2}\n\ndata: {oops\n\n');
    expect(second.events).toEqual([{ event: 'cell', task: 'a', cell: 1, cells: 2 }]);
    expect(second.rest).toBe('');
  });
});
