"""`tg-magic feedback`: the teacher's tests or rubric over a folder of submitted notebooks.

For each notebook: find the answer cell (`%%tgvariable NAME`, or a cell tagged NAME), run the
loss (tests in the sandbox, or a judge with the rubric), ask for the textual gradient as a hint
(the HINT_RULE prompt, then `hints.filter_hint`), and write a copy of the notebook with a
feedback cell after the answer, plus a per-student result file. `summary.csv` and
`summary.html` gather the scores.

This module sits with the command line above the library (it reads and writes notebooks with
nbformat); the library itself knows nothing of notebooks.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
import shlex
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import prompts
from .engines import Engine
from .errors import InputError, TgMagicError, redact
from .hints import filter_hint
from .loss import TestLoss, TextLoss
from .variable import Variable

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


@dataclass
class Result:
    """One student's row of the summary (also the JSON file that marks the notebook done)."""

    student: str
    notebook: str
    status: str = "ok"  # "ok", or "error: why"
    score: float | None = None
    passed: int | None = None
    total: int | None = None
    tests: dict[str, str] = field(default_factory=dict)  # test name -> pass | fail
    failures: dict[str, str] = field(default_factory=dict)  # test name -> its message
    problem: str = ""
    hint: str = ""
    feedback_notebook: str = ""
    fingerprint: str = ""
    retry: bool = False  # a failure that may go away (the model call failed): redo next time
    skipped: bool = False  # read from an earlier run's result file

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Broken(Exception):
    """The submission cannot be scored as it is; the message says why."""


# --------------------------------------------------------------------------- submissions


def find_submissions(paths: Iterable[str | Path]) -> list[Path]:
    """The .ipynb files named, or found in the folders named (sorted; checkpoints skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*.ipynb")
                if ".ipynb_checkpoints" not in p.parts and p.is_file()
            )
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"submission {str(raw)!r} not found: give .ipynb files or folders")
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def student_names(files: list[Path]) -> dict[Path, str]:
    """A name per notebook: its file name without .ipynb, with its folder when two collide."""
    names = {f: f.stem for f in files}
    stems = [f.stem for f in files]
    for f in files:
        if stems.count(f.stem) > 1:
            names[f] = f"{f.parent.name}-{f.stem}"
    for f in files:  # still the same (same folder names): number them
        if list(names.values()).count(names[f]) > 1:
            names[f] = f"{names[f]}-{files.index(f) + 1}"
    return names


def _magic_target(source: str) -> tuple[str, str] | None:
    """(NAME, kind) of a `%%tgvariable NAME [--kind K]` cell, else None."""
    first = source.lstrip().split("\n", 1)[0]
    try:
        words = shlex.split(first)
    except ValueError:
        words = first.split()
    if len(words) < 2 or words[0] != "%%tgvariable":
        return None
    kind = "prompt"
    if "--kind" in words[:-1]:
        kind = words[words.index("--kind") + 1]
    return words[1], kind


def find_answer(nb: Any, target: str) -> tuple[int, str]:
    """The index and the text of the answer cell: the `%%tgvariable TARGET` cell, else the
    first cell tagged TARGET. The magic line is not part of the text."""
    tagged = None
    for index, cell in enumerate(nb.cells):
        source = cell.get("source", "")
        magic = _magic_target(source) if cell.get("cell_type") == "code" else None
        if magic is not None and magic[0] == target:
            return index, source.lstrip().split("\n", 1)[1] if "\n" in source.lstrip() else ""
        tags = cell.get("metadata", {}).get("tags", [])
        if tagged is None and isinstance(tags, list) and target in tags:
            body = source
            if magic is not None:
                body = source.lstrip().split("\n", 1)[1] if "\n" in source.lstrip() else ""
            tagged = index, body
    if tagged is None:
        raise _Broken(
            f"no answer cell: no `%%tgvariable {target}` cell and no cell tagged {target}"
        )
    return tagged


def _first(text: str, width: int = 120) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def _read_notebook(path: Path) -> Any:
    import nbformat
    from nbformat.reader import NotJSONError

    try:
        return nbformat.read(path, as_version=4)
    except NotJSONError:
        raise _Broken("not a notebook: the file is not valid JSON (cut short?)") from None
    except UnicodeDecodeError:
        raise _Broken("not a notebook: the file is not UTF-8 text") from None
    except Exception as exc:  # not a notebook, unreadable: the row says why
        raise _Broken(
            f"not a readable notebook: {_first(str(exc)) or type(exc).__name__}"
        ) from None


# --------------------------------------------------------------------------- one notebook


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
        raise _Broken(f"the answer does not parse: line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise _Broken(f"the answer does not parse: {exc}") from None


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
        o.name: _first(o.message) for o in report.outcomes if not o.passed and o.message
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


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_feedback_notebook(
    nb: Any, index: int, result: Result, assignment: Assignment, path: Path
) -> None:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(feedback_markdown(result, assignment))
    cell.metadata["tags"] = [FEEDBACK_TAG]
    if nb.cells and "id" not in nb.cells[0]:
        del cell["id"]  # an nbformat 4.4 notebook has no cell ids
    nb.cells.insert(index + 1, cell)
    _write_atomic(path, nbformat.writes(nb))


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
        nb = _without_old_feedback(_read_notebook(path))
        index, body = find_answer(nb, assignment.target)
        if not body.strip():
            raise _Broken("the answer cell is empty")
        if assignment.mode == "tests":
            _check_parses(body)
            _score_tests(body, assignment, result)
        else:
            _score_rubric(body, assignment, result)
    except _Broken as exc:
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
    _write_atomic(result_file, json.dumps(payload, indent=1, ensure_ascii=False))
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


# --------------------------------------------------------------------------- summary


def test_columns(results: list[Result]) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [n for n in r.tests if n not in names]
    return names


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def summary_rows(results: list[Result], mode: str) -> tuple[list[str], list[list[str]]]:
    tests = test_columns(results)
    head = ["student", "notebook", "status", "score"]
    if mode == "tests":
        head += ["passed", "total", *tests]
    head += ["hint", "feedback_notebook"]
    rows = []
    for r in results:
        row = [r.student, r.notebook, r.status, _score(r.score)]
        if mode == "tests":
            row += [
                "" if r.passed is None else str(r.passed),
                "" if r.total is None else str(r.total),
            ]
            row += [r.tests.get(t, "") for t in tests]
        row += [r.hint, r.feedback_notebook]
        rows.append(row)
    return head, rows


def write_csv(results: list[Result], mode: str, path: Path) -> None:
    head, rows = summary_rows(results, mode)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(head)
    writer.writerows(rows)
    _write_atomic(path, buffer.getvalue())


_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } p.meta { color: #555; }
table { border-collapse: collapse; margin-top: 1em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pass { background: #e6f4ea; } td.fail { background: #fce8e6; }
td.error { color: #a50e0e; } tr.total td { font-weight: 600; background: #fafafa; }
details summary { cursor: pointer; color: #1a56a8; }
details div { max-width: 40em; white-space: pre-wrap; }
"""


def write_html(results: list[Result], assignment: Assignment, path: Path) -> None:
    """A self-contained page (inline CSS, nothing external): one row per student, one column
    per test, and how many students passed each test."""
    esc = html.escape
    tests = test_columns(results) if assignment.mode == "tests" else []
    ok = [r for r in results if r.ok]
    scores = [r.score for r in results if r.score is not None]
    mean = f"{sum(scores) / len(scores):.2f}" if scores else "–"
    head = ["student", "status", "score"]
    if assignment.mode == "tests":
        head += ["passed", *[f"<code>{esc(t)}</code>" for t in tests]]
    head.append("hint")
    body = []
    for r in results:
        status = "ok" if r.ok else esc(r.status.removeprefix("error: "))
        link = (
            f'<a href="{esc(Path(r.feedback_notebook).name)}">{esc(r.student)}</a>'
            if r.feedback_notebook
            else esc(r.student)
        )
        cells = [
            f"<td>{link}</td>",
            f'<td class="{"" if r.ok else "error"}">{status}</td>',
            f'<td class="num">{_score(r.score) or "–"}</td>',
        ]
        if assignment.mode == "tests":
            passed = "–" if r.passed is None else f"{r.passed}/{r.total if r.total else 0}"
            cells.append(f'<td class="num">{passed}</td>')
            for t in tests:
                outcome = r.tests.get(t, "")
                cells.append(f'<td class="{outcome}">{outcome or "–"}</td>')
        hint = (
            f"<details><summary>hint</summary><div>{esc(r.hint)}</div></details>" if r.hint else ""
        )
        cells.append(f"<td>{hint}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if tests:
        totals = ['<td colspan="4">passed by</td>']
        for t in tests:
            ran = [r for r in results if t in r.tests]
            passed_by = sum(1 for r in ran if r.tests[t] == "pass")
            totals.append(f'<td class="num">{passed_by}/{len(ran)}</td>')
        totals.append("<td></td>")
        body.append('<tr class="total">' + "".join(totals) + "</tr>")
    title = f"Feedback on {assignment.target}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{esc(title)}</h1>
<p class="meta">{len(results)} notebooks, {len(ok)} scored, {len(results) - len(ok)} with errors;
mean score {mean}. Scored against {esc(assignment.mode)}.</p>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""
    _write_atomic(path, page)
