"""The cell format, in one place: the `%%tgvariable NAME [--kind K]` line, a variable cell's
source (magic line + body), and the atomic .ipynb save.

The notebook magics, the cell writer, the classroom and the command line all read and write
variable cells through these functions, so the format has one owner.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = "%%tgvariable"


@dataclass(frozen=True)
class MagicLine:
    """What a `%%tgvariable` line says: the variable's name and its kind."""

    name: str
    kind: str = "prompt"


def parse_magic_line(source: str) -> MagicLine | None:
    """The `%%tgvariable NAME [--kind K]` line that opens `source`, else None."""
    first = source.lstrip().split("\n", 1)[0]
    try:
        words = shlex.split(first)
    except ValueError:
        words = first.split()
    if len(words) < 2 or words[0] != MAGIC:
        return None
    kind = "prompt"
    if "--kind" in words[:-1]:
        kind = words[words.index("--kind") + 1]
    return MagicLine(words[1], kind)


def cell_body(source: str) -> str:
    """A variable cell's text without its magic line (the source itself when it has none)."""
    stripped = source.lstrip()
    if not stripped.startswith("%%"):
        return source
    return stripped.split("\n", 1)[1] if "\n" in stripped else ""


def cell_source(magic_line: str, body: str) -> str:
    """The source of a variable cell: its magic line, then the body."""
    return f"{magic_line}\n{body.lstrip(chr(10))}"


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
