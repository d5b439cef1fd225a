"""Turn what the runner reported (and how the processes ended) into a TestReport.

Only the runner's report pipe is read for verdicts; the candidate's exit status and output only
ever explain a failure, never make a pass. Anything abnormal scores 0 with a one-line problem.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from ..text import first_line
from .containment import Limits
from .report import TestOutcome, TestReport, printable

FLOOD_FACTOR = 10  # a run is stopped once its output passes this many times the output limit
_MEMORY = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_DISK = (os.strerror(errno.EFBIG), os.strerror(errno.ENOSPC))


@dataclass
class Run:
    """Everything observed about one run, filled in by run.py."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    output_chars: int = 0
    timed_out: bool = False
    flooded: bool = False
    candidate_status: int | None = None
    out_of_memory: bool = False  # the candidate's cgroup refused memory


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_problem(status: int | None) -> str:
    if status is None:
        return "the code stopped before the tests finished"
    if status < 0 or (status > 128 and status - 128 in {s.value for s in signal.Signals}):
        number = -status if status < 0 else status - 128  # bubblewrap reports 128 + signal
        return f"the code was killed by {_signal_name(number)} before the tests finished"
    return f"the code exited with status {status} before the tests finished"


def _outcome(data: Any) -> TestOutcome | None:
    if type(data) is not dict:
        return None
    duration = data.get("duration")
    return TestOutcome(
        name=str(data.get("name", "?")),
        passed=data.get("passed") is True,
        message=str(data.get("message", "")),
        traceback=str(data.get("traceback", "")),
        output=str(data.get("output", "")),
        duration=float(duration) if isinstance(duration, int | float) else 0.0,
    )


def judge(run: Run, limits: Limits, contained: str) -> TestReport:
    outcomes: list[TestOutcome] = []
    end: dict[str, Any] = {}
    for message in run.messages:
        outcome = _outcome(message.get("outcome"))
        if outcome is not None:
            outcomes.append(outcome.redacted(limits.output_limit))
        elif any(key in message for key in ("done", "import_error", "gone")):
            end = message
    found = tuple(outcomes)
    memory = f"memory limit of {limits.memory_mb} MB exceeded"
    flood = (
        f"output limit exceeded: more than {FLOOD_FACTOR * limits.output_limit} characters; "
        f"output truncated at {limits.output_limit} characters"
    )

    def report(status: str, problem: str, score: float = 0.0) -> TestReport:
        return TestReport(
            found, score, printable(problem), printable(run.output), contained, status
        )

    if run.timed_out:
        return report("timeout", f"timed out after {limits.timeout:g} s")
    if run.flooded:
        return report("crashed", flood)
    if not end:
        return report("crashed", "the test runner ended before it finished (see the output)")
    if "import_error" in end:
        error = end["import_error"] if type(end["import_error"]) is dict else {}
        kind, text = str(error.get("type", "?")), str(error.get("message", ""))
        if kind == "SystemExit":
            return report("error", exit_problem(int(text) if text.isdigit() else 1))
        if kind == "MemoryError" or run.out_of_memory:
            return report("crashed", memory)
        tb = str(error.get("traceback", ""))
        found = (TestOutcome("loading the code", False, f"{kind}: {text}", tb),)
        return report("error", f"the code failed when loaded: {kind}: {text}"[:300])
    if end.get("gone") and "done" not in end:
        return report("crashed", _ended(run, memory))
    collect = [o for o in found if o.name == "collecting the tests" and not o.passed]
    if collect:
        return report(
            "error", f"the tests could not be collected: {first_line(collect[0].message, 200)}"
        )
    if end.get("gone"):
        return report("crashed", _ended(run, memory))
    failures = "\n".join(o.message for o in found if not o.passed)
    if any(sign in failures for sign in _MEMORY) or run.out_of_memory:
        return report("crashed", memory)
    if any(sign in failures for sign in _DISK):
        return report(
            "crashed", f"disk limit exceeded: files and output are limited to {limits.disk_mb} MB"
        )
    reported = end.get("output_chars")
    chars = max(run.output_chars, reported if type(reported) is int else 0)
    if chars > FLOOD_FACTOR * limits.output_limit:
        return report("crashed", flood)
    if not found:
        return report("error", "no tests were found: write top-level asserts or test_* functions")
    passed = sum(1 for o in found if o.passed)
    truncated = chars > limits.output_limit or any(
        len(o.output) >= limits.output_limit for o in found
    )
    problem = f"output truncated at {limits.output_limit} characters" if truncated else ""
    return report("ok", problem, passed / len(found))


def _ended(run: Run, memory: str) -> str:
    if run.out_of_memory:
        return f"{memory} (all the code's processes together)"
    return exit_problem(run.candidate_status)
