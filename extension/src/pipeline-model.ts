/**
 * The Pipeline panel's pure logic (no DOM): the server's picture of the project,
 * how each pushed build event changes it, and the words shown for each task (the
 * DAG's layout: pipeline-layout.ts). Unit-tested in __tests__/pipeline-model.spec.ts.
 */

export type TaskStateName = 'up to date' | 'outdated' | 'failed' | 'running';

export interface ITaskFailure {
  /** 0-based index of the failing cell in the source notebook (as `mlnb build` prints it). */
  cell: number | null;
  line: string;
  error: string;
  notebook: string | null;
}

export interface ITaskView {
  name: string;
  upstream: string[];
  state: TaskStateName;
  /** Why it is outdated, as `mlnb status --explain` says it. */
  reasons: string[];
  /** The task's notebook, relative to the Jupyter root (null: outside it). */
  source: string | null;
  /** Its executed notebook (or the partial one of a failed run), when it exists. */
  executed: string | null;
  failure: ITaskFailure | null;
}

export interface ILiveTask {
  state: TaskStateName;
  /** How many of the notebook's `cells` have started. */
  cell?: number | null;
  cells?: number | null;
  seconds?: number | null;
}

export interface IBuildView {
  running: boolean;
  pid: number | null;
  origin: string | null;
  force: boolean;
  resume: boolean;
  started: number | null;
  finished: boolean;
  ok: boolean | null;
  interrupted: boolean;
  error: string | null;
  run_id: string | null;
  tasks: Record<string, ILiveTask>;
  /**
   * (Panel only.) The build had ended when the last snapshot was taken: its task
   * states are history, the snapshot's states on disk are what holds now.
   */
  settled?: boolean;
}

export interface IPipelineSnapshot {
  project: string | null;
  tasks: ITaskView[];
  build: IBuildView;
}

/** One server-sent event of `GET pipeline/events` (see mlnb/core/build_events.py). */
export interface IPipelineEvent {
  event: string;
  t?: number;
  task?: string;
  [key: string]: unknown;
}

/** What the panel holds: the last snapshot with the live build laid over it. */
export interface IPipelineState {
  snapshot: IPipelineSnapshot | null;
  /** A one-line error of the server (e.g. a broken pipeline.yaml). */
  error: string | null;
}

export function emptyBuild(): IBuildView {
  return {
    running: false,
    pid: null,
    origin: null,
    force: false,
    resume: false,
    started: null,
    finished: false,
    ok: null,
    interrupted: false,
    error: null,
    run_id: null,
    tasks: {}
  };
}

/**
 * The state after `event`. A `snapshot` replaces everything; build events move
 * the build and its tasks along (the tasks' states on disk come with the
 * snapshot the server pushes when a build ends).
 */
export function applyEvent(
  state: IPipelineState,
  event: IPipelineEvent
): IPipelineState {
  if (event.event === 'snapshot') {
    const { tasks, build, project } = event as unknown as IPipelineSnapshot;
    return { snapshot: { tasks, build: { ...build, settled: !build.running }, project }, error: null };
  }
  if (event.event === 'error') {
    return { ...state, error: String(event.error ?? 'error') };
  }
  if (!state.snapshot) {
    return state;
  }
  const build: IBuildView = { ...state.snapshot.build, tasks: { ...state.snapshot.build.tasks } };
  const task = typeof event.task === 'string' ? event.task : null;
  switch (event.event) {
    case 'build-started':
      Object.assign(build, emptyBuild(), {
        settled: false,
        running: true,
        pid: (event.pid as number) ?? null,
        origin: (event.origin as string) ?? null,
        force: Boolean(event.force),
        resume: Boolean(event.resume),
        started: event.t ?? null
      });
      break;
    case 'build-requested': // (panel only) this panel's build holds the lock: its events follow
      Object.assign(build, emptyBuild(), {
        settled: false,
        running: true,
        pid: (event.pid as number) ?? null,
        origin: 'jupyter',
        force: event.mode === 'force',
        resume: event.mode === 'resume'
      });
      break;
    case 'lock':
      build.running = Boolean(event.running);
      if (event.running) {
        build.pid = (event.pid as number) ?? build.pid;
      }
      break;
    case 'task-started':
      if (task) {
        build.tasks[task] = { state: 'running', cell: 0, cells: null };
      }
      break;
    case 'cell':
      if (task) {
        build.tasks[task] = {
          ...(build.tasks[task] ?? { state: 'running' }),
          state: 'running',
          cell: event.cell as number,
          cells: event.cells as number
        };
      }
      break;
    case 'task-finished':
      if (task) {
        build.tasks[task] = {
          ...(build.tasks[task] ?? {}),
          state: event.status === 'executed' ? 'up to date' : 'failed',
          seconds: (event.seconds as number) ?? null
        };
      }
      break;
    case 'build-finished': // its process lets go of the lock right after
      build.running = false;
      build.finished = true;
      build.ok = (event.ok as boolean) ?? null;
      build.interrupted = Boolean(event.interrupted);
      build.error = (event.error as string) ?? null;
      build.run_id = (event.run_id as string) ?? null;
      break;
    case 'build-ended':
      build.running = false;
      build.finished = true;
      build.ok = false;
      build.error = String(event.error ?? 'the build ended');
      break;
    default:
      return state;
  }
  return { ...state, snapshot: { ...state.snapshot, build } };
}

/** A task's state as shown: the live build's word when it has one for the task. */
export function shownState(task: ITaskView, build: IBuildView): TaskStateName {
  const live = build.settled ? undefined : build.tasks[task.name];
  if (live && (build.running || build.finished)) {
    if (live.state === 'running' && !build.running) {
      return task.state; // the build ended meanwhile: the snapshot that follows says how
    }
    return live.state;
  }
  return task.state;
}

/** The short line under a task's name. */
export function taskDetail(task: ITaskView, build: IBuildView): string {
  const state = shownState(task, build);
  const live = build.settled ? undefined : build.tasks[task.name];
  if (state === 'running') {
    if (live?.cells) {
      return `running: cell ${live.cell ?? 0} of ${live.cells}`;
    }
    return 'running';
  }
  if (state === 'failed') {
    if (live && live.state === 'failed' && !task.failure) {
      return 'failed';
    }
    const f = task.failure;
    if (f && f.cell !== null) {
      return `failed at cell ${f.cell}: ${f.error}`;
    }
    return f ? `failed: ${f.error}` : 'failed';
  }
  if (state === 'outdated') {
    const n = task.reasons.length;
    return n > 1 ? `outdated (${n}): ${task.reasons[0]}` : n ? `outdated: ${task.reasons[0]}` : 'outdated';
  }
  if (live && live.state === 'up to date' && typeof live.seconds === 'number') {
    return `built (${live.seconds.toFixed(1)} s)`;
  }
  return 'up to date';
}

/** The notebook a click on the task opens: its executed notebook if any, else its source. */
export function notebookToOpen(task: ITaskView): string | null {
  return task.executed ?? task.source;
}

/** The panel's status line about the build. */
export function buildLine(build: IBuildView, tasks: ITaskView[]): string {
  const who = build.origin === 'jupyter' ? 'from JupyterLab' : 'from a terminal';
  if (build.running) {
    const live = tasks.map(t => [t.name, build.tasks[t.name]] as const).filter(([, l]) => l);
    const done = live.filter(([, l]) => l.state !== 'running').length;
    const now = live.filter(([, l]) => l.state === 'running').map(([name]) => name);
    const pid = build.pid !== null ? `, pid ${build.pid}` : '';
    const mode = build.force ? ' --force' : build.resume ? ' --resume' : '';
    const running = now.length ? `, running ${now.join(', ')}` : '';
    return `Build${mode} running (${who}${pid}): ${done} task${done === 1 ? '' : 's'} done${running}`;
  }
  if (!build.finished) {
    return build.pid === null ? 'No build yet.' : '';
  }
  if (build.error) {
    return `Last build failed: ${build.error}`;
  }
  if (build.interrupted) {
    return 'Last build was stopped.';
  }
  if (build.ok) {
    const ran = Object.values(build.tasks).length;
    return ran ? `Last build succeeded (${who}).` : 'Last build: nothing to do, all tasks were up to date.';
  }
  const failed = Object.entries(build.tasks)
    .filter(([, t]) => t.state === 'failed')
    .map(([name]) => name);
  return `Last build failed${failed.length ? `: ${failed.join(', ')}` : ''}.`;
}

/** Split a server-sent event stream: the complete `data:` messages in `buffer`, and the rest. */
export function parseEventStream(buffer: string): { events: IPipelineEvent[]; rest: string } {
  const events: IPipelineEvent[] = [];
  const blocks = buffer.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    const data = block
      .split('\n')
      .filter(line => line.startsWith('data:'))
      .map(line => line.slice(5).replace(/^ /, ''))
      .join('\n');
    if (!data) {
      continue; // a keepalive comment
    }
    try {
      const parsed = JSON.parse(data);
      if (parsed && typeof parsed.event === 'string') {
        events.push(parsed as IPipelineEvent);
      }
    } catch {
      // a malformed message is skipped, the stream goes on
    }
  }
  return { events, rest };
}
