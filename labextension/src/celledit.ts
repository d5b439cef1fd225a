/**
 * Pure logic of the tg_magic comm protocol: no JupyterLab imports, so it can be
 * unit-tested with node alone (see ../test/celledit.test.mjs).
 *
 * The kernel sends on the `tg_magic` comm (in comm_open data or later comm messages):
 *   {action: "replace_cell", request_id, cell_id, body}
 *   {action: "ping", request_id}
 * and the frontend answers on the same comm with one of the Reply shapes below.
 */

/** Comm target name the kernel opens comms on. */
export const COMM_TARGET = 'tg_magic';

/**
 * Comm target of the kernel that takes reports of edited variable cells:
 *   {action: "cell_changed", cell_id, source}
 * sent (debounced by REPORT_MS) once the kernel has shown it runs tg_magic.
 */
export const CHANGES_TARGET = 'tg_magic_cells';
export const REPORT_MS = 300;

/** The cell-magic line of a variable cell. */
const VARIABLE_MAGIC = /^\s*%%tgvariable\s/;

/**
 * Whether an edit of a cell is reported to the kernel: the cell is a variable
 * cell now, or was one when last reported (so an edit that removes the magic
 * line is reported too).
 */
export function shouldReport(source: string, wasReported: boolean): boolean {
  return wasReported || VARIABLE_MAGIC.test(source);
}

/** The message reporting a cell's new source. */
export function cellChanged(
  cellId: string,
  source: string
): { action: 'cell_changed'; cell_id: string; source: string } {
  return { action: 'cell_changed', cell_id: cellId, source };
}

/** Version reported by `ping`; a unit test keeps it equal to package.json's version. */
export const EXTENSION_VERSION = '0.1.0';

/** CSS class put on an edited cell for HIGHLIGHT_MS milliseconds. */
export const EDITED_CLASS = 'tg-magic-edited';
export const HIGHLIGHT_MS = 2000;

export interface IReplaceCellRequest {
  action: 'replace_cell';
  request_id: string;
  cell_id: string;
  body: string;
}

export interface IPingRequest {
  action: 'ping';
  request_id: string;
}

export type Request = IReplaceCellRequest | IPingRequest;

export interface IReplaceOkReply {
  request_id: string;
  ok: true;
  cell_id: string;
  source: string;
}

export interface IPingReply {
  request_id: string;
  ok: true;
  version: string;
  /** The frontend's name ("JupyterLab", "Jupyter Notebook"), so messages name it. */
  app?: string;
}

export interface IErrorReply {
  /** null when the message carried no usable request_id. */
  request_id: string | null;
  ok: false;
  /** null when the message carried no usable cell_id. */
  cell_id: string | null;
  error: string;
}

export type Reply = IReplaceOkReply | IPingReply | IErrorReply;

export type ParseResult =
  | { ok: true; request: Request }
  | { ok: false; reply: IErrorReply };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function errorReply(
  requestId: string | null,
  cellId: string | null,
  error: string
): IErrorReply {
  return { request_id: requestId, ok: false, cell_id: cellId, error };
}

/**
 * Validate a comm payload. On failure the result carries the error reply to send,
 * with whatever request_id / cell_id could be read from the payload.
 */
export function parseRequest(data: unknown): ParseResult {
  if (!isObject(data)) {
    return {
      ok: false,
      reply: errorReply(null, null, 'The tg_magic message is not a JSON object.')
    };
  }
  const requestId =
    typeof data.request_id === 'string' && data.request_id !== ''
      ? data.request_id
      : null;
  const cellId =
    typeof data.cell_id === 'string' && data.cell_id !== '' ? data.cell_id : null;
  const fail = (error: string): ParseResult => ({
    ok: false,
    reply: errorReply(requestId, cellId, error)
  });

  if (requestId === null) {
    return fail('The tg_magic message has no request_id string.');
  }
  switch (data.action) {
    case 'ping':
      return { ok: true, request: { action: 'ping', request_id: requestId } };
    case 'replace_cell':
      if (cellId === null) {
        return fail('The replace_cell message has no cell_id string.');
      }
      if (typeof data.body !== 'string') {
        return fail('The replace_cell message has no body string.');
      }
      return {
        ok: true,
        request: {
          action: 'replace_cell',
          request_id: requestId,
          cell_id: cellId,
          body: data.body
        }
      };
    default:
      return fail(
        `Unknown tg_magic action ${JSON.stringify(data.action ?? null)}; expected "replace_cell" or "ping".`
      );
  }
}

/** The first line of a source, without its line ending. */
export function firstLine(source: string): string {
  const end = source.indexOf('\n');
  const line = end === -1 ? source : source.slice(0, end);
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

function stripOneLeadingNewline(text: string): string {
  if (text.startsWith('\r\n')) {
    return text.slice(2);
  }
  if (text.startsWith('\n')) {
    return text.slice(1);
  }
  return text;
}

/**
 * The cell's new source: the body, under the cell's current cell-magic line if it
 * has one (first line starting with `%%`). One leading newline of the body is
 * dropped in that case. If the body already starts with that very magic line it is
 * not repeated.
 */
export function computeNewSource(currentSource: string, body: string): string {
  const magic = firstLine(currentSource);
  if (!magic.startsWith('%%')) {
    return body;
  }
  const rest = stripOneLeadingNewline(body);
  if (firstLine(rest) === magic) {
    return rest;
  }
  return `${magic}\n${rest}`;
}

/** Index of the cell with this id in a list of cells, or -1. */
export function findCellIndex(
  cells: ReadonlyArray<{ id: string; source?: string }>,
  cellId: string
): number {
  return cells.findIndex(cell => cell.id === cellId);
}

/** A cell as the request handler sees it. */
export interface ICellInfo {
  id: string;
  source: string;
  /** false when the cell or the notebook is read-only. */
  editable: boolean;
}

/** What the handler needs from the notebook whose kernel opened the comm. */
export interface INotebookAccess {
  cells(): ICellInfo[];
  /** Replace the source of the cell at this index (one undoable edit). */
  setSource(index: number, source: string): void;
}

/**
 * Answer one comm payload against a notebook. Never throws: every failure,
 * including one raised by `notebook`, becomes an error reply. `onEdited` is
 * told the index of an edited cell (for highlighting); its errors are ignored.
 */
export function handleRequest(
  data: unknown,
  notebook: INotebookAccess | null,
  onEdited?: (index: number) => void,
  app?: string
): Reply {
  let parsed: ParseResult;
  try {
    parsed = parseRequest(data);
  } catch (e) {
    return errorReply(null, null, `Could not read the tg_magic message: ${describe(e)}`);
  }
  if (!parsed.ok) {
    return parsed.reply;
  }
  const request = parsed.request;
  if (request.action === 'ping') {
    const reply: IPingReply = {
      request_id: request.request_id,
      ok: true,
      version: EXTENSION_VERSION
    };
    if (app) {
      reply.app = app;
    }
    return reply;
  }
  const { request_id: requestId, cell_id: cellId } = request;
  try {
    if (notebook === null) {
      return errorReply(requestId, cellId, 'No notebook is attached to this kernel.');
    }
    const cells = notebook.cells();
    const index = findCellIndex(cells, cellId);
    if (index === -1) {
      return errorReply(
        requestId,
        cellId,
        `No cell with id ${JSON.stringify(cellId)} in this notebook.`
      );
    }
    const cell = cells[index];
    if (!cell.editable) {
      return errorReply(
        requestId,
        cellId,
        `Cell ${JSON.stringify(cellId)} is read-only, so it was not changed.`
      );
    }
    const source = computeNewSource(cell.source, request.body);
    notebook.setSource(index, source);
    if (onEdited) {
      try {
        onEdited(index);
      } catch {
        // Highlighting is cosmetic; the edit itself succeeded.
      }
    }
    return { request_id: requestId, ok: true, cell_id: cellId, source };
  } catch (e) {
    return errorReply(requestId, cellId, `Could not edit the cell: ${describe(e)}`);
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    return e.message;
  }
  return String(e);
}
