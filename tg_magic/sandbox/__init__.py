"""Run a candidate code cell against a test cell, contained, with verdicts it cannot forge.

The candidate runs in one sandboxed process; the (trusted) tests run in another and reach the
candidate's names through stubs that pass plain data back and forth. Only the test runner writes
the report, on a pipe the candidate cannot reach. See containment() for what holds here.
"""

from __future__ import annotations

from .containment import Limits, SandboxUnavailable, available
from .report import TestOutcome, TestReport
from .run import ahead, containment, run_tests

__all__ = [
    "Limits",
    "SandboxUnavailable",
    "TestOutcome",
    "TestReport",
    "ahead",
    "available",
    "containment",
    "run_tests",
]
