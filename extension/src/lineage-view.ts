/**
 * The lineage chain of a build in its run detail, as `mlnb lineage RUN_ID` prints it: model version
 * <- build run <- git commit (clean or not) <- params <- raw data and each stage's dvc.lock hashes
 * <- executed notebooks <- artifact sha256 <- promotions and approvals. One row per link (label,
 * value, short hash with the full one in its tooltip), fetched from `GET runs/<id>/lineage` when
 * the detail opens; Verify asks the server to re-hash what it can reach (`?verify=1`).
 */
import { button, el, span } from './dom';
import { formatTime } from './format';
import { getLineage, ILineage, ILineageLink, ILineageRecord } from './request';

/** One row of the chain: `link` names its kind (data-link), `hash` is shown short, whole in its title. */
export interface ILineageRow {
  link: string;
  label: string;
  value: string;
  hash?: string;
  /** A row that is not as it should be (local edits, a forced promotion). */
  warn?: boolean;
}

const HASH_CHARS = 12;

export function shortHash(hash: string): string {
  return hash.length > HASH_CHARS ? hash.slice(0, HASH_CHARS) : hash;
}

function recordRow(r: ILineageRecord): ILineageRow {
  const forced = r.forced ? `, forced past ${(r.bypassed ?? []).join(', ') || 'the gate'}` : '';
  return {
    link: 'promotion',
    label: r.action,
    value: `${(r.time ?? '').slice(0, 19).replace('T', ' ')} by ${r.user}, version ${r.version || '-'}${forced}` +
      (r.note ? `: ${r.note}` : ''),
    warn: !!r.forced
  };
}

/** The chain's rows, newest link first (what `mlnb lineage` prints, one row per link). */
export function lineageRows(d: ILineage): ILineageRow[] {
  const rows: ILineageRow[] = [];
  const m = d.model;
  rows.push(
    m
      ? {
          link: 'model',
          label: 'model',
          value: `${m.name} version ${m.version}${m.aliases.length ? ` (${m.aliases.join(', ')})` : ''}, ` +
            `registered by ${m.registered_by}`
        }
      : { link: 'model', label: 'model', value: '(no registered version from this build)' }
  );
  const b = d.build;
  rows.push({
    link: 'build',
    label: 'build run',
    value: `${b.status}, ${formatTime(b.start_time)}, gate ${b.verdict || '-'}` +
      (b.gate_reason ? `: ${b.gate_reason}` : ''),
    hash: b.run_id
  });
  const g = d.git;
  const clean = g.clean === 'true' ? 'clean tree' : g.clean === 'false' ? `local edits: ${g.changed || '?'}` : '';
  rows.push({
    link: 'git',
    label: 'git commit',
    value: g.commit ? clean || 'tree state not recorded' : '-',
    hash: g.commit,
    warn: g.clean === 'false'
  });
  const params = Object.entries(d.params).filter(([k]) => !k.startsWith('mlflow.') && !k.startsWith('promotion.'));
  rows.push({ link: 'params', label: 'params', value: params.map(([k, v]) => `${k}=${v}`).join(', ') || '-' });
  if (d.gate_settings_changes) {
    rows.push({
      link: 'gate-settings',
      label: 'gate settings',
      value: `differ from the committed params.yaml: ${d.gate_settings_changes}`,
      warn: true
    });
  }
  const stages = Object.entries(d.dvc.stages);
  if (stages.length === 0) {
    rows.push({ link: 'data', label: 'data', value: `not recorded in dvc.lock: ${d.dvc.note || '-'}`, warn: true });
  }
  const raw = new Map<string, string>();
  stages.forEach(([, e]) => Object.entries(e.deps).forEach(([p, md5]) => p.startsWith('data/') && raw.set(p, md5)));
  raw.forEach((md5, path) => rows.push({ link: 'data', label: 'data', value: path, hash: md5 }));
  for (const [name, entry] of stages) {
    for (const [path, md5] of Object.entries(entry.outs)) {
      const file = path.split('/').pop() ?? path;
      if (!file.startsWith('.')) {
        rows.push({ link: 'stage', label: `stage ${name}`, value: path, hash: md5 });
      }
    }
  }
  for (const nb of d.notebooks) {
    rows.push({
      link: 'notebook',
      label: `notebook ${nb.task}`,
      value: nb.artifacts.join(', ') || '(none logged)',
      hash: nb.run_id
    });
  }
  if (m) {
    rows.push({
      link: 'artifact',
      label: 'artifact sha256',
      value: m.artifact_sha256 ? `model files of version ${m.version}` : 'not recorded',
      hash: m.artifact_sha256
    });
  }
  d.promotions.forEach(r => rows.push(recordRow(r)));
  for (const a of d.approvals) {
    rows.push({
      link: 'approval',
      label: 'approved',
      value: `${(a.time ?? '').slice(0, 19).replace('T', ' ')} by ${a.user}${a.note ? `: ${a.note}` : ''}`
    });
  }
  return rows;
}

/** The chain as a vertical list: one `.mlnb-lineage-row` per link (label, short hash or nothing, value). */
export function lineageChain(d: ILineage): HTMLOListElement {
  const list = el('ol', 'mlnb-lineage');
  for (const row of lineageRows(d)) {
    const item = el('li', `mlnb-lineage-row${row.warn ? ' mlnb-mod-warn' : ''}`);
    item.dataset.link = row.link;
    item.append(
      span('mlnb-lineage-label', row.label),
      span('mlnb-lineage-hash', row.hash ? shortHash(row.hash) : '', row.hash ?? ''),
      span('mlnb-lineage-value', row.value, row.value)
    );
    list.append(item);
  }
  return list;
}

/** `?verify=1`'s links: held, BROKEN or n/a, each with its detail. */
export function verifyList(links: ILineageLink[]): HTMLUListElement {
  const list = el('ul', 'mlnb-lineage-verify');
  for (const link of links) {
    const state = link.held === true ? 'held' : link.held === false ? 'broken' : 'unavailable';
    const item = el('li', `mlnb-lineage-check mlnb-mod-${state}`);
    item.dataset.link = link.name;
    item.append(
      span('mlnb-lineage-check-state', { held: 'ok', broken: 'BROKEN', unavailable: 'n/a' }[state]),
      span('mlnb-lineage-check-name', link.name),
      span('mlnb-lineage-check-detail', link.detail)
    );
    list.append(item);
  }
  return list;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The run detail's Lineage section: loads the chain itself; Verify reloads it re-hashed. */
export class LineageSection {
  readonly node: HTMLElement;

  constructor(readonly runId: string) {
    this.node = el('section', 'mlnb-view-section mlnb-lineage-section');
    const head = el('div', 'mlnb-lineage-head');
    this._verify = button('Verify', 'mlnb-lineage-verify-button', 'Re-hash the model files, outputs, data and ' +
      'notebooks the server can reach against what the build recorded');
    this._verify.addEventListener('click', () => void this.load(true));
    head.append(el('h3', '', 'Lineage'), this._verify);
    this._body = el('div', 'mlnb-lineage-body');
    this.node.append(head, this._body);
  }

  /** Fetch the chain (re-hashed when `verify`) and draw it; errors in its place. */
  async load(verify = false): Promise<void> {
    this._verify.disabled = true;
    this.node.classList.add('mlnb-mod-loading');
    const status = el('p', 'mlnb-lineage-status', verify ? 'Verifying (re-hashing)…' : 'Loading lineage…');
    if (verify) {
      this._body.querySelector('.mlnb-lineage-status, .mlnb-lineage-verify')?.remove();
      this._body.append(status);
    } else {
      this._body.replaceChildren(status);
    }
    try {
      const data = await getLineage(this.runId, verify);
      const parts: HTMLElement[] = [lineageChain(data)];
      if (data.links) {
        parts.push(verifyList(data.links));
      }
      this._body.replaceChildren(...parts);
    } catch (error) {
      status.className = 'mlnb-lineage-status mlnb-runs-error';
      status.textContent = message(error);
    } finally {
      this._verify.disabled = false;
      this.node.classList.remove('mlnb-mod-loading');
    }
  }

  private _verify: HTMLButtonElement;
  private _body: HTMLDivElement;
}
