"""The sandbox's public API as the classroom uses it.

TEMPORARY SHIM: the sandbox is being rewritten (branch `sandbox`) to offer `run_tests(...,
allow_unsandboxed=False)` with `report.status`, `available()` and `SandboxUnavailable`. Until it
lands on main, this module gives those names over today's `tg_magic.sandbox`; afterwards it
re-exports them unchanged and can be deleted (import from `tg_magic.sandbox` directly).
"""

from __future__ import annotations

import inspect
import shutil
from dataclasses import dataclass
from typing import Any

from .. import sandbox
from ..errors import TgMagicError

INSTALL_LINE = (
    "student code runs only in the sandbox, and bubblewrap is not installed: "
    "sudo apt-get install bubblewrap (or pass --unsandboxed for code you trust)"
)


class _Unavailable(TgMagicError):
    """No sandbox on this machine, and running unsandboxed was not allowed."""


SandboxUnavailable: type[TgMagicError] = getattr(sandbox, "SandboxUnavailable", _Unavailable)


def available() -> bool:
    """Can student code run contained here?"""
    probe = getattr(sandbox, "available", None)
    return bool(probe()) if probe is not None else shutil.which("bwrap") is not None


@dataclass(frozen=True)
class Report:
    """`sandbox.TestReport` with the status the new API gives (ok|timeout|crashed|error)."""

    status: str
    problem: str
    outcomes: tuple[Any, ...]


def _status(report: Any) -> str:
    status = getattr(report, "status", None)
    if status is not None:
        return str(status)
    problem = str(report.problem)
    if not problem:
        return "ok"
    if problem.startswith("timed out after"):
        return "timeout"
    if report.outcomes:
        return "ok"  # tests ran; a problem beside them (output cut...) is said in the row
    return "crashed" if "exited" in problem or "signal" in problem else "error"


def run_tests(code: str, tests: str, *, timeout: float, allow_unsandboxed: bool = False) -> Report:
    if not allow_unsandboxed and not available():
        raise SandboxUnavailable(INSTALL_LINE)
    options: dict[str, Any] = {"timeout": timeout}
    if "allow_unsandboxed" in inspect.signature(sandbox.run_tests).parameters:
        options["allow_unsandboxed"] = allow_unsandboxed
    report = sandbox.run_tests(code, tests, **options)
    return Report(_status(report), str(report.problem), tuple(report.outcomes))
