"""Notebook cells run through IPython's InteractiveShell, each with an id as JupyterLab sends."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell


class Cells:
    """Runs cells like a notebook frontend: each with an id; returns what the user would see."""

    def __init__(self, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
        self.shell = shell
        self.capsys = capsys
        self.count = 0

    def run(self, source: str, cell_id: str | None = None) -> str:
        self.count += 1
        result = self.shell.run_cell(source, cell_id=cell_id or f"cell-{self.count}")
        out = self.capsys.readouterr()
        self.error = result.error_in_exec or result.error_before_exec
        return out.out + out.err

    def fails(self, source: str, message: str) -> str:
        shown = self.run(source)
        assert isinstance(self.error, UsageError), f"expected a UsageError, got {self.error!r}"
        assert message in str(self.error)
        assert "Traceback" not in shown
        return shown

    @property
    def ns(self) -> dict:  # type: ignore[type-arg]
        return self.shell.user_ns
