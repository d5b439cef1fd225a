"""A student's nbgrader notebook: its answer (the solution cells, found by grade_id), and the
feedback written where nbgrader's students read it, `feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html`.

Why the HTML is written here and not by `nbgrader generate_feedback`: generate_feedback renders
the grades that `nbgrader autograde` stored in nbgrader's database, so our scores would have to
be written into its tables. `nbgrader release_feedback` needs none of that: it hands back every
`feedback/STUDENT/ASSIGNMENT/*.html` next to that submission's `timestamp.txt` and
`submission_secret.txt`. So the page is rendered with nbgrader's own feedback template (the
scores on nbgrader's points, per test cell) and those two files are copied from `submitted/`.

The page is the released notebook (never the student's copy of a test cell) with the student's
solution cells in it, outputs cleared, and the results and the hint after the last answer.
"""

from __future__ import annotations

import copy
import html
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import InputError
from .nbgrader import SourceNotebook, grade_id, is_solution_cell
from .results import Result, write_atomic
from .submissions import BrokenSubmission, NotInFolder, Submission, code_only, read_submission

_FILES = ("timestamp.txt", "submission_secret.txt")  # what release_feedback reads
_exporter: Any = None
_lock, _rendering = threading.Lock(), threading.Lock()


def template_dirs() -> tuple[str, str]:
    """nbgrader's feedback template and its CSS, found without importing nbgrader."""
    spec = importlib.util.find_spec("nbgrader")
    nbconvert = importlib.util.find_spec("nbconvert")
    if spec is None or not spec.submodule_search_locations or nbconvert is None:
        raise InputError("the feedback pages use nbgrader's own template: pip install nbgrader")
    base = Path(next(iter(spec.submodule_search_locations))) / "server_extensions" / "formgrader"
    css = base / "static" / "node_modules" / "bootstrap" / "dist" / "css"
    return str(base / "templates"), str(css)


def load_exporter() -> Any:
    """nbconvert's exporter with nbgrader's feedback template, made once (it takes a second)."""
    global _exporter
    with _lock:
        if _exporter is None:
            from nbconvert import HTMLExporter
            from traitlets.config import Config

            templates, css = template_dirs()
            config = Config()
            config.HTMLExporter.template_name = "feedback"
            config.HTMLExporter.extra_template_basedirs = [templates]
            config.HTMLExporter.extra_template_paths = [css]
            _exporter = HTMLExporter(config=config)
        return _exporter


def _solution_cells(nb: Any, source: SourceNotebook) -> dict[str, str]:
    """grade_id -> the student's cell text. The last of duplicated ids counts (as nbgrader's
    DeduplicateIds keeps it); a cell whose metadata was removed is found by the released cell's
    id, which a student's copy keeps."""
    found: dict[str, str] = {}
    for cell in nb.cells:
        if is_solution_cell(cell):
            found[grade_id(cell)] = cell.source
    ids = {c.get("id"): grade_id(c) for c in source.release.cells if is_solution_cell(c)}
    for cell in nb.cells:
        gid = ids.get(cell.get("id"))
        if gid and gid not in found and cell.cell_type == "code":
            found[gid] = cell.source
    return found


def answer(nb: Any, source: SourceNotebook) -> tuple[str, str]:
    """(the answer the hint is about, the code the tests run against): the teacher's setup cells
    and the solution cells the answers need, IPython's magics taken out."""
    cells = _solution_cells(nb, source)
    missing = [g for g in source.solutions if g not in cells]
    if missing:
        raise BrokenSubmission(
            f"no solution cell {', '.join(missing)}: the notebook has no cell with that nbgrader "
            "grade_id (copy the cell back from the released notebook)"
        )
    run = []
    for kind, gid, text in source.cells:
        if kind == "setup":
            run.append(code_only(text))
        elif kind == "solution" and gid in source.solutions:
            run.append(code_only(cells[gid]))
    shown = "\n\n".join(code_only(cells[g]).strip("\n") for g in source.answers)
    return shown, "\n\n".join(run) + "\n"


def cell_points(source: SourceNotebook, result: Result) -> dict[str, float]:
    """grade_id -> points earned: all of a cell's points when its whole cell passed (nbgrader's
    rule: a test cell scores when it runs without an error), else 0."""
    earned = {}
    for test in source.tests:
        name = test.names[1] or test.names[0]
        passed = result.ok and result.tests.get(name) == "pass"
        earned[test.grade_id] = test.points if passed else 0.0
    return earned


def _markdown(source: SourceNotebook, result: Result) -> str:
    """The results and the hint, as Markdown with every text from a run or a model escaped."""
    esc = html.escape
    lines = [f"### Feedback from tg-magic on {esc(source.target)}", ""]
    if not result.ok:
        lines += [f"**Could not be scored:** {esc(result.status.removeprefix('error: '))}", ""]
    if result.possible:
        lines += [f"**Score: {result.points or 0:g} of {result.possible:g} points**", ""]
    if result.tests:
        lines += ["| test | result |", "|---|---|"]
        for name, outcome in result.tests.items():
            why = result.failures.get(name, "")
            shown = "passed" if outcome == "pass" else "failed" + (f": {esc(why)}" if why else "")
            label = f"{esc(name)} (hidden)" if name in result.hidden else esc(name)
            lines.append(f"| {label} | {shown.replace('|', '&#124;')} |")
        lines.append("")
    if result.problem:
        lines += [f"**Problem:** {esc(result.problem)}", ""]
    if result.hint:
        lines += ["**Hint.** " + esc(result.hint), ""]
    lines.append("*A hidden test runs the whole test cell; it carries the cell's points.*")
    return "\n".join(lines)


def page(nb: Any, source: SourceNotebook, result: Result) -> str:
    """The feedback page: the released notebook with the student's answers and the results."""
    import nbformat

    frame = copy.deepcopy(source.release)
    answers = _solution_cells(nb, source)
    earned = cell_points(source, result)
    last = 0
    for index, cell in enumerate(frame.cells):
        meta = cell.metadata.get("nbgrader")
        if not isinstance(meta, dict):
            continue
        gid = meta.get("grade_id", "")
        if is_solution_cell(cell):
            cell.source = answers.get(gid, cell.source)
            meta["comment"] = ""
            last = index if gid in source.answers else last
        if meta.get("grade"):
            meta["score"] = earned.get(gid, 0.0)
            meta.setdefault("points", 0.0)
    note = nbformat.v4.new_markdown_cell(_markdown(source, result))
    if frame.cells and "id" not in frame.cells[0]:
        del note["id"]  # an nbformat 4.4 notebook has no cell ids
    frame.cells.insert(last + 1, note)
    resources = {
        "nbgrader": {
            "notebook": source.name,
            "score": sum(earned.values()),
            "max_score": sum(t.points for t in source.tests),
            "late_penalty": 0,
        }
    }
    exporter = load_exporter()
    with _rendering:  # one exporter, its preprocessors keep state: one page at a time
        body, _ = exporter.from_notebook_node(frame, resources=resources)
    return str(body)


def write(nb: Any, source: SourceNotebook, result: Result, sub: Submission, feedback: Path) -> Path:
    """feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html (0644, as nbgrader writes it, so the copy that
    release_feedback puts in the exchange is readable by the student) and the two files
    release_feedback reads, copied from the submission's folder."""
    target = feedback / f"{source.name}.html"
    write_atomic(target, page(nb, source, result))
    os.chmod(target, 0o644)
    missing = []
    for name in _FILES:
        sibling = Submission(sub.path.with_name(name), sub.root, (*sub.parts[:-1], name))
        try:
            data = read_submission(sibling)[:4096].decode("utf-8", "replace")
        except (OSError, NotInFolder):
            missing.append(name)
            continue
        write_atomic(feedback / name, data)
        os.chmod(feedback / name, 0o644)
    if missing:
        result.problem = (result.problem + "; " if result.problem else "") + (
            f"no {' or '.join(missing)} in the submission's folder: nbgrader release_feedback "
            "needs them (collect with nbgrader collect)"
        )
    return target
