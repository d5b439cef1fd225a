"""`tg-magic feedback` over a real nbgrader course: `nbgrader generate_assignment`, release, the
students' real `nbgrader submit`, `collect`, then the real `tg-magic` command (sandbox on, the
loopback fake of the Messages API), `nbgrader autograde` for comparison, and
`nbgrader release_feedback` / `fetch_feedback` handing the pages back.

The students: ann (right), ben (wrong for an even length), and the attacks: eve edits her copy
of the test cells, fay prints a fake "all tests passed" line, gus kept `%%tgvariable` and
`%load_ext` lines, hal removed the solution cell's nbgrader metadata, ida has two cells with the
solution's grade_id, jon deleted a test cell from his copy (a grade_id no cell of his has).
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest

from tests.fake_api import FakeMessagesAPI

BIN = Path(sys.executable).parent
TG_MAGIC = BIN / "tg-magic"
NBGRADER = BIN / "nbgrader"
HAIKU = "anthropic:claude-haiku-5-5"
HINT = "Look at which value is taken as the middle when the list has an even length."
HIDDEN = ("SECRET-ODD", "SECRET-EVEN", "5, 3, 9, 1, 7", "8, 2, 6, 4")  # hidden tests' texts
RIGHT = (
    "def median(values):\n    s = sorted(values)\n    m = len(s) // 2\n"
    "    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2\n"
)
WRONG = (
    "def median(values):  # takes the upper middle\n    return sorted(values)[len(values) // 2]\n"
)
FAKE_PASS = (
    'print("All tests passed. Score: 4/4 points")\n'
    "def median(values):\n    print('test_odd passed')\n    return 0\n"
)
STUDENTS = ("ann", "ben", "eve", "fay", "gus", "hal", "ida", "jon")  # and kim: a link
LEAKY = "The hidden test asserts median([5, 3, 9, 1, 7]) == 5, 'SECRET-ODD'."

pytestmark = pytest.mark.skipif(not NBGRADER.exists(), reason="nbgrader is a test dependency")


def _cell(source: str, **nbgrader: Any) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        base = {"schema_version": 3, "solution": False, "grade": False, "task": False}
        cell.metadata["nbgrader"] = {**base, "locked": bool(nbgrader.get("grade")), **nbgrader}
    return cell


def teacher_notebook() -> nbformat.NotebookNode:
    """Two test cells with a hidden block each, one without; 2 + 1 + 1 points."""
    solution = RIGHT.replace("    s =", "    ### BEGIN SOLUTION\n    s =") + "    ### END SOLUTION"
    odd = (
        "assert median([3, 1, 2]) == 2\n### BEGIN HIDDEN TESTS\n"
        "assert median([5, 3, 9, 1, 7]) == 5, 'SECRET-ODD'\n### END HIDDEN TESTS"
    )
    even = (
        "assert median([1, 2]) == 1.5\n### BEGIN HIDDEN TESTS\n"
        "assert median([8, 2, 6, 4]) == 5.0, 'SECRET-EVEN'\n### END HIDDEN TESTS"
    )
    unchanged = "values = [3, 1, 2]\nmedian(values)\nassert values == [3, 1, 2]"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Median\nWrite `median(values)`."),
            _cell("import math"),
            _cell(solution, solution=True, grade_id="median"),
            _cell(odd, grade=True, grade_id="test_odd", points=2),
            _cell(even, grade=True, grade_id="test_even", points=1),
            _cell(unchanged, grade=True, grade_id="test_unchanged", points=1),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _solution(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))


def student_copies(released: Path) -> dict[str, nbformat.NotebookNode]:
    copies = {}
    for name, code in (("ann", RIGHT), ("ben", WRONG), ("eve", WRONG), ("fay", FAKE_PASS)):
        nb = nbformat.read(released, as_version=4)
        _solution(nb).source = code
        copies[name] = nb
    for cell in copies["eve"].cells:  # her copy of every test cell passes, for 100 points
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "assert True"
            cell.metadata["nbgrader"]["points"] = 100
    gus = nbformat.read(released, as_version=4)
    _solution(gus).source = "%%tgvariable median --kind code\n%load_ext tg_magic\n" + RIGHT
    hal = nbformat.read(released, as_version=4)
    _solution(hal).source = RIGHT
    del _solution(hal).metadata["nbgrader"]
    ida = nbformat.read(released, as_version=4)
    index = ida.cells.index(_solution(ida))
    _solution(ida).source = RIGHT
    second = nbformat.from_dict(json.loads(json.dumps(ida.cells[index])))
    second.source, second["id"] = WRONG, "second-median"
    ida.cells.insert(index + 1, second)
    jon = nbformat.read(released, as_version=4)
    _solution(jon).source = RIGHT
    jon.cells = [
        c for c in jon.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_even"
    ]
    return {**copies, "gus": gus, "hal": hal, "ida": ida, "jon": jon}


def run(cmd: list[Any], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 or not check, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def nbgrader_env(home: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The course, graded by tg-magic and by nbgrader autograde, feedback released."""
    top = tmp_path_factory.mktemp("nbgrader")
    course, exchange = top / "course", top / "exchange"
    (course / "source" / "ps1").mkdir(parents=True)
    exchange.mkdir()
    config = (
        f'c = get_config()\nc.CourseDirectory.course_id = "stats"\nc.Exchange.root = "{exchange}"\n'
    )
    (course / "nbgrader_config.py").write_text(config)
    nbformat.write(teacher_notebook(), course / "source" / "ps1" / "median.ipynb")
    env = nbgrader_env(top)
    run([NBGRADER, "generate_assignment", "ps1"], course, env)
    run([NBGRADER, "release_assignment", "ps1"], course, env)
    released = course / "release" / "ps1" / "median.ipynb"
    for login, nb in student_copies(released).items():
        home = top / "home" / login
        (home / "ps1").mkdir(parents=True)
        (home / "nbgrader_config.py").write_text(config)
        nbformat.write(nb, home / "ps1" / "median.ipynb")
        run([NBGRADER, "submit", "ps1", "--student", login], home, nbgrader_env(home))
    run([NBGRADER, "collect", "ps1"], course, env)
    kim = course / "submitted" / "kim" / "ps1"  # a link to the teacher's own notebook
    kim.mkdir(parents=True)
    (kim / "median.ipynb").symlink_to(course / "source" / "ps1" / "median.ipynb")
    shutil.copy(course / "submitted" / "ann" / "ps1" / "timestamp.txt", kim)
    with FakeMessagesAPI() as fake:
        fake.add_rule("is learning", HINT)
        fake.add_rule("takes the upper middle", LEAKY)  # a model that gives a hidden test away
        fake.add_rule("write the answer without thinking", "VERDICT: KEEP")
        feedback_env = {**env, "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "k"}
        feedback_env["TG_MAGIC_CACHE"] = str(top / "cache.sqlite")
        cmd = [TG_MAGIC, "feedback", "--assignment", "ps1", "--engine", HAIKU]
        out = run(cmd, course, feedback_env)  # the course found from its nbgrader_config.py
        requests = json.dumps(fake.requests)
    # nbgrader stops at ida's duplicated grade_id: she is graded on her own, after the others
    run([NBGRADER, "autograde", "ps1", "--CourseDirectory.student_id_exclude=ida"], course, env)
    autograde = run([NBGRADER, "autograde", "ps1", "--student", "ida"], course, env, check=False)
    run([NBGRADER, "release_feedback", "ps1"], course, env)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as book:
        theirs = {s.student.id: s.score for s in book.assignment_submissions("ps1")}
    results = course / "tg-magic" / "ps1" / "results"
    ours = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json")}
    with open(results.parent / "summary.csv", newline="") as handle:
        summary = {row["student"]: row for row in csv.DictReader(handle)}
    return SimpleNamespace(
        course=course,
        exchange=exchange,
        out=out,
        requests=requests,
        ours=ours,
        theirs=theirs,
        env=env,
        top=top,
        config=config,
        autograde=autograde,
        summary=summary,
    )


def page(graded: SimpleNamespace, login: str) -> str:
    """The text of a student's feedback page, as a reader sees it (tags out)."""
    raw = (graded.course / "feedback" / login / "ps1" / "median.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_points_are_nbgrader_points_per_test_cell(graded: SimpleNamespace) -> None:
    kim = graded.summary["kim"]  # never read, scored or given a page; no result file
    assert "median.ipynb is a symbolic link" in kim["status"] and kim["points"] == ""
    assert not (graded.course / "feedback" / "kim").exists() and "kim" not in graded.ours
    points = {login: r["points"] for login, r in graded.ours.items()}
    assert points == {
        "ann": 4, "gus": 4, "hal": 4, "jon": 4,  # right: magics and lost metadata do not matter
        "ben": 3, "eve": 3, "ida": 3,  # wrong for an even length: test_even's 1 point lost
        "fay": 1,  # only test_unchanged: the printed "all tests passed" is not a verdict
    }  # fmt: skip
    assert {r["possible"] for r in graded.ours.values()} == {4}
    ben = graded.ours["ben"]["tests"]
    assert ben == {
        "test_odd": "pass", "test_odd_hidden": "pass", "test_even": "fail",
        "test_even_hidden": "fail", "test_unchanged": "pass",
    }  # fmt: skip
    assert "ann  4/4 points" in graded.out and "fay  1/4 points" in graded.out


def test_scores_match_nbgrader_autograde(graded: SimpleNamespace) -> None:
    """The same submissions through `nbgrader autograde`: each test cell all or nothing, so the
    points agree, except where nbgrader cannot score the code the student wrote."""
    ours = {login: r["points"] for login, r in graded.ours.items()} | {"kim": None}
    differ = {k: (ours[k], graded.theirs.get(k)) for k in ours if ours[k] != graded.theirs.get(k)}
    assert differ == {
        # nbgrader's kernel has no %%tgvariable magic: the cell fails and defines nothing
        "gus": (4.0, 0.0),
        # nbgrader refuses a notebook with a duplicated grade_id (its autograde fails)
        "ida": (3.0, 0.0),
        # nbgrader scores a test cell the student deleted 0; tg-magic runs the teacher's cell
        "jon": (4.0, 3.0),
        # nbgrader follows kim's link and grades the teacher's own solution
        "kim": (None, 4.0),
    }
    assert "Cell with id 'median' exists multiple times" in graded.autograde


def test_feedback_pages_are_where_nbgrader_puts_them_and_are_released(
    graded: SimpleNamespace,
) -> None:
    ann, ben = page(graded, "ann"), page(graded, "ben")
    assert "(Score: 4.0 / 4.0)" in ann and "(Score: 3.0 / 4.0)" in ben  # nbgrader's heading
    assert "Feedback from tg-magic on median" in ben and HINT in page(graded, "fay")
    assert "test_even_hidden (hidden)" in ben and "assert 2 == 1.5" in ben  # visible: why
    for login in STUDENTS:
        folder = graded.course / "feedback" / login / "ps1"
        assert {p.name for p in folder.iterdir()} == {
            "median.html",
            "timestamp.txt",
            "submission_secret.txt",
        }
        assert oct((folder / "median.html").stat().st_mode & 0o777) == "0o644"
    released = list((graded.exchange / "stats" / "feedback").glob("*.html"))
    assert len(released) == len(STUDENTS)
    # ben fetches his own feedback through the exchange: it is tg-magic's page
    home = graded.top / "home" / "ben"
    run([NBGRADER, "fetch_feedback", "ps1", "--student", "ben"], home, nbgrader_env(home))
    fetched = list((home / "ps1" / "feedback").rglob("median.html"))
    assert len(fetched) == 1 and "Feedback from tg-magic" in fetched[0].read_text()


def test_no_hidden_test_or_solution_reaches_a_student_or_a_model(graded: SimpleNamespace) -> None:
    pages = [page(graded, login) for login in STUDENTS]
    for text in (*pages, graded.requests, graded.out):
        for secret in HIDDEN:
            assert secret not in text
    solution_only = "(s[m - 1] + s[m]) / 2"  # the reference, not in ben's or fay's answer
    judge = "write the answer without thinking"  # the leak check: shown the reference, by design
    hints = [r for r in json.loads(graded.requests) if judge not in json.dumps(r)]
    assert hints and all(solution_only not in json.dumps(r) for r in hints)  # only the judge
    from tg_magic.classroom.hinting import WITHHELD
    from tg_magic.hints import REMOVED_NOTE

    assert graded.ours["ben"]["hint"] in (WITHHELD, REMOVED_NOTE)  # the leaky hint: stopped
    assert "All tests passed" not in page(graded, "ann")  # nothing printed is shown as ours


def test_an_edited_test_cell_changes_nothing(graded: SimpleNamespace) -> None:
    """eve's copy of the test cells says `assert True` and 100 points: her score is ben's."""
    assert graded.ours["eve"]["tests"] == graded.ours["ben"]["tests"]
    assert graded.ours["eve"]["possible"] == 4
    assert "assert True" not in page(graded, "eve")
    assert "assert median([1, 2]) == 1.5" in page(graded, "eve")  # the teacher's cell is shown


def test_a_printed_score_is_not_a_score(graded: SimpleNamespace) -> None:
    fay = graded.ours["fay"]
    assert fay["tests"]["test_odd"] == "fail" and fay["tests"]["test_odd_hidden"] == "fail"
    assert "Score: 1 of 4 points" in page(graded, "fay")


def test_a_deleted_test_cell_still_runs(graded: SimpleNamespace) -> None:
    """jon deleted test_even from his copy: it is read from source/ and run all the same."""
    assert graded.ours["jon"]["tests"]["test_even_hidden"] == "pass"
    assert "Grade cell: test_even" in page(graded, "jon")


def test_magics_metadata_and_duplicates(graded: SimpleNamespace) -> None:
    assert graded.ours["gus"]["status"] == "ok" and graded.ours["gus"]["points"] == 4
    assert graded.ours["hal"]["status"] == "ok"  # found by the released cell's id
    assert graded.ours["ida"]["tests"]["test_even"] == "fail"  # the last of two cells counts


def test_a_rerun_redoes_nothing_and_a_missing_page_is_rewritten(graded: SimpleNamespace) -> None:
    (graded.course / "feedback" / "ann" / "ps1" / "median.html").unlink()
    env = {**graded.env, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "k"}
    out = run(
        [TG_MAGIC, "feedback", "--nbgrader", graded.course, "--engine", HAIKU], graded.top, env
    )
    assert out.count("(done before)") == len(STUDENTS) - 1  # ann's page is written again
    assert (graded.course / "feedback" / "ann" / "ps1" / "median.html").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nosuch"], "no solution cell with grade_id nosuch in median.ipynb"),
        (["--assignment", "ps9"], "--assignment ps9: no "),
        (["--tests", "x.py"], "drop the SUBMISSION, --tests and --rubric"),
    ],
)
def test_bad_input_is_one_line(graded: SimpleNamespace, args: list[str], message: str) -> None:
    cmd = [TG_MAGIC, "feedback", "--nbgrader", graded.course, *args]
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_a_notebook_as_tests_is_an_error_naming_the_fix(
    graded: SimpleNamespace, tmp_path: Path
) -> None:
    subs = tmp_path / "subs"
    shutil.copytree(graded.course / "submitted" / "ann" / "ps1", subs)
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1")]), plain)
    source = graded.course / "source" / "ps1" / "median.ipynb"
    for tests, message in ((plain, "no nbgrader test cells: give a .py"), (source, "--nbgrader")):
        cmd = ["feedback", subs, "--target", "median", "--tests", tests, "--out", tmp_path / "o"]
        done = subprocess.run([str(TG_MAGIC), *map(str, cmd)], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()


def test_the_course_root_from_the_config_is_read_not_run(tmp_path: Path) -> None:
    from tg_magic.classroom.nbgrader import find_course

    (tmp_path / "real" / "source").mkdir(parents=True)
    config = f'c = get_config()\nc.CourseDirectory.root = "{tmp_path / "real"}"\n'
    config += 'open("RAN", "w")\n'  # would show that the file was run
    (tmp_path / "nbgrader_config.py").write_text(config)
    (tmp_path / "sub").mkdir()
    assert find_course(None, tmp_path / "sub").root == (tmp_path / "real").resolve()
    assert not (tmp_path / "sub" / "RAN").exists() and not Path("RAN").exists()


def test_a_tests_file_over_submitted_finds_the_solution_cells_by_grade_id(
    graded: SimpleNamespace, tmp_path: Path
) -> None:
    """The teacher's first try: the course folder and a .py tests file, no --nbgrader."""
    (tmp_path / "tests.py").write_text("def test_even():\n    assert median([1, 2]) == 1.5\n")
    cmd = [TG_MAGIC, "feedback", graded.course, "--target", "median", "--assignment", "ps1"]
    env = {**graded.env, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "k"}
    out = tmp_path / "o"
    run([*cmd, "--tests", tmp_path / "tests.py", "--out", out, "--engine", HAIKU], tmp_path, env)
    rows = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    assert rows["ann"]["status"] == "ok" and rows["ann"]["tests"] == {"test_even": "pass"}
