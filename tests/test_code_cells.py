"""Several code cells under one tests cell (`%%tgloss NAME --tests --target a,b`), and runs that
end when nothing is left to gain, through the real SDK against the loopback fake."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI, request_text
from tests.test_notebook import BUGGY_ADD, FIXED_ADD, define_add, fix_add, write_data
from tg_magic import objectives
from tg_magic.notebook.widgets import CandidateView

# A parser and the function that uses it: each has its own bug, and only both fixes together
# pass every test (parse alone: 2 of 3; total alone: 1 of 3, as with neither).
PARSE_BUGGY = "def parse(text):\n    return [int(x) for x in text.split(';')]\n"
PARSE_FIXED = "def parse(text):\n    return [int(x) for x in text.split(',')]\n"
PARSE_OTHER = "def parse(text):\n    return [int(x) for x in text.split(',') if x.strip()]\n"
TOTAL_BUGGY = "def total(text):\n    return max(parse(text))\n"
TOTAL_FIXED = "def total(text):\n    return sum(parse(text))\n"
TOTAL_OTHER = "def total(text):\n    return len(parse(text))\n"
TESTS = (
    "def test_parse():\n    assert parse('1,2,3') == [1, 2, 3]\n\n"
    "def test_total():\n    assert total('1,2,3') == 6\n\n"
    "def test_single():\n    assert total('4') == 4\n"
)
PARSE_BUG = "PARSE_BUG: parse splits on ';' but the numbers are separated by commas"
TOTAL_BUG = "TOTAL_BUG: total returns the largest number; it must add them all up"
NOTHING = "NO_BUG: this code is right as it is"
GRADIENT = "The variable to give feedback on"


def _block(text: str, tag: str) -> str:
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return found[-1].strip("\n") if found else ""


def _gradient(value: str) -> str:
    """Each cell's gradient names its own bug (and nothing once the bug is gone)."""
    if "def parse" in value:
        return PARSE_BUG if "split(';')" in value else NOTHING
    if "def total" in value:
        return TOTAL_BUG if "max(" in value else NOTHING
    return NOTHING


def _improved(value: str, feedback: str, past: list[str]) -> str:
    """Each cell's fix, when its feedback asks for it; a retry shown the fix as a past value
    proposes another version (right for parse, wrong for total)."""
    if "def parse" in value and PARSE_BUG in feedback:
        return PARSE_OTHER if any("split(',')" in p for p in past) else PARSE_FIXED
    if "def total" in value and TOTAL_BUG in feedback:
        return TOTAL_OTHER if any("sum(" in p for p in past) else TOTAL_FIXED
    return value


def two_cells_model(fake: FakeMessagesAPI) -> None:
    def reply(body: dict[str, Any], text: str) -> str:
        if "<IMPROVED_VARIABLE>" in text:
            value = text.split("<VARIABLE>", 1)[1].split("</VARIABLE>", 1)[0].strip("\n")
            feedback = " ".join(re.findall(r"<FEEDBACK>(.*?)</FEEDBACK>", text, re.DOTALL))
            past = re.findall(r"<PAST_VALUE>(.*?)</PAST_VALUE>", text, re.DOTALL)
            new = _improved(value, feedback, past)
            return f"<IMPROVED_VARIABLE>\n{new}</IMPROVED_VARIABLE>"
        if GRADIENT in text:
            return _gradient(_block(text, "VARIABLE"))
        return "I cannot tell."

    fake.add_rule(re.compile(r"[\s\S]"), reply)


def session_of(cells: Cells) -> Any:
    return cells.shell.magics_manager.registry["TgMagics"].session


def magics_views(cells: Cells) -> list[Any]:
    """The widgets shown lately, newest last."""
    return list(cells.shell.magics_manager.registry["TgMagics"].display.views)


def value_of(cells: Cells, name: str) -> str:
    """What the variable holds now (the kernel's name is the function the cell defined)."""
    return str(session_of(cells).variables[name].variable.value).strip("\n")


def define_two(cells: Cells, ids: tuple[str, str, str] = ("c-parse", "c-total", "c-tests")) -> str:
    cells.run(f"%%tgvariable parse --kind code\n{PARSE_BUGGY}", ids[0])
    assert cells.error is None
    cells.run(f"%%tgvariable total --kind code\n{TOTAL_BUGGY}", ids[1])
    assert cells.error is None
    shown = cells.run(f"%%tgloss sums --tests --target parse,total\n{TESTS}", ids[2])
    assert cells.error is None, shown
    return shown


def texts(fake: FakeMessagesAPI) -> list[str]:
    return [request_text(r["body"]) for r in fake.requests if isinstance(r["body"], dict)]


def gradient_requests(fake: FakeMessagesAPI, marker: str) -> list[str]:
    return [t for t in texts(fake) if GRADIENT in t and marker in _block(t, "VARIABLE")]


# -- A: several code cells under one tests cell ----------------------------------------------


def test_only_a_change_to_both_cells_passes_every_test(cells: Cells) -> None:
    define_two(cells)
    loss = session_of(cells).losses["sums"]
    variables = [session_of(cells).variables[t].variable for t in ("parse", "total")]
    scores = {
        (p, t): objectives.tests_on(loss.spec, variables, [p, t]).score
        for p in (PARSE_BUGGY, PARSE_FIXED)
        for t in (TOTAL_BUGGY, TOTAL_FIXED)
    }
    assert scores == {
        (PARSE_BUGGY, TOTAL_BUGGY): pytest.approx(1 / 3),
        (PARSE_FIXED, TOTAL_BUGGY): pytest.approx(2 / 3),
        (PARSE_BUGGY, TOTAL_FIXED): pytest.approx(1 / 3),
        (PARSE_FIXED, TOTAL_FIXED): 1.0,
    }
    assert [v.value for v in variables] == [PARSE_BUGGY.strip("\n"), TOTAL_BUGGY.strip("\n")]


def test_one_step_fixes_two_code_cells_together(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    shown = define_two(cells)
    assert "sums: tests loss on parse, total" in shown
    assert "tests run in a child process" in shown
    two_cells_model(fake_api)

    shown = cells.run("%tgforward sums")
    assert cells.error is None, shown
    assert "1 of 3 tests pass" in shown and "(score 0.333)" in shown
    assert "✓ test_single" in shown
    assert re.search(r"✗ test_parse: .*ValueError", shown), shown
    assert re.search(r"✗ test_total: .*ValueError", shown), shown
    assert fake_api.calls == 0  # the tests ran; no model was asked

    shown = cells.run("%tgoptimize sums --steps 3")
    assert cells.error is None, shown
    assert "step 1/3" in shown and "step 2/3" not in shown
    assert "tests: 3 of 3 tests pass" in shown
    assert "done after 1 step(s): every test passes; nothing left to gain" in shown
    assert "+    return [int(x) for x in text.split(',')]" in shown
    assert "+    return sum(parse(text))" in shown
    assert "parse, total changed: accept them all with %tgaccept --all" in shown
    assert value_of(cells, "parse") == PARSE_FIXED.strip("\n")
    assert value_of(cells, "total") == TOTAL_FIXED.strip("\n")

    # Each cell got its own gradient, asked with the tests' failure report quoted.
    for marker, bug in (("def parse", PARSE_BUG), ("def total", TOTAL_BUG)):
        (asked,) = gradient_requests(fake_api, marker)
        report = _block(asked, "OUTPUT")
        assert report.startswith("1 of 3 tests passed (score 0.33).")
        assert "test_parse" in report and "test_total" in report
        assert "ValueError" in report
        # ...and both cells are shown, as the tests ran them together.
        call = _block(asked, "CALL")
        assert "def parse" in call and "def total" in call
        (updated,) = [
            t
            for t in texts(fake_api)
            if "<IMPROVED_VARIABLE>" in t and marker in _block(t, "VARIABLE")
        ]
        assert bug in updated
    # Two gradients and two updates: the run made no call after step 1.
    assert fake_api.calls == 4
    graph = cells.run("%tggraph")
    assert "parse --> sums" in graph and "total --> sums" in graph

    for name in ("parse", "total"):
        history = cells.run(f"%tghistory {name}")
        assert re.search(
            r"1\s+step 1\s+candidate\s+score before 0\.333\s+score after 1\.000", history
        ), history
        assert "3 of 3 tests pass" in history
        # The original row: the tests as they ran on both originals, test by test.
        assert re.search(r"0\s+original .* 1 of 3 tests pass", history), history
        assert re.search(r"✗ test_total: .*ValueError", history), history

    shown = cells.run("%tgaccept --all")
    assert cells.error is None, shown
    assert "parse: accepted #1" in shown and "total: accepted #1" in shown
    assert cells.ns["total"]("1,2,3") == 6 and cells.ns["parse"]("4") == [4]
    # A terminal has no cell to edit: each new cell is shown to paste, and the cells are
    # known to hold the old text until they run again (the file case is the next test).
    assert shown.count("replace the cell of") == 2
    variables = session_of(cells).variables
    assert variables["parse"].kernel_value == PARSE_FIXED.strip("\n")
    assert variables["total"].kernel_value == TOTAL_FIXED.strip("\n")
    shown = cells.run("%tgoptimize --steps 2")
    assert shown.strip() == (
        "sums: 3 of 3 tests pass (score 1.000): nothing to optimize, no model call made"
    )
    assert fake_api.calls == 4


def test_accept_all_writes_both_cells_of_the_notebook_file(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    path = tmp_path / "sums.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext tg_magic"),
        nbformat.v4.new_code_cell(f"%%tgvariable parse --kind code\n{PARSE_BUGGY}"),
        nbformat.v4.new_code_cell(f"%%tgvariable total --kind code\n{TOTAL_BUGGY}"),
        nbformat.v4.new_code_cell(f"%%tgloss sums --tests --target parse,total\n{TESTS}"),
    ]
    nbformat.write(nb, path)
    cells.run(f"%tgconfig --notebook {path}")
    define_two(cells, ids=(nb.cells[1].id, nb.cells[2].id, nb.cells[3].id))
    two_cells_model(fake_api)
    cells.run("%tgoptimize --steps 1")
    assert cells.error is None
    shown = cells.run("%tgaccept --all")
    assert "wrote parse into sums.ipynb" in shown and "wrote total into sums.ipynb" in shown
    saved = nbformat.read(path, as_version=4).cells
    assert saved[1].source.rstrip() == f"%%tgvariable parse --kind code\n{PARSE_FIXED}".rstrip()
    assert saved[2].source.rstrip() == f"%%tgvariable total --kind code\n{TOTAL_FIXED}".rstrip()
    assert cells.ns["total"]("1,2,3") == 6


def test_k_candidates_of_two_code_cells_are_scored_test_by_test(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells.run('%config TgMagics.widgets = "on"')
    define_two(cells)
    two_cells_model(fake_api)
    shown = cells.run("%tgoptimize sums --steps 1 --candidates 2")
    assert cells.error is None, shown
    session = session_of(cells)
    assert value_of(cells, "parse") == PARSE_FIXED.strip("\n")
    assert value_of(cells, "total") == TOTAL_FIXED.strip("\n")
    for name, fixed, other in (
        ("parse", PARSE_FIXED, PARSE_OTHER),
        ("total", TOTAL_FIXED, TOTAL_OTHER),
    ):
        rows = session.step_candidates[name]
        at = 0 if name == "parse" else 1
        scored = {row.candidate.values[at].strip("\n"): row for row in rows}
        assert set(scored) == {fixed.strip("\n"), other.strip("\n")}, scored
        assert scored[fixed.strip("\n")].candidate.score == 1.0
        assert scored[other.strip("\n")].candidate.score == pytest.approx(1 / 3)
        assert scored[fixed.strip("\n")].candidate.chosen
        assert [len(r.candidate.per_example) for r in rows] == [3, 3]  # one score a test
        view = next(
            v for v in magics_views(cells) if isinstance(v, CandidateView) and v.name == name
        )
        text = view.text()
        assert "2 candidates of the last step" in text, text
        assert "tests: 3 of 3 tests pass" in text and "  ✓ test_total" in text, text
        assert re.search(r"#\d+ · 0\.333 · retry 1 · .* · alternative", text), text
        assert re.search(r"#\d+ · 1\.000 · all feedback · .* · candidate \(kept\)", text), text
        history = cells.run(f"%tghistory {name}")
        assert re.search(
            r"alternative\s+score before 0\.333\s+score after 0\.333\s+1 of 3 tests pass", history
        ), history
        assert re.search(
            r"candidate\s+score before 0\.333\s+score after 1\.000\s+3 of 3 tests pass", history
        ), history


def test_the_widget_shows_the_tests_of_an_alternative_of_two_cells(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells.run('%config TgMagics.widgets = "on"')
    define_two(cells)
    two_cells_model(fake_api)
    cells.run("%tgoptimize sums --steps 1 --candidates 2")
    view = next(v for v in magics_views(cells) if isinstance(v, CandidateView))
    alternative = next(
        r for r in session_of(cells).step_candidates[view.name] if not r.candidate.chosen
    )
    view.show(alternative.n)  # the candidate table's Show
    assert "tests: 1 of 3 tests pass" in view.text(), view.text()


def test_forward_shows_the_tests_of_two_cells_once(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    define_two(cells)
    shown = cells.run("%tgforward sums")
    assert cells.error is None, shown
    assert shown.count("✓ test_single") == 1, shown


def test_several_targets_bad_input_is_one_line(cells: Cells, tmp_path: Path) -> None:
    write_data(tmp_path / "counting.jsonl")
    cells.run("%%tgvariable a --kind text\nThe capital of Australia is Sydney.")
    cells.run("%%tgvariable b --kind text\nThe capital of Canada is Toronto.")
    cells.run("%%tgvariable p --kind prompt\nYou count objects.")
    cells.run("%%tgvariable q --kind prompt\nYou count carefully.")
    define_two(cells)
    for source in (
        "%%tgloss j --target a,b --judge\nIs it right?",
        "%%tgloss j --target a,b\nIs it right?",
        "%tgloss d --target p,q --data counting.jsonl --metric number",
    ):
        shown = cells.fails(source, "trains one variable, not 2: give one --target")
        assert len(shown.strip().splitlines()) == 1, shown
    shown = cells.fails(
        f"%%tgloss t --tests --target parse,nobody\n{TESTS}", "unknown variable nobody"
    )
    assert len(shown.strip().splitlines()) == 1, shown
    assert "j" not in session_of(cells).losses and "t" not in session_of(cells).losses


def test_a_variable_named_twice_in_the_targets_is_one_line(cells: Cells) -> None:
    define_two(cells)
    cells.fails(f"%%tgloss t --tests --target parse,parse\n{TESTS}", "names parse twice")


# -- B: a run ends when nothing is left to gain ----------------------------------------------


def test_a_code_cell_fixed_in_step_one_ends_the_run(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define_add(cells)
    fix_add(fake_api)
    shown = cells.run("%tgoptimize --steps 3")
    assert cells.error is None, shown
    assert "step 1/3" in shown and "step 2/3" not in shown
    ends = [line for line in shown.splitlines() if "nothing left to gain" in line]
    assert ends == ["done after 1 step(s): every test passes; nothing left to gain"]
    assert fake_api.calls == 2  # step 1's gradient and update; nothing after
    assert value_of(cells, "add") == FIXED_ADD.strip("\n")
    assert session_of(cells).variables["add"].cell_value == BUGGY_ADD.strip("\n")


def test_a_prompt_at_the_metrics_maximum_ends_the_run(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    write_data(tmp_path / "counting.jsonl")
    cells.run("%tgconfig --cache off")  # every call of each run reaches the fake
    cells.run("%%tgvariable system --kind prompt\nYou count objects.", "c-system")
    cells.run("%tgloss acc --target system --data counting.jsonl --metric number")
    shown = cells.run("%tgoptimize acc --steps 1 --batch 3 --val-frac 0.3")
    assert cells.error is None, shown
    assert "validation 0.667 → 1.000" in shown, shown
    one_step = fake_api.calls
    cells.run("%%tgvariable system --kind prompt\nYou count objects.", "c-system")  # back
    assert cells.ns["system"].value == "You count objects."
    shown = cells.run("%tgoptimize acc --steps 3 --batch 3 --val-frac 0.3")
    assert cells.error is None, shown
    assert "step 2/3" not in shown
    ends = [line for line in shown.splitlines() if "nothing left to gain" in line]
    assert ends == [
        "done after 1 step(s): the validation score reached 1.0, the metric's maximum; "
        "nothing left to gain"
    ], shown
    assert fake_api.calls == 2 * one_step  # the same calls as a one-step run: none after it
    assert "Think step by step" in cells.ns["system"].value


def test_a_run_that_ends_with_nothing_left_shows_a_complete_bar(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    from tg_magic.notebook.progress import ProgressView

    cells.run('%config TgMagics.widgets = "on"')
    define_add(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 3")
    views = cells.shell.magics_manager.registry["TgMagics"].display.views
    [progress] = [v for v in views if isinstance(v, ProgressView)]
    assert "nothing left to gain" in progress.label.value
    assert progress.bar.bar_style == "success" and progress.bar.value == 3
