/**
 * The promote and rollback flows: a confirmation dialog, then the POST,
 * then a notification with the server's message.
 */
import {
  Dialog,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { el } from './dom';
import { blocking, requirementList } from './requirements';
import { getRun, IChange, IRunDetail, promote, rollback } from './request';
import { formatDelta, formatMetric, metricNames, shortId } from './format';

export { formatDelta, formatMetric, shortId };

interface IConfirmValue {
  note: string;
  force: boolean;
}

/** A dialog body with an optional note input and force checkbox. */
class ConfirmBody extends Widget implements Dialog.IBodyWidget<IConfirmValue> {
  constructor(withForce: boolean) {
    super();
    this.addClass('mlnb-dialog');
    this._note = el('input', 'jp-mod-styled mlnb-note-input');
    this._note.type = 'text';
    this._note.placeholder = 'Why? (recorded in the audit log)';
    if (withForce) {
      this._force = el('input', 'mlnb-force-input');
      this._force.type = 'checkbox';
    }
  }

  /** Append the note field (and force checkbox) after whatever came before. */
  protected addInputs(): void {
    const note = el('label', 'mlnb-note-label', 'Note ');
    note.appendChild(this._note);
    this.node.appendChild(note);
    if (this._force) {
      const force = el('label', 'mlnb-force-label');
      force.appendChild(this._force);
      force.appendChild(
        document.createTextNode(' Force: promote despite the refusal')
      );
      this.node.appendChild(force);
    }
  }

  getValue(): IConfirmValue {
    return { note: this._note.value.trim(), force: !!this._force?.checked };
  }

  private _note: HTMLInputElement;
  private _force: HTMLInputElement | null = null;
}

/** The body of the promote dialog: deltas vs the champion, refusal, inputs. */
class PromoteBody extends ConfirmBody {
  constructor(detail: IRunDetail) {
    super(!!detail.refusal);
    const { run, champion, deltas } = detail;
    this.addClass('mlnb-promote-dialog');
    this.node.dataset.runId = run.run_id;

    const summary = champion
      ? `Current champion: version ${champion.version}` +
        (champion.run_id ? ` (run ${shortId(champion.run_id)})` : '') +
        '. ' +
        (run.model_version
          ? `Candidate: version ${run.model_version}.`
          : 'The candidate has no registered version (forcing registers its trained model).')
      : 'No champion yet: this run would become the first champion.';
    this.node.appendChild(el('p', 'mlnb-promote-summary', summary));
    if (run.champion) {
      this.node.appendChild(
        el('p', 'mlnb-promote-summary', 'This run is already the champion.')
      );
    }

    const table = el('table', 'mlnb-deltas');
    const head = table.createTHead().insertRow();
    for (const title of ['metric', 'candidate', 'champion', 'delta']) {
      head.appendChild(el('th', '', title));
    }
    const body = table.createTBody();
    for (const name of metricNames(run.metrics, champion?.metrics)) {
      const row = body.insertRow();
      row.className = 'mlnb-delta-row';
      row.dataset.metric = name;
      const delta = deltas[name];
      const cells = [
        name,
        formatMetric(run.metrics[name]),
        formatMetric(champion?.metrics?.[name]),
        formatDelta(delta)
      ];
      cells.forEach(text => (row.insertCell().textContent = text));
      const deltaCell = row.cells[3];
      deltaCell.className = 'mlnb-delta';
      if (typeof delta === 'number' && delta !== 0) {
        deltaCell.classList.add(delta > 0 ? 'mlnb-delta-up' : 'mlnb-delta-down');
      }
    }
    this.node.appendChild(table);

    if (detail.refusal) {
      // which requirements of the promotion policy fail (the run detail lists them all), else the line
      const failing = blocking(detail.requirements ?? []);
      const refusal = el('div', 'mlnb-refusal');
      refusal.appendChild(el('strong', '', 'A plain promote would be refused: '));
      refusal.appendChild(failing.length ? requirementList(failing) : document.createTextNode(detail.refusal));
      this.node.appendChild(refusal);
    }
    this.addInputs();
  }
}

class RollbackBody extends ConfirmBody {
  constructor() {
    super(false);
    this.node.appendChild(
      el(
        'p',
        '',
        'Move the champion alias back to the previous champion version?'
      )
    );
    this.addInputs();
  }
}

function notifyChange(change: IChange): void {
  if (change.changed) {
    Notification.success(change.message, { autoClose: 5000 });
  } else {
    Notification.info(change.message, { autoClose: 5000 });
  }
}

/** Toasts show 140 characters; a longer message gets a button to read it whole. */
const TOAST_LENGTH = 140;

function notifyError(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const actions =
    message.length > TOAST_LENGTH
      ? [
          {
            label: 'Details',
            callback: () => void showErrorMessage('mlnb', message)
          }
        ]
      : [];
  Notification.error(message, { autoClose: 8000, actions });
}

/**
 * Confirm and promote `runId`. Resolves `true` once the promotion was sent
 * (whatever the answer, the registry may have changed), `false` when the
 * run could not be read or the dialog was cancelled.
 */
export async function promoteFlow(runId: string): Promise<boolean> {
  let detail: IRunDetail;
  try {
    detail = await getRun(runId);
  } catch (error) {
    notifyError(error);
    return false;
  }
  const result = await showDialog({
    title: `Promote run ${shortId(runId)} to champion?`,
    body: new PromoteBody(detail),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })],
    focusNodeSelector: '.mlnb-note-input'
  });
  if (!result.button.accept || !result.value) {
    return false;
  }
  try {
    notifyChange(await promote(runId, result.value.note, result.value.force));
  } catch (error) {
    notifyError(error);
  }
  return true;
}

/** Confirm and roll the champion back; resolves `true` once it was sent. */
export async function rollbackFlow(): Promise<boolean> {
  const result = await showDialog({
    title: 'Roll back the champion?',
    body: new RollbackBody(),
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Roll back' })],
    focusNodeSelector: '.mlnb-note-input'
  });
  if (!result.button.accept || !result.value) {
    return false;
  }
  try {
    notifyChange(await rollback(result.value.note));
  } catch (error) {
    notifyError(error);
  }
  return true;
}
