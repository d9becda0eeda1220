/**
 * mlnb-jupyterlab: the Runs side panel, the promote / rollback flows and the
 * "Promote this run" notebook toolbar button.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import { PANEL_ID, RunsPanel, runsIcon } from './panel';
import { addPipelinePanel } from './pipeline-plugin';
import { promoteFlow, rollbackFlow } from './promote';
import { debugTask } from './request';
import { CompareView, RunDetailView } from './runviews';
import { buildRunId, PromoteButtonExtension, PROMOTE_NOTEBOOK_RUN } from './toolbar';

/** Stable command ids (palette, keyboard shortcuts, other extensions). */
const CommandIDs = {
  open: 'mlnb:open-runs',
  refresh: 'mlnb:refresh-runs',
  promote: 'mlnb:promote',
  rollback: 'mlnb:rollback',
  promoteNotebookRun: PROMOTE_NOTEBOOK_RUN
};

const CATEGORY = 'mlnb';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlnb-jupyterlab:plugin',
  description: 'Runs panel, promote and rollback of the mlnb champion model.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell } = app;

    const afterChange = async (changed: boolean) => {
      if (changed) {
        await panel.refresh();
      }
      return changed;
    };
    /** Show a run view in the main area (the one already open for the same runs, if any). */
    const openView = (view: RunDetailView | CompareView) => {
      const open = Array.from(shell.widgets('main')).find(w => w.id === view.id);
      if (open) {
        view.dispose();
        shell.activateById(open.id);
        void (open as RunDetailView | CompareView).load();
        return;
      }
      shell.add(view, 'main');
      shell.activateById(view.id);
      void view.load();
    };
    const panel = new RunsPanel({
      onPromote: promoteFlow,
      onOpenRun: runId =>
        openView(
          new RunDetailView(runId, {
            onPromote: async id => afterChange(await promoteFlow(id))
          })
        ),
      onCompare: (a, b) => openView(new CompareView(a, b)),
      onRollback: rollbackFlow,
      onDebug: async (task: string, runId: string) => {
        try {
          const written = await debugTask(task, runId);
          await commands.execute('docmanager:open', { path: written.path });
        } catch (error) {
          await showErrorMessage(
            'mlnb debug',
            error instanceof Error ? error.message : String(error)
          );
        }
      }
    });
    shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    addPipelinePanel(app, palette, restorer); // the Pipeline panel, mlnb:open-pipeline, mlnb:build

    commands.addCommand(CommandIDs.open, {
      label: 'Open mlnb Runs',
      icon: runsIcon,
      execute: () => shell.activateById(PANEL_ID)
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh mlnb Runs',
      execute: () => panel.refresh()
    });
    // the run a command means: its runId argument, else the build that executed the current notebook
    const runIdOf = (args: { runId?: unknown }): string | null =>
      typeof args.runId === 'string' ? args.runId : buildRunId(tracker.currentWidget?.model);
    commands.addCommand(CommandIDs.promote, {
      label: 'Promote a Run to mlnb Champion…',
      caption:
        'Promote build run `runId` (or the one that executed the current notebook); ' +
        'without one, the Runs panel opens to pick a run',
      execute: async args => {
        const runId = runIdOf(args);
        if (!runId) {
          shell.activateById(PANEL_ID);
          return false;
        }
        return afterChange(await promoteFlow(runId));
      }
    });
    commands.addCommand(CommandIDs.rollback, {
      label: 'Roll Back the mlnb Champion…',
      execute: async () => afterChange(await rollbackFlow())
    });
    commands.addCommand(CommandIDs.promoteNotebookRun, {
      label: 'Promote this run',
      caption: 'Promote the build run that executed this notebook to champion',
      isEnabled: args =>
        runIdOf(args) !== null,
      execute: async args => {
        const runId = runIdOf(args);
        if (!runId) {
          return false;
        }
        return afterChange(await promoteFlow(runId));
      }
    });

    if (palette) {
      for (const command of [
        CommandIDs.open,
        CommandIDs.refresh,
        CommandIDs.promote,
        CommandIDs.rollback,
        CommandIDs.promoteNotebookRun
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    app.docRegistry.addWidgetExtension(
      'Notebook',
      new PromoteButtonExtension(commands)
    );
  }
};

export default plugin;
