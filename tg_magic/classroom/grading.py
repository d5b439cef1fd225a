"""Scoring one submission (tests in the sandbox, or a judge with a rubric), the hint, the feedback
cell written into a copy of the notebook, and the whole class at a few notebooks at once."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import prompts
from ..engines import Engine
from ..errors import TgMagicError, redact
from ..hints import filter_hint
from ..loss import TestLoss, TextLoss
from ..variable import Variable
from .results import Result, write_atomic
from .submissions import BrokenSubmission, find_answer, first_line, read_notebook, student_names

FEEDBACK_TAG = "tg-magic-feedback"
_PIPE = "\\|"  # a | inside a Markdown table cell
RESULT_VERSION = 1  # bump when a result file written by an older version must be redone
ALL_PASS = "All tests pass: nothing to point at."


@dataclass(frozen=True)
class Assignment:
    """What every submission is measured against."""

    target: str
    mode: str  # tests | rubric
    text: str  # the tests (Python) or the rubric (words)
    engine: Engine | None = None  # gradients and the judge; None: the default engine
    timeout: float = 20.0

    def fingerprint(self, submission: bytes) -> str:
        digest = hashlib.sha256()
        spec = self.engine.spec if self.engine else "default"
        for part in (str(RESULT_VERSION), self.target, self.mode, self.text, spec):
            digest.update(part.encode() + b"\0")
        digest.update(submission)
        return digest.hexdigest()


_SCORE = re.compile(
    r"score\W{0,3}\s*(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE
)


def rubric_score(evaluation: str) -> float | None:
    """The judge's last "Score: N/M" as a fraction, or None when it gave none."""
    found = _SCORE.findall(evaluation)
    if not found:
        return None
    got, out_of = (float(x) for x in found[-1])
    return None if out_of <= 0 else max(0.0, min(1.0, got / out_of))


def _check_parses(body: str) -> None:
    import ast

    try:
        ast.parse(body)
    except SyntaxError as exc:
        raise BrokenSubmission(f"the answer does not parse: line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise BrokenSubmission(f"the answer does not parse: {exc}") from None


def _score_tests(body: str, assignment: Assignment, result: Result) -> None:
    loss_fn = TestLoss(assignment.text, timeout=assignment.timeout)
    code = Variable(body, role_description="Python code written by a student", requires_grad=True)
    loss = loss_fn(code)
    report_text = loss.value
    report = TestLoss.report(loss)
    result.score = loss.score
    result.total = len(report.outcomes)
    result.passed = sum(1 for o in report.outcomes if o.passed)
    result.tests = {o.name: "pass" if o.passed else "fail" for o in report.outcomes}
    result.failures = {
        o.name: first_line(o.message) for o in report.outcomes if not o.passed and o.message
    }
    result.problem = report.problem
    if result.score is not None and result.score >= 1.0:
        result.hint = ALL_PASS
        return
    loss.backward(assignment.engine, hint=True)  # a hint, not a fix
    result.hint = filter_hint(code.get_gradient_text(), body, [assignment.text, report_text])


def _score_rubric(body: str, assignment: Assignment, result: Result) -> None:
    judge = TextLoss(prompts.rubric_instruction(assignment.text), engine=assignment.engine)
    answer = Variable(body, role_description="answer written by a student", requires_grad=True)
    evaluation = judge(answer)
    result.score = rubric_score(evaluation.value)
    evaluation.backward(assignment.engine, hint=True)
    result.hint = filter_hint(answer.get_gradient_text(), body, [assignment.text])


def feedback_markdown(result: Result, assignment: Assignment) -> str:
    """The Markdown cell put after the student's answer."""
    lines = [f"### Feedback on `{assignment.target}`", ""]
    if not result.ok:
        lines += [f"**Could not be scored:** {result.status.removeprefix('error: ')}", ""]
    if result.total is not None and result.passed is not None:
        score = result.score if result.score is not None else 0.0
        lines += [f"**Score: {result.passed} of {result.total} tests passed ({score:.2f})**", ""]
        if result.tests:
            lines += ["| test | result |", "|---|---|"]
            for name, outcome in result.tests.items():
                why = result.failures.get(name, "")
                shown = "passed" if outcome == "pass" else "failed" + (f": `{why}`" if why else "")
                lines.append(f"| `{name}` | {shown.replace('|', _PIPE)} |")
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


def process(
    path: Path, student: str, assignment: Assignment, out_dir: Path, *, force: bool = False
) -> Result:
    """Score one notebook and write its feedback copy and result file (or reuse the result of
    an earlier run for the same submission and assignment)."""
    result_file = out_dir / "results" / f"{student}.json"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Result(student, str(path), f"error: cannot read the file ({exc.strerror})")
    fingerprint = assignment.fingerprint(data)
    if not force and result_file.is_file():
        try:
            earlier = Result(**json.loads(result_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            earlier = None
        if earlier is not None and earlier.fingerprint == fingerprint and not earlier.retry:
            earlier.skipped = True
            return earlier
    result = Result(student, str(path), fingerprint=fingerprint)
    nb = None
    index = -1
    try:
        nb = _without_old_feedback(read_notebook(path))
        index, body = find_answer(nb, assignment.target)
        if not body.strip():
            raise BrokenSubmission("the answer cell is empty")
        if assignment.mode == "tests":
            _check_parses(body)
            _score_tests(body, assignment, result)
        else:
            _score_rubric(body, assignment, result)
    except BrokenSubmission as exc:
        result.status = f"error: {exc}"
        if assignment.mode == "tests" and nb is not None and index >= 0:
            result.score = 0.0  # an answer that does not parse (or is empty) passes nothing
    except TgMagicError as exc:  # the model call failed, the budget ran out...: try again later
        result.status, result.retry = f"error: {redact(str(exc))}", True
    except Exception as exc:  # one notebook never stops the others
        result.status = f"error: {type(exc).__name__}: {redact(str(exc))[:200]}"
        result.retry = True
    if nb is not None and index >= 0 and not result.retry:
        target = out_dir / f"{student}.ipynb"
        _write_feedback_notebook(nb, index, result, assignment, target)
        result.feedback_notebook = str(target)
    payload = {k: v for k, v in asdict(result).items() if k != "skipped"}
    write_atomic(result_file, json.dumps(payload, indent=1, ensure_ascii=False))
    return result


def run(
    files: list[Path],
    assignment: Assignment,
    out_dir: Path,
    *,
    jobs: int = 4,
    force: bool = False,
    on_done: Callable[[Result, int, int], None] | None = None,
) -> list[Result]:
    """Every notebook, `jobs` at a time; results in the order of `files`."""
    names = student_names(files)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[Path, Result] = {}
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="tg-feedback") as pool:
        futures = {
            pool.submit(process, f, names[f], assignment, out_dir, force=force): f for f in files
        }
        for future in as_completed(futures):
            result = future.result()
            with lock:
                results[futures[future]] = result
                if on_done:
                    on_done(result, len(results), len(files))
    return [results[f] for f in files]
