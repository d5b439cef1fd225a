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
    status: str = "ok"  # "ok", or "error: why"
    score: float | None = None
    passed: int | None = None
    total: int | None = None
    tests: dict[str, str] = field(default_factory=dict)  # test name -> pass | fail
    failures: dict[str, str] = field(default_factory=dict)  # test name -> its message
    problem: str = ""
    hint: str = ""
    feedback_notebook: str = ""
    fingerprint: str = ""
    retry: bool = False  # a failure that may go away (the model call failed): redo next time
    skipped: bool = False  # read from an earlier run's result file

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def write_atomic(path: Path, text: str) -> None:
    """Write a text file atomically: a reader never sees half of it, a crash never loses it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
