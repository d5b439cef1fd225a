"""The hint a student gets: the textual gradient asked as a hint (`backward(hint=True)`), then
the leak layers on the teacher's side:

1. the syntactic filter (`tg_magic.hints.filter_hint`: code in any form, and long quotes of the
   reference solution or a hidden test);
2. the secret check (`leaks.leak`): the hint's decoded and folded forms (base64, base32, hex,
   URL, char codes, spelled letters, reversed, rot-N...) against every secret;
3. the model's check. The model that is shown the reference ("does this hint let the student
   write the answer without thinking?") only answers KEEP or WITHHOLD, and its reply is never
   shown; when it withholds, one rewrite is asked of a call that is shown no secret, and the
   rewrite goes through layers 1-3 again. Hidden tests go to no model: without a reference
   solution the judge sees the hint, the answer, the visible tests and the report only. What
   the student wrote or steered (the cell, the hint, the report) goes into both calls as quoted
   data under a random per-request boundary (`prompts.quoted`);
4. the secret check again, the last thing before the hint leaves.

A reply without a readable verdict or hint withholds (fail closed).
"""

from __future__ import annotations

from .. import prompts
from ..engines import Engine, get_engine
from ..functions import StringBasedFunction
from ..hints import REMOVED_NOTE, filter_hint
from ..variable import Variable
from .leaks import leak
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
    """What the hint may never carry: the reference solution and the hidden tests."""
    secret = [assignment.solution] if assignment.solution.strip() else []
    if assignment.mode == "tests":
        secret += assignment.teacher_tests().hidden_sources
    return secret


def checked_hint(raw: str, answer: str, assignment: Assignment, keep: list[str]) -> str:
    """Every layer over a raw hint: the syntactic filter, the secret check, the model's check
    (with the reference solution when there is one; never a hidden test), the secret check last.
    """
    secret = secrets_of(assignment)
    known = [answer, *keep]
    hint = filter_hint(raw, answer, keep, secret=secret)
    if hint == REMOVED_NOTE or not hint.strip():
        return hint
    if leak(hint, secret, known):  # before any model reads it again
        return WITHHELD
    hint = model_check(hint, answer, assignment.solution, assignment.engine, keep, secret)
    if hint != WITHHELD and leak(hint, secret, known):  # the last check before it leaves
        return WITHHELD
    return hint


def model_check(
    hint: str,
    answer: str,
    reference: str,
    engine: Engine | None,
    keep: list[str] = [],  # noqa: B006 - read only
    secret: list[str] = [],  # noqa: B006 - read only
) -> str:
    """The model's check: the hint as it is when the judge keeps it; else one rewrite by a call
    that sees no secret, filtered and judged again; else WITHHELD (also for a reply without a
    readable verdict: fail closed). `reference`: the teacher's solution, or "" (then the judge
    sees the hint, the answer and what the student has, nothing secret)."""
    eng = get_engine(engine) if engine is not None else _backward_engine()
    if _judge(eng, hint, answer, keep, reference) == "KEEP":
        return hint
    boundary = prompts.data_boundary(hint, answer, *keep)
    reply = eng.generate(
        prompts.rewrite_hint_prompt(hint, answer, keep, boundary),
        prompts.rewrite_hint_system(boundary),
    )
    rewritten = prompts.parse_rewrite(reply)
    if rewritten is None:
        return WITHHELD
    again = filter_hint(rewritten, answer, keep, secret=secret)
    if not again.strip() or REMOVED_NOTE in again or leak(again, secret, [answer, *keep]):
        return WITHHELD
    if _judge(eng, again, answer, keep, reference) == "KEEP":
        return again
    return WITHHELD


def _judge(eng: Engine, hint: str, answer: str, keep: list[str], reference: str) -> str:
    """KEEP or WITHHOLD: the only thing the model that sees the reference says."""
    boundary = prompts.data_boundary(hint, answer, reference, *keep)
    reply = eng.generate(
        prompts.leak_check_prompt(hint, answer, keep, reference, boundary),
        prompts.leak_check_system(boundary),
    )
    return prompts.parse_leak_check(reply)


def _backward_engine() -> Engine:
    from ..config import get_backward_engine

    return get_backward_engine()
