"""Scores that say which test failed, and when an optimization has nothing (more) to do.

`TestReports` keeps the sandbox report (`objectives.test_report`) of every value a test loss ran
on in this kernel, so the widgets, `%tgforward`, `%tghistory` and the progress show the tests one
by one with the first line of each failure. `Stopper` ends a run early: at the target score, or
after `patience` steps without a better score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..train import Objective, StepResult
from .edits import norm

if TYPE_CHECKING:
    from ..sandbox import TestReport
    from ..variable import Variable
    from .session import Session


@dataclass(frozen=True)
class Outcome:
    """One test as the user reads it: its name, pass or fail, the first line of the failure."""

    name: str
    passed: bool
    why: str


class TestReports:
    """The test reports of this kernel, by (loss, value tested)."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self._reports: dict[tuple[str, tuple[str, ...]], TestReport] = {}

    def forget(self, loss: str) -> None:
        """The loss cell changed: its earlier reports no longer say anything."""
        self._reports = {k: v for k, v in self._reports.items() if k[0] != loss}

    def get(self, loss: str, values: list[str]) -> TestReport | None:
        """The report of the loss's tests on these values (one per variable it tests)."""
        return self._reports.get(_key(loss, values))

    def latest_with(self, loss: str, index: int, value: str) -> TestReport | None:
        """The report of the last run of the loss's tests in which its variable number `index`
        held `value`, whatever the others held (None when it never ran on that value)."""
        wanted = norm(value)
        for (name, values), report in reversed(self._reports.items()):
            if name == loss and len(values) > index and values[index] == wanted:
                return report
        return None

    def keeping(
        self,
        loss: str,
        variables: list[Variable],
        objective: Objective[Any],
        report_on: Callable[[list[str]], TestReport],
    ) -> Objective[Any]:
        """The same objective, keeping each report; values already tested are not run again.
        `report_on(codes)` tests a candidate without touching the variables (k candidates)."""
        from ..objectives import per_test, test_report

        inner = objective.loss

        def now() -> list[str]:
            return [v.value for v in variables]

        def run(batch: list[Any] | None) -> Variable:
            node = inner(batch)
            self._reports[_key(loss, now())] = test_report(node)  # runs them now
            return node

        def validate() -> float | None:
            known = self.get(loss, now())
            return known.score if known is not None else run(None).score

        def each(values: list[str]) -> list[float]:
            known = self.get(loss, values)
            report = known if known is not None else report_on(values)
            self._reports[_key(loss, values)] = report
            return per_test(report)

        return Objective(
            run,
            objective.train,
            validate,
            each,
            maximum=objective.maximum,
            at_maximum=objective.at_maximum,
        )


def _key(loss: str, values: list[str]) -> tuple[str, tuple[str, ...]]:
    return loss, tuple(norm(v) for v in values)


def outcomes(report: TestReport | None) -> list[Outcome]:
    """The tests of a report; a run that never reached them is one failed line."""
    if report is None:
        return []
    found = [
        Outcome(o.name, o.passed, "" if o.passed else _first(o.message or o.traceback))
        for o in report.outcomes
    ]
    if not found and report.problem:
        found = [Outcome("the run", False, _first(report.problem))]
    return found


def summary(report: TestReport | None) -> str:
    """`2 of 3 tests pass` (or the problem), for one line of text."""
    tests = outcomes(report)
    if not tests:
        return ""
    if report is not None and not report.outcomes:
        return f"no test ran: {tests[0].why}"
    passed = sum(t.passed for t in tests)
    return f"{passed} of {len(tests)} tests pass"


def outcome_lines(report: TestReport | None) -> list[str]:
    """One line a test: `✓ name` or `✗ name: first line of the failure`."""
    return [f"✓ {t.name}" if t.passed else f"✗ {t.name}: {t.why}" for t in outcomes(report)]


def at_best(report: TestReport) -> bool:
    return report.score >= 1.0 and bool(report.outcomes) and all(o.passed for o in report.outcomes)


def nothing_to_do(session: Session, name: str | None, *, target: float | None = None) -> str | None:
    """When every loss is a test loss already at its best (or at the target score), say so:
    checking runs the tests only, no model call."""
    cells = session.loss_cells(name)
    if any(c.mode != "tests" for c in cells):
        return None
    lines = []
    for cell in cells:
        built = session.build_one(cell, None, None)
        assert built.objective.validate is not None
        score = built.objective.validate()
        report = session.reports.get(cell.name, [p.variable.value for p in built.parameters])
        if report is None or score is None:
            return None
        reached = target is not None and score >= target
        if not (at_best(report) or reached):
            return None
        what = summary(report) if at_best(report) else f"target {target:g} reached"
        lines.append(f"{cell.name}: {what} (score {score:.3f})")
    return "; ".join(lines) + ": nothing to optimize, no model call made"


def _first(text: str, width: int = 120) -> str:
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


class Stopper:
    """Ends a run early: when the score reaches `target`, or after `patience` steps that did not
    beat the best score so far; or when the library ended it (nothing left to gain). `reason`
    says why it stopped ("" when it ran every step)."""

    def __init__(self, *, patience: int | None, target: float | None) -> None:
        self.patience, self.target = patience, target
        self.best: float | None = None
        self.stale = 0
        self.reason = ""
        self.last: float | None = None

    def follow(self, steps: Iterator[StepResult]) -> Iterator[StepResult]:
        for result in steps:
            if self.best is None and result.val_before is not None:
                self.best = result.val_before
            yield result
            if self._should_stop(result):
                return
            if result.finished:  # nothing left to gain (the library ends the run)
                self.reason = f"{result.finished}; nothing left to gain"
                return

    def _should_stop(self, result: StepResult) -> bool:
        score = result.val_after if result.val_after is not None else result.score
        if score is None:
            return False
        self.last = score
        if self.best is None or score > self.best + 1e-9:
            self.best, self.stale = score, 0
        else:
            self.stale += 1
        if self.target is not None and score >= self.target:
            self.reason = f"reached the target score {self.target:g} (score {score:.3f})"
            return True
        if self.patience is not None and self.stale >= self.patience:
            self.reason = (
                f"no better score in {self.stale} step(s) (--patience {self.patience}); "
                f"best {self.best:.3f}"
            )
            return True
        return False
