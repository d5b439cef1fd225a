"""Scoring one submission (tests in the sandbox, or a judge with a rubric), the hint, the feedback
cell written into a copy of the notebook, and the whole class at a few notebooks at once."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
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


def _score_tests(body: str, run: str, assignment: Assignment, result: Result) -> None:
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
        return
    if scored.status != "ok":
        result.status = f"error: {scored.problem or scored.status}"
        return
    result.hint = make_hint(code, scored, assignment)


def _score_rubric(body: str, assignment: Assignment, result: Result) -> None:
    answer = Variable(body, role_description="answer written by a student", requires_grad=True)
    scored = score_rubric(answer, assignment)
    result.score = scored.score
    result.points = None if scored.score is None else round(10 * scored.score, 2)
    result.possible = 10.0
    result.hint = make_hint(answer, scored, assignment)


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
    sub = path if isinstance(path, Submission) else Submission.file(path)
    path = sub.path
    result_file = out_dir / "results" / f"{student}.json"
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
    result = Result(student, str(path), fingerprint=fingerprint)
    nb = None
    index = -1
    try:
        nb = _without_old_feedback(read_notebook(data))
        if assignment.nbgrader is not None:  # a page for every notebook read, even unscored
            index = 0
            body, run = nbgrader_feedback.answer(nb, assignment.nbgrader)
        else:
            index, body = find_answer(nb, assignment.target)
            run = code_only(body)
        if not body.strip():
            raise BrokenSubmission("the answer cell is empty")
        if assignment.mode == "tests":
            _check_parses(code_only(body))  # line numbers of the answer itself first
            _check_parses(run)
            _score_tests(body, run, assignment, result)
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
        try:
            if assignment.nbgrader is not None:  # where nbgrader's students read feedback
                folder = Path(assignment.feedback) / student / assignment.title
                target = nbgrader_feedback.write(nb, assignment.nbgrader, result, sub, folder)
            else:
                _write_feedback_notebook(nb, index, result, assignment, target)
            result.feedback_notebook = str(target)
        except Exception as exc:  # an odd notebook costs its feedback copy, not the run
            result.problem = f"no feedback notebook: {type(exc).__name__}: {str(exc)[:150]}"
    payload = {k: v for k, v in asdict(result).items() if k != "skipped"}
    write_atomic(result_file, json.dumps(payload, indent=1, ensure_ascii=False))
    return result


def _guarded(
    path: Submission | Path, student: str, assignment: Assignment, out_dir: Path, force: bool
) -> Result:
    try:
        return process(path, student, assignment, out_dir, force=force)
    except Exception as exc:  # one notebook never stops the others
        shown = path.path if isinstance(path, Submission) else path
        return Result(student, str(shown), f"error: {type(exc).__name__}: {str(exc)[:200]}")


_EMPTY_NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def warm_up(assignment: Assignment) -> None:
    """The heavy imports, once, before the lanes start: nbformat and its schema validator,
    IPython's input transformer, and the model SDK. Left to the lanes, every lane waits on the
    same import lock at once, and an SDK import on the engine's event loop thread holds up
    every model call in flight while the lanes slow the import (benchmarks/feedback.py)."""
    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager

    nbformat.reads(_EMPTY_NOTEBOOK, as_version=4)  # builds the validator
    TransformerManager()
    spec = assignment.engine.spec if assignment.engine is not None else ""
    if spec.startswith("anthropic"):
        with contextlib.suppress(ImportError):  # the engine says so, with its fix, at its call
            import anthropic  # noqa: F401


def default_jobs() -> int:
    """Two lanes per core: with the heavy imports done before the lanes, more lanes only
    contend (benchmarks/feedback.py, 100 notebooks on 2 cores: 4 lanes 7.7 s, 8 lanes 8.0 s,
    16 lanes 8.4-8.8 s)."""
    return 2 * (os.cpu_count() or 1)


def run(
    students: Mapping[Submission, str] | Mapping[Path, str],
    assignment: Assignment,
    out_dir: Path,
    *,
    jobs: int | None = None,
    force: bool = False,
    on_done: Callable[[Result, int, int], None] | None = None,
) -> list[Result]:
    """Every notebook (submission or path -> student), `jobs` at a time (default_jobs());
    results in the order given."""
    names: dict[Submission | Path, str] = dict(students.items())
    files = list(names)
    out_dir.mkdir(parents=True, exist_ok=True)
    warm_up(assignment)
    jobs = jobs or default_jobs()
    results: dict[Submission | Path, Result] = {}
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="tg-feedback") as pool:
        futures = {pool.submit(_guarded, f, names[f], assignment, out_dir, force): f for f in files}
        for future in as_completed(futures):
            result = future.result()
            with lock:
                results[futures[future]] = result
                if on_done:
                    on_done(result, len(results), len(files))
    return [results[f] for f in files]
