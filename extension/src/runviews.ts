/**
 * Main-area views of the Runs panel: one run's details (metrics against the champion, the params
 * that differ, every param, the evaluate task's plots, its promotions, a link to the MLflow UI) and
 * the promotion policy's requirements (held or not, and why), the lineage chain (loaded when the view
 * opens, lineage-view.ts), and two runs compared side by side (params, metrics and plots; differences highlighted).
 * Plots are fetched through the API (token and all) and shown from object URLs.
 */
import { Widget } from '@lumino/widgets';

import { badge, button, el, externalLink, span, table } from './dom';
import { LineageSection } from './lineage-view';
import { requirementList, requirementSummary } from './requirements';
import {
  differingFirst,
  formatDelta,
  formatMetric,
  formatParam,
  formatTime,
  metricNames,
  shortCommit,
  shortId,
  verdictLabel
} from './format';
import {
  compareRuns,
  fetchArtifact,
  getRun,
  IComparison,
  IPlot,
  IPromotion,
  IRunDetail,
  IRunFull
} from './request';

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Loads plots into <img> elements and frees their object URLs when the view goes. */
class Plots {
  figure(plot: IPlot | null, caption: string): HTMLElement {
    const figure = el('figure', 'mlnb-plot');
    if (!plot) {
      figure.classList.add('mlnb-mod-missing');
      figure.append(span('mlnb-plot-missing', 'no such plot'), el('figcaption', '', caption));
      return figure;
    }
    figure.dataset.plot = plot.name;
    const img = el('img', 'mlnb-plot-img');
    img.alt = `${plot.task}: ${plot.name}`;
    figure.append(img, el('figcaption', '', caption));
    fetchArtifact(plot.run_id, plot.path)
      .then(blob => {
        if (this._disposed || typeof URL.createObjectURL !== 'function') {
          return;
        }
        const url = URL.createObjectURL(blob);
        this._urls.push(url);
        img.src = url;
      })
      .catch(error => {
        figure.classList.add('mlnb-mod-error');
        img.replaceWith(span('mlnb-plot-error', message(error)));
      });
    return figure;
  }

  dispose(): void {
    this._disposed = true;
    this._urls.forEach(url => URL.revokeObjectURL(url));
    this._urls = [];
  }

  private _urls: string[] = [];
  private _disposed = false;
}

function runBadges(run: IRunFull): HTMLElement {
  const line = el('div', 'mlnb-run-badges mlnb-view-badges');
  if (run.status === 'failed' && run.verdict !== 'failed') {
    line.append(badge('status-failed', `build failed${run.failed_task ? ` (${run.failed_task})` : ''}`, run.failure ?? ''));
  }
  const label = verdictLabel(run.verdict);
  if (label) {
    line.append(badge(`verdict-${run.verdict.replace(/_/g, '-')}`, label, run.gate_reason));
  }
  if (run.model_version !== null) {
    line.append(badge('version', `v${run.model_version}`));
  }
  if (run.champion) {
    line.append(badge('champion', 'champion'));
  }
  if (run.previous) {
    line.append(badge('previous', 'previous'));
  }
  if (run.promotion?.forced) {
    line.append(badge('forced', 'forced', `promoted by force by ${run.promotion.user}`));
  }
  return line;
}

function section(title: string, ...children: (HTMLElement | string)[]): HTMLElement {
  const node = el('section', 'mlnb-view-section');
  node.append(el('h3', '', title), ...children);
  return node;
}

function promotionLine(p: IPromotion): string {
  const what = p.action === 'promote' ? `promoted v${p.version}` : `rolled back to v${p.version}`;
  return (
    `${p.time.slice(0, 19).replace('T', ' ')} UTC: ${what} by ${p.user}` +
    (p.forced ? ' (forced)' : '') +
    (p.note ? `: ${p.note}` : '')
  );
}

export interface IRunDetailOptions {
  /** Run the promote flow; resolves true when the registry may have changed. */
  onPromote?: (runId: string) => Promise<boolean>;
}

/** One run in full, in the main area. */
export class RunDetailView extends Widget {
  constructor(
    readonly runId: string,
    private readonly _options: IRunDetailOptions = {}
  ) {
    super();
    this.id = `mlnb-run-${runId}`;
    this.addClass('mlnb-view');
    this.addClass('mlnb-run-detail');
    this.node.dataset.runId = runId;
    this.title.label = `Run ${shortId(runId)}`;
    this.title.caption = `mlnb build run ${runId}`;
    this.title.closable = true;
  }

  /** Fetch the run and draw it (again). */
  async load(): Promise<void> {
    try {
      this._render(await getRun(this.runId));
    } catch (error) {
      this.node.replaceChildren(el('div', 'mlnb-runs-status mlnb-runs-error', message(error)));
    }
  }

  dispose(): void {
    this._plots.dispose();
    super.dispose();
  }

  private _render(detail: IRunDetail): void {
    const { run, champion, deltas } = detail;
    this._plots.dispose();
    this._plots = new Plots();
    const head = el('div', 'mlnb-view-head');
    head.append(
      el('h2', '', `Run ${shortId(run.run_id)}`),
      span('mlnb-run-time', formatTime(run.start_time)),
      span('mlnb-run-commit', shortCommit(run.git_commit), run.git_commit)
    );
    if (run.mlflow_url) {
      head.append(externalLink(run.mlflow_url, 'Open in MLflow', 'mlnb-run-mlflow', run.mlflow_url));
    }
    if (!run.champion && (detail.promotable || detail.refusal) && this._options.onPromote) {
      const promote = button('Promote…', 'mlnb-promote-button', 'Make this run the champion');
      promote.addEventListener('click', async () => {
        if (await this._options.onPromote?.(run.run_id)) {
          await this.load();
        }
      });
      head.append(promote);
    }
    const parts: HTMLElement[] = [head, runBadges(run)];
    if (run.gate_reason) {
      parts.push(el('p', 'mlnb-gate-reason', `Gate: ${run.gate_reason}`));
    }
    if (run.failure) {
      parts.push(el('p', 'mlnb-run-failure', `${run.failure_task}: ${run.failure}`));
    }
    if (detail.requirements) {
      const summary = el('p', 'mlnb-requirements-summary', requirementSummary(detail.requirements));
      parts.push(section('Promotion requirements', summary, requirementList(detail.requirements)));
    }

    const against = champion ? `champion v${champion.version}` : 'champion';
    parts.push(
      section(
        'Metrics',
        table(
          'mlnb-deltas mlnb-view-metrics',
          ['metric', 'this run', against, 'delta'],
          metricNames(run.metrics, champion?.metrics).map(name => ({
            cells: [name, formatMetric(run.metrics[name]), formatMetric(champion?.metrics?.[name]), formatDelta(deltas[name])],
            className: 'mlnb-delta-row',
            data: { metric: name }
          }))
        )
      )
    );

    const diffs = run.params_diff ?? [];
    parts.push(
      section(
        'Params that differ from the champion',
        !champion
          ? el('p', '', 'No champion yet.')
          : run.champion
            ? el('p', '', 'This run is the champion.')
            : diffs.length === 0
              ? el('p', 'mlnb-same-params', "Same params as the champion's build.")
              : table(
                  'mlnb-params mlnb-view-params-diff',
                  ['param', 'this run', against],
                  diffs.map(d => ({
                    cells: [d.key, formatParam(d.value), formatParam(d.champion)],
                    className: 'mlnb-mod-differs',
                    data: { param: d.key }
                  }))
                )
      )
    );
    const all = el('details', 'mlnb-all-params');
    const differing = new Set(diffs.map(d => d.key));
    all.append(
      el('summary', '', `All params (${Object.keys(run.params).length})`),
      table(
        'mlnb-params',
        ['param', 'value'],
        Object.entries(run.params).map(([k, v]) => ({
          cells: [k, v],
          className: differing.has(k) ? 'mlnb-mod-differs' : '',
          data: { param: k }
        }))
      )
    );
    parts.push(all);

    const plots = el('div', 'mlnb-plots');
    run.plots.forEach(plot => plots.append(this._plots.figure(plot, `${plot.task}: ${plot.name}`)));
    parts.push(
      section('Plots', run.plots.length ? plots : el('p', '', 'This build logged no plots (its evaluate task did not run).'))
    );

    const history = el('ul', 'mlnb-promotions');
    run.promotions.forEach(p => {
      const item = el('li', p.forced ? 'mlnb-mod-forced' : '', promotionLine(p));
      history.append(item);
    });
    parts.push(section('Promotions', run.promotions.length ? history : el('p', '', 'Never promoted.')));
    const lineage = new LineageSection(run.run_id);
    parts.push(lineage.node);
    this.node.replaceChildren(...parts);
    void lineage.load();
  }

  private _plots = new Plots();
}

/** Two runs side by side: params, metrics and plots, differences highlighted. */
export class CompareView extends Widget {
  constructor(
    readonly a: string,
    readonly b: string
  ) {
    super();
    this.id = `mlnb-compare-${a}-${b}`;
    this.addClass('mlnb-view');
    this.addClass('mlnb-compare');
    this.node.dataset.a = a;
    this.node.dataset.b = b;
    this.title.label = `${shortId(a)} vs ${shortId(b)}`;
    this.title.caption = `Compare mlnb build runs ${a} and ${b}`;
    this.title.closable = true;
  }

  async load(): Promise<void> {
    try {
      this._render(await compareRuns(this.a, this.b));
    } catch (error) {
      this.node.replaceChildren(el('div', 'mlnb-runs-status mlnb-runs-error', message(error)));
    }
  }

  dispose(): void {
    this._plots.dispose();
    super.dispose();
  }

  private _render(data: IComparison): void {
    this._plots.dispose();
    this._plots = new Plots();
    const name = (run: IRunFull) =>
      `${shortId(run.run_id)}${run.model_version ? ` v${run.model_version}` : ''}${run.champion ? ' (champion)' : ''}`;
    const [ha, hb] = [name(data.a), name(data.b)];
    const head = el('div', 'mlnb-view-head');
    head.append(el('h2', '', `Compare ${ha} and ${hb}`));
    const sides = el('div', 'mlnb-compare-sides');
    for (const [label, run] of [
      ['A', data.a],
      ['B', data.b]
    ] as const) {
      const side = el('div', 'mlnb-compare-side');
      side.dataset.side = label.toLowerCase();
      side.append(el('strong', '', `${label}: ${name(run)}`), span('mlnb-run-time', formatTime(run.start_time)), runBadges(run));
      sides.append(side);
    }

    const metrics = table(
      'mlnb-deltas mlnb-compare-metrics',
      ['metric', `A ${ha}`, `B ${hb}`, 'B − A'],
      data.metrics.map(m => ({
        cells: [m.key, formatMetric(m.a), formatMetric(m.b), formatDelta(m.delta)],
        className: `mlnb-delta-row${m.differs ? ' mlnb-mod-differs' : ''}`,
        data: { metric: m.key }
      }))
    );
    metrics.querySelectorAll<HTMLTableRowElement>('tbody tr').forEach((tr, i) => {
      const delta = data.metrics[i].delta;
      if (typeof delta === 'number' && delta !== 0) {
        tr.cells[3].classList.add(delta > 0 ? 'mlnb-delta-up' : 'mlnb-delta-down');
      }
    });
    const nDiff = data.params.filter(p => p.differs).length;
    const params = table(
      'mlnb-params mlnb-compare-params',
      ['param', `A ${ha}`, `B ${hb}`],
      differingFirst(data.params).map(p => ({
        cells: [p.key, formatParam(p.a), formatParam(p.b)],
        className: p.differs ? 'mlnb-mod-differs' : '',
        data: { param: p.key }
      }))
    );
    const plots = el('div', 'mlnb-compare-plots');
    for (const pair of data.plots) {
      const row = el('div', 'mlnb-compare-plot-row');
      row.dataset.plot = pair.name;
      row.append(this._plots.figure(pair.a, `A: ${pair.name}`), this._plots.figure(pair.b, `B: ${pair.name}`));
      plots.append(row);
    }
    this.node.replaceChildren(
      head,
      sides,
      section('Metrics', metrics),
      section(`Params (${nDiff} differ)`, params),
      section('Plots', data.plots.length ? plots : el('p', '', 'Neither build logged plots.'))
    );
  }

  private _plots = new Plots();
}
