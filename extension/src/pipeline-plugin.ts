/**
 * Wires the Pipeline panel into JupyterLab: the left-side panel, and the palette
 * commands `mlnb:open-pipeline` and `mlnb:build` (stable ids).
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { PIPELINE_PANEL_ID, PipelinePanel, pipelineIcon } from './pipeline';

export const PipelineCommandIDs = {
  open: 'mlnb:open-pipeline',
  build: 'mlnb:build'
};

export function addPipelinePanel(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null
): PipelinePanel {
  const { commands, shell } = app;
  const panel = new PipelinePanel({
    onOpen: async (path: string) => {
      await commands.execute('docmanager:open', { path });
    }
  });
  shell.add(panel, 'left', { rank: 590 });
  if (restorer) {
    restorer.add(panel, PIPELINE_PANEL_ID);
  }
  commands.addCommand(PipelineCommandIDs.open, {
    label: 'Open mlnb Pipeline',
    icon: pipelineIcon,
    execute: () => shell.activateById(PIPELINE_PANEL_ID)
  });
  commands.addCommand(PipelineCommandIDs.build, {
    label: 'Build the mlnb Pipeline',
    caption: 'mlnb build: run the outdated tasks (progress in the Pipeline panel)',
    execute: async () => {
      shell.activateById(PIPELINE_PANEL_ID);
      return panel.build('build');
    }
  });
  if (palette) {
    for (const command of [PipelineCommandIDs.open, PipelineCommandIDs.build]) {
      palette.addItem({ command, category: 'mlnb' });
    }
  }
  return panel;
}
