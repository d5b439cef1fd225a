"""One answer scored against an assignment: the teacher's tests in the sandbox (with hidden
tests and points), or a judge with the rubric. Shared by `tg-magic feedback` and the service;
what it returns is safe to show the student (hidden tests' bodies and messages are not in it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import objectives, sandbox
from ..engines import Engine
from ..errors import InputError
from ..objectives import LossSpec
from ..variable import Variable
from .teacher_tests import HIDDEN_MESSAGE, TeacherTests

if TYPE_CHECKING:
    from .nbgrader import SourceNotebook

RESULT_VERSION = 3  # bump when a result file written by an older version must be redone


@dataclass(frozen=True)
class Assignment:
    """What every answer is measured against, and what the hint may not give away."""

    target: str  # the answer's variable (or cell tag)
    mode: str  # tests | rubric
    text: str  # the tests (Python) or the rubric (words)
    engine: Engine | None = None  # gradients, the judge and the leak check; None: the default
    timeout: float = 20.0
    solution: str = ""  # the teacher's reference solution, for the leak check
    name: str = ""  # the gradebook column (default: the target)
    allow_unsandboxed: bool = False
    nbgrader: SourceNotebook | None = None  # nbgrader's layout: the teacher's notebook
    feedback: str = ""  # nbgrader's feedback/ folder: the pages go to feedback/STUDENT/NAME/

    @property
    def title(self) -> str:
        return self.name or self.target

    def teacher_tests(self) -> TeacherTests:
        if self.mode != "tests":
            raise InputError(f"assignment {self.title} is graded with a rubric, not tests")
        return TeacherTests.parse(self.text)

    def fingerprint(self, submission: bytes) -> str:
        digest = hashlib.sha256()
        spec = self.engine.spec if self.engine else "default"
        parts: tuple[str, ...] = (
            str(RESULT_VERSION), self.target, self.mode, self.text, self.solution, spec
        )  # fmt: skip
        if self.nbgrader is not None:  # the setup cells and the solution cells run
            parts += (repr(self.nbgrader.cells), repr(self.nbgrader.solutions), self.feedback)
        for part in parts:
            digest.update(part.encode("utf-8", "replace") + b"\0")
        digest.update(submission)
        return digest.hexdigest()


@dataclass
class Scored:
    """A score the student may see, and the evaluation the hint is made from."""

    status: str = "ok"  # ok | timeout | crashed | error
    problem: str = ""
    score: float | None = None  # earned / possible
    earned: float | None = None
    possible: float | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # TeacherTests.public_outcomes
    evaluation: str = ""  # for the hint model: no hidden test's body or message
    judge: Variable | None = None  # rubric mode: the judge's output, for the hint's backward

    @property
    def passed(self) -> int:
        return sum(1 for o in self.outcomes if o["passed"])

    @property
    def complete(self) -> bool:
        return self.score is not None and self.score >= 1.0


def score_tests(code: str, assignment: Assignment) -> Scored:
    """The visible and the hidden tests run apart, each against a fresh process of the code, so
    what the code sees in a hidden test cannot come back in a visible test's message."""
    tests = assignment.teacher_tests()

    def run(text: str) -> sandbox.TestReport:
        return sandbox.run_tests(
            code, text, timeout=assignment.timeout, allow_unsandboxed=assignment.allow_unsandboxed
        )

    visible = run(tests.visible_text) if tests.has_visible else None
    hidden = run(tests.hidden_text) if tests.hidden_sources else None
    reports = [r for r in (visible, hidden) if r is not None]
    outcomes = tests.public_outcomes(tuple(o for r in reports for o in r.outcomes))
    status = next((r.status for r in reports if r.status != "ok"), "ok")
    if visible is not None and visible.status != "ok":
        problem = visible.problem
    elif hidden is not None and hidden.status == "timeout":
        problem = hidden.problem  # "timed out after N s"
    elif hidden is not None and hidden.status != "ok":
        problem = f"the hidden tests' run ended: {hidden.status}"  # its details stay hidden
    else:
        problem = ""
    possible = sum(o["points"] for o in outcomes)
    earned = sum(o["earned"] for o in outcomes) if status == "ok" else 0.0
    scored = Scored(
        status=status,
        problem=problem,
        score=(earned / possible) if possible else 0.0,
        earned=earned,
        possible=possible,
        outcomes=outcomes,
    )
    scored.evaluation = _evaluation(scored)
    return scored


def _evaluation(scored: Scored) -> str:
    """The test report as the hint model sees it: hidden tests by name only."""
    total = len(scored.outcomes)
    lines = [f"{scored.passed} of {total} tests passed."]
    if scored.problem:
        lines.append(f"Problem: {scored.problem}")
    for o in scored.outcomes:
        if o["passed"]:
            continue
        why = HIDDEN_MESSAGE if o["hidden"] else (o["message"] or "failed")
        lines.append(f"{o['name']} failed: {why}")
    return "\n".join(lines)


def score_rubric(answer: Variable, assignment: Assignment) -> Scored:
    """The rubric loss of tg_magic.objectives, judged by the assignment's engine."""
    spec = LossSpec("rubric", assignment.text, model=assignment.engine)
    evaluation = objectives.build(spec, answer).loss(None)
    score = objectives.rubric_score(evaluation.value)
    return Scored(score=score, evaluation=evaluation.value, judge=evaluation)
