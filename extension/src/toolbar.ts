/**
 * The "Promote this run" notebook toolbar button: shown only on notebooks
 * whose metadata carries `mlnb.build_run_id` (executed task notebooks).
 */
import { CommandRegistry } from '@lumino/commands';
import { IDisposable } from '@lumino/disposable';
import { ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, NotebookPanel } from '@jupyterlab/notebook';

import { runsIcon } from './panel';

export const PROMOTE_NOTEBOOK_RUN = 'mlnb:promote-notebook-run';

const RUN_ID = /^[0-9a-f]{32}$/;

/** The build run id in a notebook model's metadata, or null. */
export function buildRunId(model: INotebookModel | null | undefined): string | null {
  const meta = model?.getMetadata('mlnb') as { build_run_id?: unknown } | undefined;
  const runId = meta?.build_run_id;
  return typeof runId === 'string' && RUN_ID.test(runId) ? runId : null;
}

export class PromoteButtonExtension
  implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel>
{
  constructor(private readonly _commands: CommandRegistry) {}

  createNew(
    panel: NotebookPanel,
    context: DocumentRegistry.IContext<INotebookModel>
  ): IDisposable {
    const button = new ToolbarButton({
      className: 'mlnb-promote-notebook-button',
      icon: runsIcon,
      label: 'Promote this run',
      tooltip: 'Promote the build run that executed this notebook to champion',
      onClick: () => {
        const runId = buildRunId(context.model);
        if (runId) {
          void this._commands.execute(PROMOTE_NOTEBOOK_RUN, { runId });
        }
      }
    });
    const update = () => {
      const runId = buildRunId(context.model);
      button.setHidden(runId === null);
      button.node.dataset.runId = runId ?? '';
    };
    update();
    context.model.metadataChanged.connect(update);
    void context.ready.then(update);
    panel.toolbar.insertItem(10, 'mlnbPromoteRun', button);
    button.disposed.connect(() => context.model.metadataChanged.disconnect(update));
    return button;
  }
}
