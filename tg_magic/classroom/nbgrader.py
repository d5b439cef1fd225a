"""nbgrader's course as `tg-magic feedback` reads it: the course folder (from the command line or
`nbgrader_config.py`, read without running it), and each teacher's notebook in `source/NAME/`
turned into the tests, the points and the reference solution.

Only the teacher's `source/` notebook is trusted for the tests: a student's copy of a test cell
can be edited, so it is never read. Each autograder test cell (`grade: true, solution: false`)
is scored as nbgrader scores it, all or nothing: its points when the whole cell runs without an
error. A cell with `### BEGIN HIDDEN TESTS` blocks becomes two tests: `test_ID`, its visible
part (0 points, shown with its failure message, so the student learns what failed), and
`test_ID_hidden`, the whole cell (hidden: its body and message are never shown; it carries the
points). The solution cells' `### BEGIN SOLUTION` parts are the reference solution, the hint's
leak check.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import pysource
from ..errors import InputError
from .submissions import code_only, read_notebook

CONFIG = "nbgrader_config.py"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
_FOLDERS = {"source": "source", "submitted": "submitted", "feedback": "feedback"}


@dataclass(frozen=True)
class Course:
    """The course folder and nbgrader's folder names in it (CourseDirectory's settings)."""

    root: Path
    folders: tuple[tuple[str, str], ...] = tuple(_FOLDERS.items())

    def folder(self, kind: str, *parts: str) -> Path:
        return self.root.joinpath(dict(self.folders)[kind], *parts)


def _settings(config: Path) -> dict[str, str]:
    """`c.CourseDirectory.X = "text"` lines of a config file, read with ast (never run)."""
    try:
        tree = ast.parse(config.read_text(encoding="utf-8"), str(config))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{config} cannot be read ({exc}): pass --nbgrader COURSE_DIR") from None
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        owner = target.value if isinstance(target, ast.Attribute) else None
        if not (isinstance(owner, ast.Attribute) and owner.attr == "CourseDirectory"):
            continue
        assert isinstance(target, ast.Attribute)
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found[target.attr] = node.value.value
        elif target.attr == "root":
            raise InputError(
                f"{config} sets c.CourseDirectory.root to an expression tg-magic does not run: "
                "pass --nbgrader COURSE_DIR"
            )
    return found


def find_config(start: Path) -> Path | None:
    """The nearest nbgrader_config.py in `start` or a folder above it."""
    for folder in (start, *start.parents):
        if (folder / CONFIG).is_file():
            return folder / CONFIG
    return None


def find_course(given: str | None, cwd: Path) -> Course:
    """The course named by --nbgrader (a folder, or its nbgrader_config.py), else the one whose
    nbgrader_config.py is in `cwd` or above; its root is `c.CourseDirectory.root` if set."""
    if given:
        path = Path(given).expanduser()
        config = path if path.is_file() else path / CONFIG
        if not path.exists():
            raise InputError(f"--nbgrader {given}: not found; give the course folder")
    else:
        found = find_config(cwd)
        if found is None:
            raise InputError(
                f"no {CONFIG} in {cwd} or above: pass --nbgrader COURSE_DIR, "
                "or run it in the course folder"
            )
        config = path = found
    settings = _settings(config) if config.is_file() else {}
    base = config.parent if config.is_file() else path
    root = Path(os.path.expanduser(settings.get("root", ""))) if settings.get("root") else base
    root = root if root.is_absolute() else base / root
    names = {kind: settings.get(f"{kind}_directory", name) for kind, name in _FOLDERS.items()}
    course = Course(root.resolve(), tuple(names.items()))
    if not course.folder("source").is_dir():
        raise InputError(f"{course.folder('source')} not found: is {root} an nbgrader course?")
    return course


def assignments(course: Course) -> list[str]:
    return sorted(p.name for p in course.folder("source").iterdir() if p.is_dir())


def _meta(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell: Any) -> bool:
    meta = _meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def is_solution_cell(cell: Any) -> bool:
    return bool(_meta(cell).get("solution")) and cell.cell_type == "code"


def grade_id(cell: Any) -> str:
    return str(_meta(cell).get("grade_id", ""))


def _blocks(source: str, begin: str, end: str) -> tuple[str, list[str]]:
    """(the text outside begin/end blocks, the blocks' insides)."""
    outside: list[str] = []
    inside: list[list[str]] = []
    into: list[str] | None = None
    for line in source.splitlines():
        if begin in line:
            into = []
            inside.append(into)
        elif end in line and into is not None:
            into = None
        elif into is not None:
            into.append(line)
        else:
            outside.append(line)
    return "\n".join(outside), ["\n".join(block) for block in inside]


def without_hidden(source: str) -> str:
    """A test cell as nbgrader releases it: no hidden tests."""
    return _blocks(source, BEGIN_HIDDEN, END_HIDDEN)[0]


def _function(name: str, mark: str, body: str) -> str:
    code = code_only(body).strip("\n")
    lines = [("    " + line) if line.strip() else "" for line in code.splitlines()]
    return f"# {mark}\ndef {name}():\n" + ("\n".join(lines) if code.strip() else "    pass") + "\n"


def _names_used(code: str) -> set[str]:
    try:
        tree = pysource.parse(code_only(code))
    except (SyntaxError, ValueError):
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _names_defined(code: str) -> set[str]:
    try:
        tree = pysource.parse(code_only(code))
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    names.add(target.id)
    return names


@dataclass(frozen=True)
class TestCell:
    __test__ = False  # not a pytest class

    grade_id: str
    points: float
    visible: str  # the cell as released (hidden blocks out)
    hidden: bool  # whether it has hidden blocks
    names: tuple[str, str]  # (visible test, hidden test); "" when there is none


@dataclass(frozen=True)
class SourceNotebook:
    """One notebook of `source/NAME/`, read once: what every student's copy is scored against."""

    name: str  # the file name without .ipynb (nbgrader's notebook id)
    cells: tuple[tuple[str, str, str], ...]  # (kind: setup|solution|test|other, grade_id, text)
    tests: tuple[TestCell, ...]
    answers: tuple[str, ...]  # the solution cells scored (grade ids, in order)
    solutions: tuple[str, ...]  # every code solution cell that the answers need (grade ids)
    tests_text: str  # the tests as tg-magic's tests file (markers for hidden and points)
    reference: str  # the teacher's solution code (never shown)
    release: Any  # the notebook as released (no solutions, no hidden tests): the HTML's frame

    @property
    def target(self) -> str:
        return ", ".join(self.answers)


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name.isidentifier() else "_" + name


def _test_cell(cell: Any) -> tuple[TestCell, str]:
    gid, points = grade_id(cell), float(_meta(cell).get("points") or 0)
    visible, hidden = _blocks(cell.source, BEGIN_HIDDEN, END_HIDDEN)
    base = "test_" + _identifier(gid).removeprefix("test_")
    whole = "\n".join(line for line in cell.source.splitlines() if not _marker(line))
    if not hidden:
        return TestCell(gid, points, visible, False, (base, "")), _function(
            base, f"{points:g} points", visible
        )
    text = _function(base, "0 points", visible) if visible.strip() else ""
    hidden_name = base + "_hidden"
    text += "\n\n" + _function(hidden_name, f"hidden, {points:g} points", whole)
    shown = base if visible.strip() else ""
    return TestCell(gid, points, visible, True, (shown, hidden_name)), text


def _marker(line: str) -> bool:
    return BEGIN_HIDDEN in line or END_HIDDEN in line


def read_source(path: Path, target: str | None = None) -> SourceNotebook:
    """The tests, answers and reference of a teacher's notebook (`source/NAME/X.ipynb`, or any
    notebook with nbgrader's cells); InputError, naming the fix, when it has no test cells."""
    nb = read_notebook(path.read_bytes())
    cells: list[tuple[str, str, str]] = []
    tests: list[TestCell] = []
    texts: list[str] = []
    defines: dict[str, set[str]] = {}
    uses: dict[str, set[str]] = {}
    references: list[str] = []
    for cell in nb.cells:
        if is_test_cell(cell):
            test, text = _test_cell(cell)
            tests.append(test)
            texts.append(text)
            cells.append(("test", test.grade_id, test.visible))
        elif is_solution_cell(cell):
            gid = grade_id(cell)
            outside, inside = _blocks(cell.source, BEGIN_SOLUTION, END_SOLUTION)
            references += inside or [cell.source]
            defines[gid] = _names_defined(cell.source)
            uses[gid] = _names_used(cell.source)
            cells.append(("solution", gid, outside))
        elif cell.cell_type == "code" and not _meta(cell):
            cells.append(("setup", "", cell.source))
        else:
            cells.append(("other", grade_id(cell), cell.source))
    if not tests:
        raise InputError(
            f"{path} has no nbgrader test cells (cells with nbgrader metadata grade: true, "
            "solution: false): give the teacher's source/ notebook (--nbgrader COURSE_DIR "
            "--assignment NAME) or a .py tests file"
        )
    names = _names_used("\n".join(t.visible for t in tests))
    names |= set().union(*[_names_used(t) for t in texts])
    exercised = [g for g in defines if defines[g] & names]
    if target:
        if target not in defines:
            raise InputError(
                f"--target {target}: no solution cell with grade_id {target} in {path.name} "
                f"(it has {', '.join(defines) or 'none'})"
            )
        exercised = [target]
        tests, texts = _tests_of(target, defines, tests, texts)
    needed = _closure(exercised, defines, uses)
    return SourceNotebook(
        path.stem,
        tuple(cells),
        tuple(tests),
        tuple(exercised),
        tuple(g for g in defines if g in needed),
        "\n\n".join(texts),
        "\n\n".join(references),
        _released(nb),
    )


def _tests_of(
    target: str, defines: dict[str, set[str]], tests: list[TestCell], texts: list[str]
) -> tuple[list[TestCell], list[str]]:
    kept = [(t, x) for t, x in zip(tests, texts, strict=True) if _names_used(x) & defines[target]]
    if not kept:
        raise InputError(f"--target {target}: no test cell uses what that solution cell defines")
    return [t for t, _ in kept], [x for _, x in kept]


def _closure(start: list[str], defines: dict[str, set[str]], uses: dict[str, set[str]]) -> set[str]:
    """The solution cells `start` needs: those defining a name they (transitively) use."""
    needed, todo = set(start), list(start)
    while todo:
        gid = todo.pop()
        for other, names in defines.items():
            if other not in needed and names & uses[gid]:
                needed.add(other)
                todo.append(other)
    return needed


def _released(nb: Any) -> Any:
    """The notebook as nbgrader releases it: solutions and hidden tests out, outputs cleared."""
    for cell in nb.cells:
        if is_test_cell(cell):
            cell.source = without_hidden(cell.source)
        elif is_solution_cell(cell):
            cell.source = _blocks(cell.source, BEGIN_SOLUTION, END_SOLUTION)[0]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb
