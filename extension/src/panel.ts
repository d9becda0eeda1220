/**
 * The "Runs" side panel: recent build runs with their gate and registry
 * badges, a Promote button per candidate, Refresh and Rollback in the header.
 */
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { formatMetric, shortId } from './format';
import { IRun, IRunList, listRuns } from './request';

export const PANEL_ID = 'mlnb-runs-panel';

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
}

function button(label: string, className: string, title: string): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = `jp-Button jp-mod-styled jp-mod-minimal ${className}`;
  node.textContent = label;
  node.title = title;
  return node;
}

function span(className: string, text: string, title = ''): HTMLSpanElement {
  const node = document.createElement('span');
  node.className = className;
  node.textContent = text;
  if (title) {
    node.title = title;
  }
  return node;
}

function badge(kind: string, text: string, title = ''): HTMLSpanElement {
  return span(`mlnb-badge mlnb-badge-${kind}`, text, title);
}

function formatTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`
  );
}

function shortCommit(commit: string): string {
  if (!commit || commit === 'unknown') {
    return commit || '-';
  }
  const dirty = commit.endsWith('-dirty');
  return commit.slice(0, 7) + (dirty ? '*' : '');
}

/** Whether a run gets a Promote button. */
export function canPromote(run: IRun): boolean {
  return !run.champion && (run.model_version !== null || run.gate === 'failed');
}

export class RunsPanel extends Widget {
  constructor(private readonly _options: IRunsPanelOptions) {
    super();
    this.id = PANEL_ID;
    this.addClass('mlnb-runs-panel');
    this.title.icon = runsIcon;
    // Icon only in the side bar, like the core panels; the header names it.
    this.title.caption = 'Runs (mlnb): build runs and the champion model';

    const header = document.createElement('div');
    header.className = 'mlnb-runs-header';
    const title = span('mlnb-runs-title', 'Runs');
    this._model = span('mlnb-runs-model', '');
    const refresh = button('Refresh', 'mlnb-refresh-button', 'Reload the runs');
    refresh.addEventListener('click', () => void this.refresh());
    const rollbackButton = button(
      'Rollback',
      'mlnb-rollback-button',
      'Move the champion back to the previous version'
    );
    rollbackButton.addEventListener('click', () => void this._rollback());
    header.append(title, this._model, refresh, rollbackButton);

    this._status = document.createElement('div');
    this._status.className = 'mlnb-runs-status';
    this._list = document.createElement('ul');
    this._list.className = 'mlnb-runs-list';
    this.node.append(header, this._status, this._list);
  }

  /** The last list fetched, or null before the first answer. */
  get data(): IRunList | null {
    return this._data;
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

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private async _load(): Promise<void> {
    try {
      this._data = await listRuns(20);
      this._status.textContent = '';
      this._status.classList.remove('mlnb-runs-error');
      this._render(this._data);
    } catch (error) {
      this._status.textContent =
        error instanceof Error ? error.message : String(error);
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

  private _render(data: IRunList): void {
    this._model.textContent = data.champion
      ? `${data.model_name} · champion v${data.champion.version}`
      : `${data.model_name} · no champion`;
    this._list.replaceChildren();
    if (data.runs.length === 0) {
      this._status.textContent = 'No build runs yet: run `mlnb build`.';
    }
    for (const run of data.runs) {
      this._list.appendChild(this._row(run));
    }
  }

  private _row(run: IRun): HTMLLIElement {
    const row = document.createElement('li');
    row.className = 'mlnb-run';
    row.dataset.runId = run.run_id;
    if (run.champion) {
      row.classList.add('mlnb-mod-champion');
    }

    const line1 = document.createElement('div');
    line1.className = 'mlnb-run-line';
    line1.append(
      span('mlnb-run-id', shortId(run.run_id), run.run_id),
      span('mlnb-run-time', formatTime(run.start_time)),
      span('mlnb-run-commit', shortCommit(run.git_commit), run.git_commit)
    );

    const line2 = document.createElement('div');
    line2.className = 'mlnb-run-line';
    line2.append(
      span('mlnb-run-metric mlnb-run-f1', `F1 ${formatMetric(run.metrics.f1)}`),
      span(
        'mlnb-run-metric mlnb-run-roc-auc',
        `AUC ${formatMetric(run.metrics.roc_auc)}`
      )
    );

    const badges = document.createElement('div');
    badges.className = 'mlnb-run-line mlnb-run-badges';
    let failureLine: HTMLDivElement | null = null;
    if (run.status === 'failed' && run.gate !== 'failed') {
      const task = run.failed_task ? ` (${run.failed_task})` : '';
      badges.append(badge('status-failed', `build failed${task}`, run.failure ?? ''));
      if (run.failure_task && run.failure) {
        failureLine = document.createElement('div');
        failureLine.className = 'mlnb-run-line mlnb-run-failure';
        failureLine.append(
          span('mlnb-run-failure-text', `${run.failure_task}: ${run.failure}`, run.failure)
        );
        const failedTask = run.failure_task;
        if (run.debuggable) {
          // only while this failure is the task's current one (a later build retires it)
          const debugButton = button(
            'Debug',
            'mlnb-debug-button',
            `Open a notebook that restores ${failedTask}'s variables and runs from the failing cell`
          );
          debugButton.addEventListener(
            'click',
            () => void this._options.onDebug?.(failedTask, run.run_id)
          );
          failureLine.append(debugButton);
        }
      }
    }
    if (run.gate === 'passed' || run.gate === 'failed') {
      badges.append(badge(`gate-${run.gate}`, run.gate, run.gate_reason));
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
    if (canPromote(run)) {
      const promote = button(
        'Promote',
        'mlnb-promote-button',
        `Make run ${shortId(run.run_id)} the champion`
      );
      promote.addEventListener('click', () => void this._promote(run.run_id));
      badges.append(promote);
    }

    row.append(line1, line2, badges);
    if (failureLine) {
      row.append(failureLine);
    }
    return row;
  }

  private _data: IRunList | null = null;
  private _pending: Promise<void> | null = null;
  private _model: HTMLSpanElement;
  private _status: HTMLDivElement;
  private _list: HTMLUListElement;
}
