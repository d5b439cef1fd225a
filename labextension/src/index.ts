import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import {
  CHANGES_TARGET,
  COMM_TARGET,
  EDITED_CLASS,
  REPORT_MS,
  cellChanged,
  shouldReport,
  HIGHLIGHT_MS,
  ICellInfo,
  INotebookAccess,
  handleRequest
} from './celledit';

type CellWidget = NotebookPanel['content']['widgets'][number];
type ICellModel = CellWidget['model'];

/** The frontend's name (JupyterLab, Jupyter Notebook), told to the kernel on ping. */
let appName = '';

/** Pending highlight removals, so a second edit restarts the timer. */
const highlightTimers = new WeakMap<CellWidget, ReturnType<typeof setTimeout>>();

function highlight(panel: NotebookPanel, index: number): void {
  const cell = panel.content.widgets[index];
  if (!cell) {
    return;
  }
  const previous = highlightTimers.get(cell);
  if (previous !== undefined) {
    clearTimeout(previous);
  }
  cell.node.classList.add(EDITED_CLASS);
  highlightTimers.set(
    cell,
    setTimeout(() => {
      highlightTimers.delete(cell);
      if (!cell.isDisposed) {
        cell.node.classList.remove(EDITED_CLASS);
      }
    }, HIGHLIGHT_MS)
  );
  // scrollToItem, not scrollToCell: the latter also makes the cell active and
  // focuses it, which would pull the user away from the cell they are in.
  panel.content.scrollToItem(index, 'smart').catch(() => undefined);
}

/** Read and edit the cells of one notebook panel. */
function notebookAccess(panel: NotebookPanel): INotebookAccess {
  return {
    cells(): ICellInfo[] {
      const notebookReadOnly = panel.content.model?.readOnly ?? true;
      return panel.content.widgets.map(cell => ({
        id: cell.model.id,
        source: cell.model.sharedModel.getSource(),
        editable:
          !notebookReadOnly &&
          !cell.readOnly &&
          cell.model.getMetadata('editable') !== false
      }));
    },
    setSource(index: number, source: string): void {
      const shared = panel.content.widgets[index].model.sharedModel;
      // Close the current undo group before and after, so this replacement is
      // exactly one undo step, not merged with the user's typing.
      const undo = (
        shared as unknown as { undoManager?: { stopCapturing(): void } | null }
      ).undoManager;
      undo?.stopCapturing();
      shared.setSource(source);
      undo?.stopCapturing();
    }
  };
}

/**
 * Whether a kernel message belongs to this frontend connection. When several
 * connections share a kernel (another notebook on the same kernel, a second
 * collaborator), each receives the comm; only the one whose request made the
 * kernel speak acts, so a cell is never edited twice nor answered "not found"
 * by a bystander. Messages without a parent session are handled.
 */
function isForThisConnection(
  kernel: Kernel.IKernelConnection,
  msg: KernelMessage.IMessage
): boolean {
  const session = (msg.parent_header as Partial<KernelMessage.IHeader> | undefined)
    ?.session;
  return typeof session !== 'string' || session === '' || session === kernel.clientId;
}

function answer(
  panel: NotebookPanel,
  kernel: Kernel.IKernelConnection,
  comm: Kernel.IComm,
  msg: KernelMessage.ICommOpenMsg | KernelMessage.ICommMsgMsg
): void {
  try {
    if (!isForThisConnection(kernel, msg)) {
      return;
    }
    const reply = handleRequest(
      msg.content.data,
      panel.isDisposed ? null : notebookAccess(panel),
      index => highlight(panel, index),
      appName
    );
    if (!comm.isDisposed) {
      comm.send(reply as unknown as Parameters<Kernel.IComm['send']>[0]);
    }
  } catch (e) {
    console.error('tg-magic: could not answer a tg_magic message', e);
  }
}

/** Kernels that opened a tg_magic comm: they run tg_magic, so edits are reported to them. */
const kernelsWithTgMagic = new WeakSet<Kernel.IKernelConnection>();

/** Send a variable cell's new source to the kernel (the widgets follow the cell). */
function report(panel: NotebookPanel, cellId: string, source: string): void {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel || kernel.isDisposed || !kernelsWithTgMagic.has(kernel)) {
    return;
  }
  try {
    const comm = kernel.createComm(CHANGES_TARGET);
    comm.open(cellChanged(cellId, source) as unknown as Parameters<Kernel.IComm['open']>[0]);
    comm.close();
  } catch (e) {
    console.error('tg-magic: could not report a cell edit', e);
  }
}

/** Report edits of variable cells (typing, undo, our own replace), debounced per cell. */
function watchCells(panel: NotebookPanel): void {
  const reported = new Set<string>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  const watched = new WeakSet<object>();
  const watch = (cell: ICellModel): void => {
    if (watched.has(cell)) {
      return;
    }
    watched.add(cell);
    cell.sharedModel.changed.connect((shared, change) => {
      if (!('sourceChange' in change) || change.sourceChange === undefined) {
        return;
      }
      const id = cell.id;
      if (!shouldReport(shared.getSource(), reported.has(id))) {
        return;
      }
      const previous = timers.get(id);
      if (previous !== undefined) {
        clearTimeout(previous);
      }
      timers.set(
        id,
        setTimeout(() => {
          timers.delete(id);
          reported.add(id);
          report(panel, id, cell.sharedModel.getSource());
        }, REPORT_MS)
      );
    });
  };
  const attach = (): void => {
    const model = panel.content.model;
    if (!model) {
      return;
    }
    for (const cell of model.cells) {
      watch(cell);
    }
    model.cells.changed.connect((_, args) => args.newValues.forEach(watch));
  };
  panel.context.ready.then(attach).catch(() => undefined);
}

function registerOn(
  panel: NotebookPanel,
  kernel: Kernel.IKernelConnection | null | undefined
): void {
  if (!kernel || kernel.isDisposed) {
    return;
  }
  kernel.registerCommTarget(COMM_TARGET, (comm, openMsg) => {
    kernelsWithTgMagic.add(kernel);
    comm.onMsg = msg => answer(panel, kernel, comm, msg);
    // A comm opened with no data is only a channel for later messages.
    const data: unknown = openMsg.content.data;
    const empty =
      data === undefined ||
      data === null ||
      (typeof data === 'object' && Object.keys(data).length === 0);
    if (!empty) {
      answer(panel, kernel, comm, openMsg);
    }
  });
}

function watchNotebook(panel: NotebookPanel): void {
  watchCells(panel);
  const sessionContext = panel.sessionContext;
  sessionContext.ready
    .then(() => registerOn(panel, sessionContext.session?.kernel))
    .catch(() => undefined);
  sessionContext.kernelChanged.connect((_, change) => {
    registerOn(panel, change.newValue);
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'tg-magic:plugin',
  description:
    'Lets the tg-magic kernel replace a notebook cell by id (tg_magic comm) and tells it when a variable cell is edited (tg_magic_cells comm).',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    appName = app.name;
    tracker.forEach(watchNotebook);
    tracker.widgetAdded.connect((_, panel) => watchNotebook(panel));
  }
};

export default plugin;
