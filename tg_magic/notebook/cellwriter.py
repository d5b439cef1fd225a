"""The one way an accepted or reverted value reaches its cell.

In order: the tg-magic extension edits the open cell (an undoable edit, confirmed later by a
callback); else, when no frontend holds the notebook, the .ipynb on disk is rewritten; else a
frontend that runs IPython's payloads takes the new text when the cell next runs (edits.py
registers it; the magic sends `set_next_input(..., replace=True)`); else (a terminal IPython)
the new cell is shown once, to paste. An accepted value is never dropped, and a file a frontend
holds open is never written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import InputError
from ..nbfile import cell_source, parse_magic_line, save_notebook
from .where import Frontend


@dataclass(frozen=True)
class CellRef:
    """Which cell a variable lives in."""

    name: str
    cell_id: str
    magic_line: str  # e.g. "%%tgvariable add --kind code", kept on every rewrite


@dataclass(frozen=True)
class Written:
    """How a value reached its cell. `ok`: the value is now the variable's; `edited`: the cell
    itself changed; `next_run`: the cell takes it when it next runs (no extension here)."""

    ok: bool
    text: str  # what happened, one sentence (the new cell follows when it is shown to paste)
    edited: bool
    next_run: bool = False


Done = Callable[[Written], None]


class Transport(Protocol):
    """Something that can edit a cell in a live frontend and confirm later."""

    def replace_cell(self, ref: CellRef, body: str, done: Done) -> bool:
        """Start the edit; False when this transport cannot take it at all."""
        ...


def write_to_cell(
    ref: CellRef,
    body: str,
    *,
    notebook: Path | None,
    where: Frontend,
    frontend: Transport | None = None,
    done: Done,
) -> bool:
    """Send `body` to the cell; `done(written)` runs once, now or (through the extension) after
    the running cell ends. Returns True when the outcome is still under way."""
    if frontend is not None and frontend.replace_cell(ref, body, done):
        return True
    if notebook is not None and not where.holds_file:
        try:
            write_cell(notebook, ref, body)
        except InputError as exc:
            done(Written(False, f"{exc}, so the cell was not edited: {to_paste(ref, body)}", False))
            return False
        done(Written(True, f"wrote {ref.name} into {notebook.name}", True))
        return False
    done(unedited(ref, body, where))
    return False


def unedited(ref: CellRef, body: str, where: Frontend) -> Written:
    """No extension edited the cell and no file may be written: a frontend that runs payloads
    takes the text when the cell next runs; elsewhere the new cell is shown, once, to paste."""
    if where.runs_payloads:
        return Written(True, f"{where.name} has no tg-magic extension", False, next_run=True)
    reason = (
        "no notebook file here (start IPython with the notebook's path: %tgconfig --notebook PATH)"
        if where.name == "a terminal IPython"
        else "no notebook file for this run"
    )
    return Written(True, f"{reason}, so the cell was not edited: {to_paste(ref, body)}", False)


def to_paste(ref: CellRef, body: str) -> str:
    return f"replace the cell of {ref.name} with\n\n{cell_source(ref.magic_line, body)}"


def write_cell(notebook: Path, ref: CellRef, body: str) -> None:
    """Rewrite the variable's cell in the .ipynb (matched by id, else by its magic line)."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the notebook {notebook}: {exc}") from None

    def is_cell_of(source: str) -> bool:
        line = parse_magic_line(source)
        return line is not None and line.name == ref.name

    cells = [c for c in nb.cells if c.get("id") == ref.cell_id] or [
        c for c in nb.cells if c.cell_type == "code" and is_cell_of(c.source)
    ]
    if not cells:
        raise InputError(f"no cell of {ref.name} found in {notebook.name}")
    cell = cells[0]
    first = cell.source.split("\n", 1)[0]
    magic = first if first.startswith("%%") else ref.magic_line
    cell.source = cell_source(magic, body)
    save_notebook(nb, notebook)
