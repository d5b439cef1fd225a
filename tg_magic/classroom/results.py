"""One student's result: the row of the summary, also the JSON file that marks a notebook done."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Result:
    """One student's row of the summary (also the JSON file that marks the notebook done)."""

    student: str
    notebook: str
    status: str = "ok"  # "ok", "timed out after N s", or "error: why"
    score: float | None = None  # points earned / points possible (rubric: the judge's score)
    points: float | None = None  # points earned (the gradebook's number)
    possible: float | None = None
    passed: int | None = None
    total: int | None = None
    tests: dict[str, str] = field(default_factory=dict)  # test name -> pass | fail
    failures: dict[str, str] = field(default_factory=dict)  # test name -> message (not hidden)
    hidden: list[str] = field(default_factory=list)  # names of hidden tests
    problem: str = ""
    hint: str = ""
    feedback_notebook: str = ""
    fingerprint: str = ""
    retry: bool = False  # a failure that may go away (the model call failed): redo next time
    skipped: bool = False  # read from an earlier run's result file

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# A cell a spreadsheet would run as a formula (OWASP's CSV injection): a student's login or name,
# or a model's hint, starting with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: str) -> str:
    """`value` as a CSV cell that Excel, Sheets, Canvas and Moodle show as text: a leading
    apostrophe where it would start a formula; numbers stay numbers."""
    if value.startswith(_FORMULA_START):
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


def from_spreadsheet_cell(value: str) -> str:
    """The value `spreadsheet_cell` wrote (files read back keep one row per login)."""
    return value[1:] if value[:1] == "'" and value[1:2].startswith(_FORMULA_START) else value


def write_atomic(path: Path, text: str) -> None:
    """Write a text file atomically: a reader never sees half of it, a crash never loses it.
    The file is 0600 from its creation (mkstemp), a folder made for it 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # A lone surrogate from a broken notebook must not stop the run: it becomes "?".
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
