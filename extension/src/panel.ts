/**
 * The "Runs" side panel: recent build runs with every metric they report, the params that differ
 * from the champion's build, a gate verdict badge (distinct from a crashed build's), registry
 * badges (champion, previous, forced), a Promote button per candidate, two checkboxes' worth of
 * Compare, Refresh and Rollback in the header. While visible it asks the server every few seconds
 * whether anything changed (a cheap token) and reloads only when it did.
 */
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { badge, button, el, externalLink, span } from './dom';
import {
  formatMetric,
  formatParam,
  formatTime,
  metricNames,
  shortCommit,
  shortId,
  verdictLabel
} from './format';
import { IRun, IRunList, listRuns, runChanges } from './request';

export const PANEL_ID = 'mlnb-runs-panel';

/** How many runs the panel lists. */
export const RUNS_LIMIT = 50;

/** Milliseconds between two "did anything change?" questions while the panel is visible. */
export const POLL_INTERVAL = 3000;

export const runsIcon = new LabIcon({
  name: 'mlnb:runs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M7 2h10v2h4v3a5 5 0 0 1-4.9 5 ' +
    '5 5 0 0 1-3.1 2.9V18h3v2H8v-2h3v-3.1A5 5 0 0 1 7.9 12 5 5 0 0 1 3 7V4h4V2zm10 ' +
    '4v4a3 3 0 0 0 2-3V6h-2zM5 6v1a3 3 0 0 0 2 3V6H5z"/></svg>'
});

export interface IRunsPanelOptions {
  /** Run the promote flow; resolves true when the registry may have changed. */
  onPromote: (runId: string) => Promise<boolean>;
  /** Run the rollback flow; resolves true when the registry may have changed. */
  onRollback: () => Promise<boolean>;
  /** Open the debug notebook of a failed task (`mlnb debug TASK`) of build `runId`. */
  onDebug?: (task: string, runId: string) => Promise<void>;
  /** Open a run's details (params, plots, promotions) in the main area. */
  onOpenRun?: (runId: string) => void;
  /** Open two runs side by side in the main area. */
  onCompare?: (a: string, b: string) => void;
  /** Milliseconds between polls while visible; 0 turns polling off. */
  pollInterval?: number;
}

/** Whether a run gets a Promote button (a run the gate turned down can still be forced). */
export function canPromote(run: IRun): boolean {
  const verdict = run.verdict ?? (run.gate === 'failed' ? 'failed' : '-');
  return (
    !run.champion &&
    (run.model_version !== null || verdict === 'failed' || verdict === 'not_promotable')
  );
}

/** Whether a build crashed (a task failed) rather than being turned down by its gate. */
export function crashed(run: IRun): boolean {
  return run.status === 'failed' && (run.verdict ?? '-') !== 'failed' && run.gate !== 'failed';
}

export class RunsPanel extends Widget {
  constructor(private readonly _options: IRunsPanelOptions) {
    super();
    this.id = PANEL_ID;
    this.addClass('mlnb-runs-panel');
    this.title.icon = runsIcon;
    // Icon only in the side bar, like the core panels; the header names it.
    this.title.caption = 'Runs (mlnb): build runs and the champion model';

    const header = el('div', 'mlnb-runs-header');
    this._model = span('mlnb-runs-model', '');
    const refresh = button('Refresh', 'mlnb-refresh-button', 'Reload the runs');
    refresh.addEventListener('click', () => void this.refresh());
    this._compare = button('Compare', 'mlnb-compare-button', 'Tick two runs to compare them');
    this._compare.disabled = true;
    this._compare.addEventListener('click', () => {
      const [a, b] = this._selected;
      if (a && b) {
        this._options.onCompare?.(a, b);
      }
    });
    const rollbackButton = button(
      'Rollback',
      'mlnb-rollback-button',
      'Move the champion back to the previous version'
    );
    rollbackButton.addEventListener('click', () => void this._rollback());
    header.append(span('mlnb-runs-title', 'Runs'), this._model, refresh, this._compare, rollbackButton);

    this._status = el('div', 'mlnb-runs-status');
    this._list = el('ul', 'mlnb-runs-list');
    this.node.append(header, this._status, this._list);
  }

  /** The last list fetched, or null before the first answer. */
  get data(): IRunList | null {
    return this._data;
  }

  /** The runs ticked for comparison, oldest tick first (at most two). */
  get selected(): string[] {
    return [...this._selected];
  }

  /** Fetch the runs and redraw; concurrent calls share one request. */
  refresh(): Promise<void> {
    if (!this._pending) {
      this.node.classList.add('mlnb-mod-loading');
      this._pending = this._load().finally(() => {
        this._pending = null;
        this.node.classList.remove('mlnb-mod-loading');
      });
    }
    return this._pending;
  }

  /**
   * Ask whether the runs changed since the last list (`GET runs/changes`) and reload only if so.
   * Resolves true when it reloaded. Errors are left to the next refresh to show.
   */
  async poll(): Promise<boolean> {
    if (this._pending || (typeof document !== 'undefined' && document.hidden)) {
      return false;
    }
    let token: string;
    try {
      token = (await runChanges()).token;
    } catch {
      return false;
    }
    if (this._data !== null && token === this._data.token) {
      return false;
    }
    await this.refresh();
    return true;
  }

  dispose(): void {
    this._stopPolling();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
    this._startPolling();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopPolling();
  }

  protected onBeforeDetach(msg: Message): void {
    this._stopPolling();
    super.onBeforeDetach(msg);
  }

  private _startPolling(): void {
    const interval = this._options.pollInterval ?? POLL_INTERVAL;
    if (this._timer === null && interval > 0) {
      this._timer = window.setInterval(() => void this.poll(), interval);
    }
  }

  private _stopPolling(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private async _load(): Promise<void> {
    try {
      this._data = await listRuns(RUNS_LIMIT);
      this._status.textContent = '';
      this._status.classList.remove('mlnb-runs-error');
      this._render(this._data);
    } catch (error) {
      this._status.textContent = error instanceof Error ? error.message : String(error);
      this._status.classList.add('mlnb-runs-error');
    }
  }

  private async _promote(runId: string): Promise<void> {
    if (await this._options.onPromote(runId)) {
      await this.refresh();
    }
  }

  private async _rollback(): Promise<void> {
    if (await this._options.onRollback()) {
      await this.refresh();
    }
  }

  private _toggle(runId: string, on: boolean): void {
    this._selected = this._selected.filter(id => id !== runId);
    if (on) {
      this._selected.push(runId);
      if (this._selected.length > 2) {
        this._selected.shift(); // two at a time: the oldest tick goes
      }
    }
    this._syncSelection();
  }

  private _syncSelection(): void {
    this._list.querySelectorAll<HTMLLIElement>('.mlnb-run').forEach(row => {
      const input = row.querySelector<HTMLInputElement>('.mlnb-compare-input');
      const on = this._selected.includes(row.dataset.runId ?? '');
      row.classList.toggle('mlnb-mod-selected', on);
      if (input) {
        input.checked = on;
      }
    });
    this._compare.disabled = this._selected.length !== 2;
    this._compare.textContent = `Compare${this._selected.length ? ` (${this._selected.length}/2)` : ''}`;
  }

  private _render(data: IRunList): void {
    this._model.textContent = data.champion
      ? `${data.model_name} · champion v${data.champion.version}`
      : `${data.model_name} · no champion`;
    const present = new Set(data.runs.map(r => r.run_id));
    this._selected = this._selected.filter(id => present.has(id));
    const keys = data.metric_keys ?? metricNames(...data.runs.map(r => r.metrics));
    const rows = data.runs.map(run => this._row(run, keys));
    this._list.replaceChildren(...rows);
    if (data.runs.length === 0) {
      this._status.textContent = 'No build runs yet: run `mlnb build`.';
    }
    this._syncSelection();
  }

  private _row(run: IRun, metricKeys: string[]): HTMLLIElement {
    const row = el('li', 'mlnb-run');
    row.dataset.runId = run.run_id;
    if (run.champion) {
      row.classList.add('mlnb-mod-champion');
    }

    const select = el('input', 'mlnb-compare-input', '', 'Tick two runs, then Compare');
    select.type = 'checkbox';
    select.addEventListener('change', () => this._toggle(run.run_id, select.checked));
    const id = el('button', 'mlnb-run-id', shortId(run.run_id), `${run.run_id}: open its details`);
    id.type = 'button';
    id.addEventListener('click', () => this._options.onOpenRun?.(run.run_id));
    const line1 = el('div', 'mlnb-run-line');
    line1.append(
      select,
      id,
      span('mlnb-run-time', formatTime(run.start_time)),
      span('mlnb-run-commit', shortCommit(run.git_commit), run.git_commit)
    );
    if (run.mlflow_url) {
      line1.append(externalLink(run.mlflow_url, 'MLflow', 'mlnb-run-mlflow', 'Open this run in the MLflow UI'));
    }

    const metrics = el('div', 'mlnb-run-line mlnb-run-metrics');
    for (const key of metricKeys) {
      if (key in run.metrics) {
        const metric = span('mlnb-run-metric', '', key);
        metric.dataset.metric = key;
        metric.append(span('mlnb-run-metric-name', key), ` ${formatMetric(run.metrics[key])}`);
        metrics.append(metric);
      }
    }

    const parts: HTMLElement[] = [line1, metrics];
    if (run.params_diff && run.params_diff.length > 0) {
      const params = el('div', 'mlnb-run-line mlnb-run-params');
      for (const diff of run.params_diff) {
        const chip = span(
          'mlnb-param-diff',
          `${diff.key}=${formatParam(diff.value)}`,
          `differs from the champion's ${formatParam(diff.champion)}`
        );
        chip.dataset.param = diff.key;
        params.append(chip);
      }
      parts.push(params);
    }

    const badges = el('div', 'mlnb-run-line mlnb-run-badges');
    parts.push(badges);
    if (crashed(run)) {
      const task = run.failed_task ? ` (${run.failed_task})` : '';
      badges.append(badge('status-failed', `build failed${task}`, run.failure ?? ''));
      if (run.failure_task && run.failure) {
        parts.push(this._failureLine(run.failure_task, run.failure, run.run_id, run.debuggable === true));
      }
    }
    const verdict = run.verdict ?? (run.gate === 'passed' ? 'promotable' : run.gate);
    const label = verdictLabel(verdict);
    if (label) {
      badges.append(badge(`verdict-${verdict.replace(/_/g, '-')}`, label, run.gate_reason));
    }
    if (run.model_version !== null) {
      badges.append(badge('version', `v${run.model_version}`, 'registered model version'));
    }
    if (run.champion) {
      badges.append(badge('champion', 'champion'));
    }
    if (run.previous) {
      badges.append(badge('previous', 'previous', 'the version a rollback returns to'));
    }
    if (run.promotion?.forced) {
      const p = run.promotion;
      badges.append(
        badge(
          'forced',
          'forced',
          `promoted by force by ${p.user} at ${p.time}` +
            (p.reason ? ` despite: ${p.reason}` : '') +
            (p.note ? ` (note: ${p.note})` : '')
        )
      );
    }
    if (canPromote(run)) {
      const promote = button('Promote', 'mlnb-promote-button', `Make run ${shortId(run.run_id)} the champion`);
      promote.addEventListener('click', () => void this._promote(run.run_id));
      badges.append(promote);
    }
    row.append(...parts);
    return row;
  }

  private _failureLine(task: string, failure: string, runId: string, debuggable: boolean): HTMLDivElement {
    const line = el('div', 'mlnb-run-line mlnb-run-failure');
    line.append(span('mlnb-run-failure-text', `${task}: ${failure}`, failure));
    if (debuggable) {
      // only while this failure is the task's current one (a later build retires it)
      const debugButton = button(
        'Debug',
        'mlnb-debug-button',
        `Open a notebook that restores ${task}'s variables and runs from the failing cell`
      );
      debugButton.addEventListener('click', () => void this._options.onDebug?.(task, runId));
      line.append(debugButton);
    }
    return line;
  }

  private _data: IRunList | null = null;
  private _pending: Promise<void> | null = null;
  private _timer: number | null = null;
  private _selected: string[] = [];
  private _model: HTMLSpanElement;
  private _compare: HTMLButtonElement;
  private _status: HTMLDivElement;
  private _list: HTMLUListElement;
}
