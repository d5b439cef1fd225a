"""The one way an accepted value reaches its cell.

In order: the JupyterLab extension edits the open cell (an undoable edit, confirmed later by a
callback); else, when no frontend holds the notebook, the .ipynb on disk is rewritten with
nbformat; else the new cell is shown with what to do. An accepted value is never dropped.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError


@dataclass(frozen=True)
class CellRef:
    """Which cell a variable lives in."""

    name: str
    cell_id: str
    magic_line: str  # e.g. "%%tgvariable add --kind code", kept on every rewrite


def cell_source(magic_line: str, body: str) -> str:
    return f"{magic_line}\n{body.lstrip(chr(10))}"


Done = Callable[[bool, str], None]


class Transport(Protocol):
    """Something that can edit a cell in a live frontend and confirm later."""

    def replace_cell(self, ref: CellRef, body: str, done: Done) -> bool:
        """Start the edit; False when this transport cannot take it at all."""
        ...


def apply_to_cell(
    ref: CellRef,
    body: str,
    *,
    notebook: Path | None,
    frontend: Transport | None = None,
    frontend_holds_file: bool = False,
    done: Done | None = None,
) -> str:
    """Send `body` to the cell; returns what happened (or what is under way), in one sentence."""
    finish: Done = done or (lambda ok, message: None)
    if frontend is not None and frontend.replace_cell(ref, body, finish):
        return f"sent {ref.name} to JupyterLab; the cell is updated when this cell finishes"
    if notebook is not None and not frontend_holds_file:
        try:
            write_cell(notebook, ref, body)
        except InputError as exc:
            message = f"{exc}; {show(ref, body)}"
            finish(False, message)
            return message
        message = f"wrote {ref.name} into {notebook.name} (re-run the cell to use it)"
        finish(True, message)
        return message
    message = show(ref, body)
    finish(False, message)
    return message


def show(ref: CellRef, body: str) -> str:
    reason = (
        "the tg-magic JupyterLab extension is not active"
        if os.environ.get("JPY_SESSION_NAME")
        else "the notebook file is unknown (set it with %tgconfig --notebook PATH)"
    )
    return (
        f"{reason}, so the cell was not edited: replace the cell of {ref.name} with\n\n"
        f"{cell_source(ref.magic_line, body)}"
    )


def _is_cell_of(source: str, name: str) -> bool:
    first = source.lstrip().split("\n", 1)[0]
    try:
        words = shlex.split(first)
    except ValueError:
        words = first.split()
    return len(words) >= 2 and words[0] == "%%tgvariable" and words[1] == name


def write_cell(notebook: Path, ref: CellRef, body: str) -> None:
    """Rewrite the variable's cell in the .ipynb (matched by id, else by its magic line)."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the notebook {notebook}: {exc}") from None
    cells = [c for c in nb.cells if c.get("id") == ref.cell_id] or [
        c for c in nb.cells if c.cell_type == "code" and _is_cell_of(c.source, ref.name)
    ]
    if not cells:
        raise InputError(f"no cell of {ref.name} found in {notebook.name}")
    cell = cells[0]
    first = cell.source.split("\n", 1)[0]
    magic = first if first.startswith("%%") else ref.magic_line
    cell.source = cell_source(magic, body)
    save_notebook(nb, notebook)


def save_notebook(nb: Any, path: Path) -> None:
    """Write an .ipynb atomically: a reader never sees half a file, a crash never loses it."""
    import nbformat

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
