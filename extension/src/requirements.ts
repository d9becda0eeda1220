/**
 * The promotion policy's requirements for one build (params.yaml `promotion:`), as `GET runs/<id>`
 * answers them: each held or not, required or not, with its one-line reason. Shared by the run
 * detail (every requirement) and the promote dialog (the ones that block a plain promote).
 */
import { el, span } from './dom';
import { IRequirement } from './request';

/** What the policy's requirement names mean, for the list's labels. */
const LABELS: Record<string, string> = {
  gate: 'gate promotable',
  gate_settings: 'committed gate settings',
  clean_tree: 'clean git tree',
  dvc: 'dvc.lock recorded and pushed',
  nbval: 'nbval references passed',
  approvals: 'approvals'
};

export function requirementLabel(name: string): string {
  return LABELS[name] ?? name;
}

/** `held`, `not held`, or `not held (not required)`. */
export function requirementState(r: IRequirement): string {
  return r.held ? 'held' : r.required ? 'not held' : 'not held (not required)';
}

/** The requirements a plain promote is refused for: required and not held. */
export function blocking(requirements: IRequirement[]): IRequirement[] {
  return requirements.filter(r => r.required && !r.held);
}

/**
 * A list of requirements, one item each (`data-requirement` = its name): a held / not held mark,
 * its label and state, and the reason line. Classes: `mlnb-mod-held` or `mlnb-mod-not-held`, plus
 * `mlnb-mod-optional` when the policy does not require it.
 */
export function requirementList(requirements: IRequirement[]): HTMLUListElement {
  const list = el('ul', 'mlnb-requirements');
  for (const r of requirements) {
    const item = el('li', `mlnb-requirement ${r.held ? 'mlnb-mod-held' : 'mlnb-mod-not-held'}`);
    if (!r.required) {
      item.classList.add('mlnb-mod-optional');
    }
    item.dataset.requirement = r.name;
    const head = el('div', 'mlnb-requirement-head');
    head.append(
      span('mlnb-requirement-mark', r.held ? '✓' : '✗', requirementState(r)),
      span('mlnb-requirement-name', requirementLabel(r.name), r.name),
      span('mlnb-requirement-state', requirementState(r))
    );
    item.append(head, el('div', 'mlnb-requirement-detail', r.detail));
    list.append(item);
  }
  return list;
}

/** A one-line summary: how many required requirements hold. */
export function requirementSummary(requirements: IRequirement[]): string {
  const required = requirements.filter(r => r.required);
  const bad = blocking(requirements);
  if (required.length === 0) {
    return 'The promotion policy requires nothing.';
  }
  return bad.length === 0
    ? `All ${required.length} required requirements hold: a plain promote is accepted.`
    : `${bad.length} of ${required.length} required requirements not held: a plain promote is refused ` +
        `(${bad.map(r => requirementLabel(r.name)).join(', ')}).`;
}
