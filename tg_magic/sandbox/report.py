"""The result of a test run: per-test outcomes, a score, a status, and text for the gradient."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import redact

TEXT_CAP = 6000
STATUSES = ("ok", "timeout", "crashed", "error")


@dataclass(frozen=True)
class TestOutcome:
    """One test's result, trimmed to what helps a reader (or a model) fix the code."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    message: str = ""  # its first line says why the test failed
    traceback: str = ""
    output: str = ""
    duration: float = 0.0  # seconds

    def redacted(self, limit: int) -> TestOutcome:
        """Bounded, printable and without key-like strings: the text goes to models, widgets,
        terminals and files."""
        return replace(
            self,
            name=clip(redact(printable(self.name)), 200),
            message=clip(redact(printable(self.message)), 2000),
            traceback=clip(redact(printable(self.traceback)), 3000),
            output=clip(redact(printable(self.output)), limit),
        )


@dataclass(frozen=True)
class TestReport:
    """The whole run. `status`: "ok" (the tests ran; the score is the fraction that passed),
    "timeout", "crashed" (a limit was hit or a process died) or "error" (nothing could run);
    anything but "ok" scores 0 and `problem` says why in one line."""

    __test__ = False

    outcomes: tuple[TestOutcome, ...]
    score: float
    problem: str
    output: str
    contained: str
    status: str = "ok"

    @property
    def passed(self) -> int:
        return sum(1 for o in self.outcomes if o.passed)

    def text(self) -> str:
        """Concise evaluation text for the model: summary first, then each failure."""
        total = len(self.outcomes)
        if total:
            head = f"{self.passed} of {total} tests passed (score {self.score:.2f})."
        else:
            head = f"No tests ran (score {self.score:.2f})."
        out = head + (f"\nProblem: {self.problem}" if self.problem else "")
        failed = [o for o in self.outcomes if not o.passed]
        if not failed:
            if self.problem and self.output.strip():
                out += "\n\nOutput of the run (end):\n" + _indent(tail(self.output, 2500))
            return redact(clip(out, TEXT_CAP))
        per_test = max(600, (TEXT_CAP - len(out)) // min(len(failed), 4))
        shown = 0
        for outcome in failed:
            block = clip(_describe(outcome), per_test)
            if len(out) + len(block) + 2 > TEXT_CAP - 200:
                break
            out += "\n\n" + block
            shown += 1
        rest = failed[shown:]
        if rest:
            out += f"\n\n{len(rest)} more failed: {clip(', '.join(o.name for o in rest), 150)}"
        return redact(clip(out, TEXT_CAP))


def _describe(outcome: TestOutcome) -> str:
    parts = [f"FAILED {outcome.name}"]
    if outcome.message:
        parts.append("Message:\n" + _indent(clip(outcome.message, 800)))
    if outcome.traceback:
        parts.append("Traceback (end):\n" + _indent(outcome.traceback))
    if outcome.output.strip():
        parts.append("Captured output:\n" + _indent(tail(outcome.output.strip(), 1200)))
    return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# Terminal escape sequences (colours, clearing the screen, window titles) and other control
# characters: code under test could repaint a terminal or a log with them.
_CONTROLS = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text: str) -> str:
    """`text` without terminal escape sequences and control characters (newlines and tabs stay)."""
    return _CONTROLS.sub("", text)


def clip(text: str, limit: int) -> str:
    """Keep the start; mark the cut so the reader knows something is missing."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 20)] + "\n[... truncated]"


def tail(text: str, limit: int) -> str:
    """Keep the end, where tracebacks and final errors are."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]
