/**
 * The "Pipeline" side panel: the DAG of pipeline.yaml with each task's state
 * (up to date; outdated and why; running, cell k of n; failed at cell N), live
 * while a build runs (events pushed by the server, whoever started the build),
 * and Build / Force / Resume / Stop. A click on a task opens its executed
 * notebook, or its source notebook when it has not run.
 */
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  BuildMode,
  getPipeline,
  IBuildStarted,
  IBuildStopped,
  IEventStream,
  startBuild,
  stopBuild,
  subscribe
} from './pipeline-api';
import {
  applyEvent,
  buildLine,
  IPipelineEvent,
  IPipelineSnapshot,
  IPipelineState,
  ITaskView,
  notebookToOpen,
  shownState,
  taskDetail
} from './pipeline-model';
import { layout } from './pipeline-layout';

export const PIPELINE_PANEL_ID = 'mlnb-pipeline-panel';

export const pipelineIcon = new LabIcon({
  name: 'mlnb:pipeline',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h6v5H8v3h8V8h-2V3h6v5h-2v5h-5v3h2v5H9v-5h2v-3H6V8H4V3zm2 ' +
    '2v1h2V5H6zm10 0v1h2V5h-2zm-5 13v1h2v-1h-2z"/></svg>'
});

/** The server calls the panel makes (replaced in unit tests). */
export interface IPipelineApi {
  getPipeline: () => Promise<IPipelineSnapshot>;
  startBuild: (mode: BuildMode) => Promise<IBuildStarted>;
  stopBuild: () => Promise<IBuildStopped>;
  subscribe: (
    onEvent: (event: IPipelineEvent) => void,
    onDown: (message: string) => void
  ) => IEventStream;
}

export interface IPipelinePanelOptions {
  /** Open a notebook (a path relative to the Jupyter root), e.g. with docmanager:open. */
  onOpen: (path: string) => Promise<void>;
  api?: Partial<IPipelineApi>;
}

const STATE_CLASS: Record<string, string> = {
  'up to date': 'mlnb-task-uptodate',
  outdated: 'mlnb-task-outdated',
  failed: 'mlnb-task-failed',
  running: 'mlnb-task-running'
};

const SVG = 'http://www.w3.org/2000/svg';

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text) {
    node.textContent = text;
  }
  return node;
}

export class PipelinePanel extends Widget {
  private _state: IPipelineState = { snapshot: null, error: null };
  private _message = '';
  private _busy = false; // a Build or Stop request is on its way
  private _started: number | null = null; // pid of the build this panel started last
  private _stream: IEventStream | null = null;
  private readonly _api: IPipelineApi;
  private readonly _buttons: Record<BuildMode | 'stop', HTMLButtonElement>;
  private readonly _status: HTMLDivElement;
  private readonly _messageNode: HTMLDivElement;
  private readonly _graph: HTMLDivElement;
  private readonly _why: HTMLDivElement;

  constructor(private readonly _options: IPipelinePanelOptions) {
    super();
    this._api = { getPipeline, startBuild, stopBuild, subscribe, ..._options.api };
    this.id = PIPELINE_PANEL_ID;
    this.addClass('mlnb-pipeline-panel');
    this.title.icon = pipelineIcon;
    this.title.caption = 'mlnb Pipeline';

    const header = el('div', 'mlnb-pipeline-header');
    header.appendChild(el('span', 'mlnb-pipeline-title', 'Pipeline'));
    const make = (mode: BuildMode | 'stop', label: string, title: string) => {
      const b = el('button', `jp-Button jp-mod-styled jp-mod-minimal mlnb-pipeline-${mode}`, label);
      b.type = 'button';
      b.title = title;
      b.addEventListener('click', () => void (mode === 'stop' ? this.stop() : this.build(mode)));
      header.appendChild(b);
      return b;
    };
    this._buttons = {
      build: make('build', 'Build', 'mlnb build: run the outdated tasks'),
      force: make('force', 'Force', 'mlnb build --force: run every task'),
      resume: make('resume', 'Resume', 'mlnb build --resume: restart failed tasks at their failing cell'),
      stop: make('stop', 'Stop', 'Interrupt the running build (as Ctrl-C does)')
    };
    this._status = el('div', 'mlnb-pipeline-status');
    this._messageNode = el('div', 'mlnb-pipeline-message');
    this._graph = el('div', 'mlnb-pipeline-graph');
    this._why = el('div', 'mlnb-pipeline-why');
    for (const node of [header, this._status, this._messageNode, this._graph, this._why]) {
      this.node.appendChild(node);
    }
    this.render();
  }

  get state(): IPipelineState {
    return this._state;
  }

  /** Take one pushed event (or a snapshot) and show it. */
  handleEvent(event: IPipelineEvent): void {
    this._state = applyEvent(this._state, event);
    // a new situation makes an old message stale (but not the word on the build just started here)
    if (event.event === 'snapshot' || (event.event === 'build-started' && event.pid !== this._started)) {
      this._message = '';
    }
    this.render();
  }

  async refresh(): Promise<void> {
    try {
      this.handleEvent({ event: 'snapshot', ...(await this._api.getPipeline()) });
    } catch (error) {
      this.handleEvent({ event: 'error', error: error instanceof Error ? error.message : String(error) });
    }
  }

  /** Start `mlnb build` (in `mode`) on the server; the progress arrives as events. */
  async build(mode: BuildMode = 'build'): Promise<boolean> {
    this._busy = true;
    this._message = '';
    this.render();
    try {
      const started = await this._api.startBuild(mode);
      this._started = started.pid;
      if (started.running) {
        this._state = applyEvent(this._state, { event: 'build-requested', pid: started.pid, mode });
      }
      this._message = `Started mlnb build${mode === 'build' ? '' : ` --${mode}`} (pid ${started.pid}).`;
      return true;
    } catch (error) {
      this._message = error instanceof Error ? error.message : String(error);
      return false;
    } finally {
      this._busy = false;
      this.render();
    }
  }

  async stop(): Promise<void> {
    this._busy = true;
    this.render();
    try {
      const stopped = await this._api.stopBuild();
      this._message = `Stopping the build (${stopped.signal} sent to pid ${stopped.pid})…`;
    } catch (error) {
      this._message = error instanceof Error ? error.message : String(error);
    } finally {
      this._busy = false;
      this.render();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._listen();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._listen();
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._unlisten();
  }

  protected onBeforeDetach(msg: Message): void {
    this._unlisten();
    super.onBeforeDetach(msg);
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this._renderGraph();
  }

  dispose(): void {
    this._unlisten();
    super.dispose();
  }

  private _listen(): void {
    if (this._stream) {
      return;
    }
    this._stream = this._api.subscribe(
      event => this.handleEvent(event),
      message => {
        this._message = message;
        this.render();
      }
    );
  }

  private _unlisten(): void {
    this._stream?.close();
    this._stream = null;
  }

  render(): void {
    const snap = this._state.snapshot;
    const running = Boolean(snap?.build.running);
    for (const mode of ['build', 'force', 'resume'] as const) {
      this._buttons[mode].disabled = this._busy || running || !snap;
    }
    this._buttons.stop.disabled = this._busy || !running;
    this._status.textContent = snap ? buildLine(snap.build, snap.tasks) : 'Loading…';
    this.node.classList.toggle('mlnb-pipeline-building', running);
    const message = this._state.error ?? this._message;
    this._messageNode.textContent = message;
    this._messageNode.classList.toggle('mlnb-pipeline-error', Boolean(this._state.error));
    this._renderGraph();
    this._renderWhy();
  }

  private _renderGraph(): void {
    const snap = this._state.snapshot;
    this._graph.replaceChildren();
    if (!snap) {
      return;
    }
    const width = Math.max(this.node.clientWidth || 300, 200);
    const box = layout(snap.tasks, width);
    this._graph.style.height = `${box.height}px`;
    this._graph.style.width = `${box.width}px`;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'mlnb-pipeline-edges');
    svg.setAttribute('width', String(box.width));
    svg.setAttribute('height', String(box.height));
    const defs = document.createElementNS(SVG, 'defs');
    const marker = document.createElementNS(SVG, 'marker');
    for (const [k, v] of Object.entries({
      id: 'mlnb-arrow',
      viewBox: '0 0 10 10',
      refX: '9',
      refY: '5',
      markerWidth: '7',
      markerHeight: '7',
      orient: 'auto-start-reverse'
    })) {
      marker.setAttribute(k, v);
    }
    const tip = document.createElementNS(SVG, 'path');
    tip.setAttribute('d', 'M 0 0 L 10 5 L 0 10 z');
    marker.appendChild(tip);
    defs.appendChild(marker);
    svg.appendChild(defs);
    for (const edge of box.edges) {
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', edge.d);
      path.setAttribute('class', 'mlnb-pipeline-edge');
      path.setAttribute('marker-end', 'url(#mlnb-arrow)');
      path.dataset.from = edge.from;
      path.dataset.to = edge.to;
      svg.appendChild(path);
    }
    this._graph.appendChild(svg);
    const byName = new Map(snap.tasks.map(t => [t.name, t]));
    for (const node of box.nodes) {
      const task = byName.get(node.name) as ITaskView;
      this._graph.appendChild(this._taskNode(task, node));
    }
  }

  private _taskNode(
    task: ITaskView,
    at: { x: number; y: number; width: number; height: number }
  ): HTMLElement {
    const build = this._state.snapshot!.build;
    const state = shownState(task, build);
    const node = el('div', `mlnb-task ${STATE_CLASS[state] ?? ''}`);
    node.dataset.task = task.name;
    node.dataset.state = state;
    Object.assign(node.style, {
      left: `${at.x}px`,
      top: `${at.y}px`,
      width: `${at.width}px`,
      height: `${at.height}px`
    });
    const target = notebookToOpen(task);
    node.title = [
      `${task.name}: ${state}`,
      ...task.reasons.map(r => `• ${r}`),
      target ? `Click to open ${target}` : ''
    ]
      .filter(Boolean)
      .join('\n');
    node.appendChild(el('div', 'mlnb-task-name', task.name));
    node.appendChild(el('div', 'mlnb-task-detail', taskDetail(task, build)));
    const live = build.tasks[task.name];
    if (state === 'running' && live?.cells) {
      const bar = el('div', 'mlnb-task-progress');
      bar.style.width = `${Math.round((100 * (live.cell ?? 0)) / live.cells)}%`;
      node.appendChild(bar);
    }
    if (target) {
      node.classList.add('mlnb-task-openable');
      node.addEventListener('click', () => void this._options.onOpen(target));
    }
    return node;
  }

  private _renderWhy(): void {
    const snap = this._state.snapshot;
    this._why.replaceChildren();
    if (!snap) {
      return;
    }
    const pending = snap.tasks.filter(t => {
      const s = shownState(t, snap.build);
      return (s === 'outdated' || s === 'failed') && (t.reasons.length || t.failure);
    });
    if (!pending.length) {
      return;
    }
    this._why.appendChild(el('div', 'mlnb-pipeline-why-title', 'Why (mlnb status --explain)'));
    for (const task of pending) {
      const item = el('div', 'mlnb-why-task');
      item.dataset.task = task.name;
      item.appendChild(el('div', 'mlnb-why-name', task.name));
      const list = el('ul', 'mlnb-why-reasons');
      if (task.failure) {
        const where = task.failure.cell !== null ? `failed at cell ${task.failure.cell}` : 'failed';
        const line = task.failure.line ? ` (${task.failure.line})` : '';
        list.appendChild(el('li', 'mlnb-why-failure', `${where}${line}: ${task.failure.error}`));
      }
      for (const reason of task.reasons) {
        list.appendChild(el('li', '', reason));
      }
      item.appendChild(list);
      this._why.appendChild(item);
    }
  }
}
