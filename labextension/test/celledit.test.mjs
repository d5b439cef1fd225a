// Unit tests of src/celledit.ts, run on its compiled form: `npm test`
// (tsc, then node's built-in test runner; no test framework to install).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  COMM_TARGET,
  cellChanged,
  shouldReport,
  EXTENSION_VERSION,
  computeNewSource,
  findCellIndex,
  firstLine,
  handleRequest,
  parseRequest
} from '../lib/celledit.js';

/** An in-memory notebook for handleRequest; `edits` records setSource calls. */
function fakeNotebook(cells) {
  const state = cells.map(c => ({ editable: true, ...c }));
  const edits = [];
  const access = {
    cells: () => state.map(c => ({ ...c })),
    setSource(index, source) {
      edits.push([index, source]);
      state[index].source = source;
    }
  };
  return { access, edits };
}

test('constants match the protocol and package.json', () => {
  assert.equal(COMM_TARGET, 'tg_magic');
  const pkg = JSON.parse(
    readFileSync(new URL('../package.json', import.meta.url), 'utf8')
  );
  assert.equal(EXTENSION_VERSION, pkg.version);
});

test('magic line is kept above the body', () => {
  assert.equal(
    computeNewSource('%%tgvariable code --role "a function"\nold()\n', 'new()\n'),
    '%%tgvariable code --role "a function"\nnew()\n'
  );
});

test('one leading newline of the body is dropped under a magic line', () => {
  assert.equal(computeNewSource('%%tg x\nold', '\nnew'), '%%tg x\nnew');
  assert.equal(computeNewSource('%%tg x\nold', '\r\nnew'), '%%tg x\nnew');
  // Only one: a deliberate blank line after it stays.
  assert.equal(computeNewSource('%%tg x\nold', '\n\nnew'), '%%tg x\n\nnew');
});

test('magic line with CRLF ending and magic-only cell', () => {
  assert.equal(computeNewSource('%%tg x\r\nold', 'new'), '%%tg x\nnew');
  assert.equal(computeNewSource('%%tg x', 'new'), '%%tg x\nnew');
});

test('a body that already carries the same magic line is not doubled', () => {
  assert.equal(computeNewSource('%%tg x\nold', '%%tg x\nnew'), '%%tg x\nnew');
  assert.equal(computeNewSource('%%tg x\nold', '\n%%tg x\nnew'), '%%tg x\nnew');
});

test('a cell without a magic line gets the body as is', () => {
  assert.equal(computeNewSource('old()\n', 'new()\n'), 'new()\n');
  assert.equal(computeNewSource('', '\nnew'), '\nnew');
  // A line magic (single %) or an indented %% is not a cell magic.
  assert.equal(computeNewSource('%time old()', 'new()'), 'new()');
  assert.equal(computeNewSource(' %%tg x\nold', 'new'), 'new');
  assert.equal(firstLine('a\r\nb'), 'a');
});

test('findCellIndex finds by id, -1 for an unknown id', () => {
  const cells = [
    { id: 'a', source: '1' },
    { id: 'b', source: '2' }
  ];
  assert.equal(findCellIndex(cells, 'b'), 1);
  assert.equal(findCellIndex(cells, 'zzz'), -1);
  assert.equal(findCellIndex([], 'a'), -1);
});

test('replace_cell edits the cell and replies with the new source', () => {
  const nb = fakeNotebook([
    { id: 'c1', source: 'print(1)' },
    { id: 'c2', source: '%%tg code\nold' }
  ]);
  const edited = [];
  const reply = handleRequest(
    { action: 'replace_cell', request_id: 'r1', cell_id: 'c2', body: '\nnew' },
    nb.access,
    i => edited.push(i)
  );
  assert.deepEqual(reply, {
    request_id: 'r1',
    ok: true,
    cell_id: 'c2',
    source: '%%tg code\nnew'
  });
  assert.deepEqual(nb.edits, [[1, '%%tg code\nnew']]);
  assert.deepEqual(edited, [1]);
});

test('unknown cell id: error reply, nothing edited', () => {
  const nb = fakeNotebook([{ id: 'c1', source: 'x' }]);
  const reply = handleRequest(
    { action: 'replace_cell', request_id: 'r2', cell_id: 'nope', body: 'y' },
    nb.access
  );
  assert.equal(reply.ok, false);
  assert.equal(reply.request_id, 'r2');
  assert.equal(reply.cell_id, 'nope');
  assert.match(reply.error, /No cell with id "nope"/);
  assert.deepEqual(nb.edits, []);
});

test('read-only cell: error reply, nothing edited', () => {
  const nb = fakeNotebook([{ id: 'c1', source: 'x', editable: false }]);
  const reply = handleRequest(
    { action: 'replace_cell', request_id: 'r3', cell_id: 'c1', body: 'y' },
    nb.access
  );
  assert.equal(reply.ok, false);
  assert.match(reply.error, /read-only/);
  assert.deepEqual(nb.edits, []);
});

test('ping replies with the version', () => {
  assert.deepEqual(handleRequest({ action: 'ping', request_id: 'p1' }, null), {
    request_id: 'p1',
    ok: true,
    version: EXTENSION_VERSION
  });
});

test('ping names the frontend when it is known', () => {
  const reply = handleRequest({ action: 'ping', request_id: 'p2' }, null, undefined, 'Jupyter Notebook');
  assert.deepEqual(reply, {
    request_id: 'p2',
    ok: true,
    version: EXTENSION_VERSION,
    app: 'Jupyter Notebook'
  });
});

test('malformed messages give error replies, never throw', () => {
  const bad = [
    [undefined, null, null],
    [null, null, null],
    ['replace_cell', null, null],
    [[1, 2], null, null],
    [{}, null, null],
    [{ action: 'replace_cell', cell_id: 'c1', body: 'x' }, null, 'c1'],
    [{ action: 'replace_cell', request_id: 7, cell_id: 'c1', body: 'x' }, null, 'c1'],
    [{ action: 'replace_cell', request_id: 'r', body: 'x' }, 'r', null],
    [{ action: 'replace_cell', request_id: 'r', cell_id: 'c1' }, 'r', 'c1'],
    [{ action: 'replace_cell', request_id: 'r', cell_id: 'c1', body: 5 }, 'r', 'c1'],
    [{ action: 'explode', request_id: 'r' }, 'r', null],
    [{ request_id: 'r' }, 'r', null]
  ];
  const nb = fakeNotebook([{ id: 'c1', source: 'x' }]);
  for (const [data, requestId, cellId] of bad) {
    const reply = handleRequest(data, nb.access);
    assert.equal(reply.ok, false, JSON.stringify(data));
    assert.equal(reply.request_id, requestId, JSON.stringify(data));
    assert.equal(reply.cell_id, cellId, JSON.stringify(data));
    assert.equal(typeof reply.error, 'string');
    assert.ok(reply.error.length > 0);
    assert.equal(parseRequest(data).ok, false);
  }
  assert.deepEqual(nb.edits, []);
});

test('a notebook that throws becomes an error reply', () => {
  const access = {
    cells() {
      return [{ id: 'c1', source: 'x', editable: true }];
    },
    setSource() {
      throw new Error('boom');
    }
  };
  const reply = handleRequest(
    { action: 'replace_cell', request_id: 'r', cell_id: 'c1', body: 'y' },
    access
  );
  assert.equal(reply.ok, false);
  assert.match(reply.error, /boom/);
  const noNotebook = handleRequest(
    { action: 'replace_cell', request_id: 'r', cell_id: 'c1', body: 'y' },
    null
  );
  assert.equal(noNotebook.ok, false);
});

test('edits of variable cells are reported, other cells are not', () => {
  assert.equal(shouldReport('%%tgvariable add --kind code\ndef add(a, b): ...', false), true);
  assert.equal(shouldReport('print(1)', false), false);
  // A cell that was reported stays reported when its magic line is removed.
  assert.equal(shouldReport('def add(a, b): ...', true), true);
  assert.deepEqual(cellChanged('c1', 'x'), {
    action: 'cell_changed',
    cell_id: 'c1',
    source: 'x'
  });
});
