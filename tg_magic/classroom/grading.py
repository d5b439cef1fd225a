"""Scoring one submission (tests in the sandbox, or a judge with a rubric), the hint, the feedback
cell written into a copy of the notebook. In two steps, `grade` then `finish` (the hint and the
files), so that a class's lanes (lanes.py) test other notebooks while a hint waits on the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import pysource
from ..errors import TgMagicError, redact
from ..variable import Variable
from . import nbgrader_feedback
from .hinting import make_hint
from .results import Result, write_atomic
from .scoring import Assignment, score_rubric, score_tests
from .submissions import (
    BrokenSubmission,
    NotInFolder,
    Submission,
    code_only,
    find_answer,
    read_notebook,
    read_submission,
)

FEEDBACK_TAG = "tg-magic-feedback"
_PIPE = "\\|"  # a | inside a Markdown table cell


def _check_parses(body: str) -> None:

    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise BrokenSubmission(
            "the answer holds a character that is not text (a lone surrogate): retype that line"
        ) from None
    try:
        pysource.parse(body)
    except SyntaxError as exc:
        raise BrokenSubmission(f"the answer does not parse: line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise BrokenSubmission(f"the answer does not parse: {exc}") from None


Hint = Callable[[], str]  # the hint still to ask (a model call)


def _score_tests(body: str, run: str, assignment: Assignment, result: Result) -> Hint | None:
    """`body`: the answer the hint is about; `run`: the code the tests run against."""
    code = Variable(body, role_description="Python code written by a student", requires_grad=True)
    scored = score_tests(run, assignment)
    result.score, result.points, result.possible = scored.score, scored.earned, scored.possible
    result.total = len(scored.outcomes)
    result.passed = scored.passed
    result.tests = {o["name"]: "pass" if o["passed"] else "fail" for o in scored.outcomes}
    result.failures = {o["name"]: o["message"] for o in scored.outcomes if o["message"]}
    result.hidden = [o["name"] for o in scored.outcomes if o["hidden"]]
    result.problem = scored.problem
    if scored.status == "timeout":
        result.status = f"timed out after {assignment.timeout:g} s"
        return None
    if scored.status != "ok":
        result.status = f"error: {scored.problem or scored.status}"
        return None
    if scored.complete:  # all tests pass: the hint asks no model
        result.hint = make_hint(code, scored, assignment)
        return None
    return lambda: make_hint(code, scored, assignment)


def _score_rubric(body: str, assignment: Assignment, result: Result) -> Hint:
    answer = Variable(body, role_description="answer written by a student", requires_grad=True)
    scored = score_rubric(answer, assignment)
    result.score = scored.score
    result.points = None if scored.score is None else round(10 * scored.score, 2)
    result.possible = 10.0
    return lambda: make_hint(answer, scored, assignment)


def feedback_markdown(result: Result, assignment: Assignment) -> str:
    """The Markdown cell put after the student's answer."""
    lines = [f"### Feedback on `{assignment.target}`", ""]
    if not result.ok:
        lines += [f"**Could not be scored:** {result.status.removeprefix('error: ')}", ""]
    if result.total is not None and result.passed is not None:
        score = result.score if result.score is not None else 0.0
        points = f", {result.points:g} of {result.possible:g} points" if result.possible else ""
        lines += [
            f"**Score: {result.passed} of {result.total} tests passed ({score:.2f}{points})**",
            "",
        ]
        if result.tests:
            lines += ["| test | result |", "|---|---|"]
            for name, outcome in result.tests.items():
                why = result.failures.get(name, "")
                shown = "passed" if outcome == "pass" else "failed" + (f": `{why}`" if why else "")
                label = f"`{name}` (hidden)" if name in result.hidden else f"`{name}`"
                lines.append(f"| {label} | {shown.replace('|', _PIPE)} |")
            lines.append("")
    elif result.score is not None:
        lines += [f"**Score: {result.score:.2f}**", ""]
    elif result.ok:
        lines += ["**Score:** the judge gave none", ""]
    if result.problem:
        lines += [f"**Problem:** {result.problem}", ""]
    if result.hint:
        lines += ["**Hint.** " + result.hint, ""]
    lines.append("*tg-magic feedback: hints point at the problem, not the solution.*")
    return "\n".join(lines)


def _write_feedback_notebook(
    nb: Any, index: int, result: Result, assignment: Assignment, path: Path
) -> None:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(feedback_markdown(result, assignment))
    cell.metadata["tags"] = [FEEDBACK_TAG]
    if nb.cells and "id" not in nb.cells[0]:
        del cell["id"]  # an nbformat 4.4 notebook has no cell ids
    nb.cells.insert(index + 1, cell)
    write_atomic(path, nbformat.writes(nb))


def _without_old_feedback(nb: Any) -> Any:
    nb.cells = [c for c in nb.cells if FEEDBACK_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


@dataclass
class Graded:
    """A notebook scored, its hint not asked yet: what `finish` needs."""

    sub: Submission
    result: Result
    nb: Any = None  # the notebook read (None: it could not be read)
    index: int = -1  # the answer cell's index (-1: none found)
    hint: Hint | None = None  # None: no model call is left to make


def result_path(out_dir: Path, student: str) -> Path:
    """The file that marks a student's notebook done (and holds its Result)."""
    return out_dir / "results" / f"{student}.json"


def _failed(result: Result, exc: Exception) -> None:
    """A failure that may go away (the model call failed, the budget ran out...): redo later.
    One notebook's failure never stops the others."""
    if isinstance(exc, TgMagicError):
        result.status = f"error: {redact(str(exc))}"
    else:
        result.status = f"error: {type(exc).__name__}: {redact(str(exc))[:200]}"
    result.retry = True


def process(
    path: Submission | Path,
    student: str,
    assignment: Assignment,
    out_dir: Path,
    *,
    force: bool = False,
) -> Result:
    """Score one notebook and write its feedback copy and result file (or reuse the result of
    an earlier run for the same submission and assignment). Only a regular file in the
    submissions folder is read; anything else gets its reason and is not scored or copied."""
    step = grade(path, student, assignment, out_dir, force=force)
    return step if isinstance(step, Result) else finish(step, assignment, out_dir)


def grade(
    path: Submission | Path,
    student: str,
    assignment: Assignment,
    out_dir: Path,
    *,
    force: bool = False,
) -> Result | Graded:
    """The first step of `process`: read and score (the tests run in the sandbox; a rubric's
    judge is asked). A Result when nothing is left to do: done before, or not readable."""
    sub = path if isinstance(path, Submission) else Submission.file(path)
    path = sub.path
    result_file = result_path(out_dir, student)
    try:
        data = read_submission(sub)
    except NotInFolder as exc:
        return Result(student, str(path), f"error: {exc}")
    except OSError as exc:
        return Result(student, str(path), f"error: cannot read the file ({exc.strerror})")
    fingerprint = assignment.fingerprint(data)
    if not force and result_file.is_file():
        try:
            earlier = Result(**json.loads(result_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            earlier = None
        if (
            earlier is not None
            and earlier.fingerprint == fingerprint
            and not earlier.retry
            and (not earlier.feedback_notebook or Path(earlier.feedback_notebook).is_file())
        ):
            earlier.skipped = True
            return earlier
    step = Graded(sub, Result(student, str(path), fingerprint=fingerprint))
    try:
        step.nb = _without_old_feedback(read_notebook(data))
        if assignment.nbgrader is not None:  # a page for every notebook read, even unscored
            step.index = 0
            body, run = nbgrader_feedback.answer(step.nb, assignment.nbgrader)
        else:
            step.index, body = find_answer(step.nb, assignment.target)
            run = code_only(body)
        if not body.strip():
            raise BrokenSubmission("the answer cell is empty")
        if assignment.mode == "tests":
            _check_parses(code_only(body))  # line numbers of the answer itself first
            _check_parses(run)
            step.hint = _score_tests(body, run, assignment, step.result)
        else:
            step.hint = _score_rubric(body, assignment, step.result)
    except BrokenSubmission as exc:
        step.result.status = f"error: {exc}"
        if assignment.mode == "tests" and step.nb is not None and step.index >= 0:
            step.result.score = 0.0  # an answer that does not parse (or is empty) passes nothing
    except Exception as exc:
        _failed(step.result, exc)
    return step


def finish(step: Graded, assignment: Assignment, out_dir: Path) -> Result:
    """The second step of `process`: the hint, the feedback copy and the result file."""
    result, nb, index = step.result, step.nb, step.index
    if step.hint is not None and not result.retry:
        try:
            result.hint = step.hint()
        except Exception as exc:
            _failed(result, exc)
    if nb is not None and index >= 0 and not result.retry:
        target = out_dir / f"{result.student}.ipynb"
        try:
            if assignment.nbgrader is not None:  # where nbgrader's students read feedback
                folder = Path(assignment.feedback) / result.student / assignment.title
                target = nbgrader_feedback.write(nb, assignment.nbgrader, result, step.sub, folder)
            else:
                _write_feedback_notebook(nb, index, result, assignment, target)
            result.feedback_notebook = str(target)
        except Exception as exc:  # an odd notebook costs its feedback copy, not the run
            result.problem = f"no feedback notebook: {type(exc).__name__}: {str(exc)[:150]}"
    payload = {k: v for k, v in asdict(result).items() if k != "skipped"}
    write_atomic(
        result_path(out_dir, result.student),
        json.dumps(payload, indent=1, ensure_ascii=False),
    )
    return result


def guarded_grade(
    path: Submission | Path, student: str, assignment: Assignment, out_dir: Path, force: bool
) -> Result | Graded:
    """`grade`, and a Result naming the error should anything escape it."""
    try:
        return grade(path, student, assignment, out_dir, force=force)
    except Exception as exc:  # one notebook never stops the others
        shown = path.path if isinstance(path, Submission) else path
        return Result(student, str(shown), f"error: {type(exc).__name__}: {str(exc)[:200]}")


def guarded_finish(step: Graded, assignment: Assignment, out_dir: Path) -> Result:
    """`finish`, and a Result naming the error should anything escape it."""
    try:
        return finish(step, assignment, out_dir)
    except Exception as exc:  # one notebook never stops the others
        result = step.result
        return Result(
            result.student, result.notebook, f"error: {type(exc).__name__}: {str(exc)[:200]}"
        )
