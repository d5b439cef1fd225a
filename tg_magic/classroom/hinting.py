"""The hint a student gets: the textual gradient asked as a hint (`backward(hint=True)`), then
two leak layers on the teacher's side: the syntactic filter (`tg_magic.hints.filter_hint`, which
also drops anything quoting the reference solution or a hidden test), then the model's own check
against the reference ("does this hint let the student write the answer without thinking?"),
which keeps, rewrites or withholds it. A rewrite passes the syntactic filter again.
"""

from __future__ import annotations

from .. import prompts
from ..engines import Engine, get_engine
from ..functions import StringBasedFunction
from ..hints import REMOVED_NOTE, filter_hint
from ..variable import Variable
from .scoring import Assignment, Scored

ALL_PASS = "All tests pass: nothing to point at."
WITHHELD = (
    "(the hint was withheld: it would have given the answer away; "
    "look again at the failing tests above)"
)


def make_hint(answer: Variable, scored: Scored, assignment: Assignment) -> str:
    """The filtered and checked hint for `answer` (a Variable with requires_grad)."""
    if assignment.mode == "tests" and scored.complete:
        return ALL_PASS
    if assignment.mode == "tests":
        visible = assignment.teacher_tests().visible_text
        run = StringBasedFunction(
            lambda code: (scored.evaluation, scored.score or 0.0),
            "run the teacher's tests with pytest against the code (some tests are hidden: "
            f"only their names are shown); the output is the test report. Visible tests:\n"
            f"{visible}",
        )
        loss = run({"code": answer})
        keep = [visible, scored.evaluation]
    else:
        assert scored.judge is not None
        loss, keep = scored.judge, [assignment.text]
    loss.backward(assignment.engine, hint=True)
    return checked_hint(answer.get_gradient_text(), answer.value, assignment, keep)


def secrets_of(assignment: Assignment) -> list[str]:
    """What the hint may never quote: the reference solution and the hidden tests."""
    secret = [assignment.solution] if assignment.solution.strip() else []
    if assignment.mode == "tests":
        secret += assignment.teacher_tests().hidden_sources
    return secret


def checked_hint(raw: str, answer: str, assignment: Assignment, keep: list[str]) -> str:
    """Both leak layers over a raw hint."""
    secret = secrets_of(assignment)
    hint = filter_hint(raw, answer, keep, secret=secret)
    if hint == REMOVED_NOTE or not hint.strip():
        return hint
    reference = assignment.solution.strip() or assignment.text
    return model_check(hint, answer, reference, assignment.engine, keep, secret)


def model_check(
    hint: str,
    answer: str,
    reference: str,
    engine: Engine | None,
    keep: list[str] = [],  # noqa: B006 - read only
    secret: list[str] = [],  # noqa: B006 - read only
) -> str:
    """The model's verdict on the hint: kept as it is, rewritten (and filtered again), or
    withheld; a reply without a readable verdict withholds (fail closed)."""
    eng = get_engine(engine) if engine is not None else _backward_engine()
    reply = eng.generate(
        prompts.leak_check_prompt(hint, answer, reference), prompts.LEAK_CHECK_SYSTEM
    )
    verdict, rewritten = prompts.parse_leak_check(reply)
    if verdict == "KEEP":
        return hint
    if verdict == "REWRITE":
        again = filter_hint(rewritten, answer, keep, secret=secret)
        if again.strip() and REMOVED_NOTE not in again:
            return again
    return WITHHELD


def _backward_engine() -> Engine:
    from ..config import get_backward_engine

    return get_backward_engine()
