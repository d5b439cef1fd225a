"""The magics through IPython's InteractiveShell, with cell ids supplied as JupyterLab does."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI, default_reply

FIXED_ADD = "def add(a, b):\n    return a + b\n"
BUGGY_ADD = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(1, 2) == 3\nassert add(0, 0) == 0\n"


def fix_add(fake: FakeMessagesAPI) -> None:
    fake.add_rule("<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{FIXED_ADD}</IMPROVED_VARIABLE>")


def never_fixed(fake: FakeMessagesAPI) -> None:
    """The optimizer proposes a new add each step that passes one test of two, never both, so a
    run has something left to gain and goes on for all its steps."""
    steps = iter(range(1000))

    def propose(body: dict[str, Any], text: str) -> str:
        code = f"def add(a, b):\n    return a * b + 1  # try {next(steps)}\n"
        return f"<IMPROVED_VARIABLE>\n{code}</IMPROVED_VARIABLE>"

    fake.add_rule("<IMPROVED_VARIABLE>", propose)


def interrupt_after_first_step(fake: FakeMessagesAPI) -> None:
    """Press Ctrl-C (SIGINT to this process) as the first request after step 1's reply arrives:
    driven by the run's own progress, not by a timer. Step 1 passes one test of two, so the run
    would go on."""
    stepped, pressed = threading.Event(), threading.Event()

    def reply(body: dict[str, Any], text: str) -> str:
        if stepped.is_set() and not pressed.is_set():
            pressed.set()
            os.kill(os.getpid(), signal.SIGINT)
        if "<IMPROVED_VARIABLE>" in text:
            stepped.set()
            return "<IMPROVED_VARIABLE>\ndef add(a, b):\n    return a * b + 1\n</IMPROVED_VARIABLE>"
        return default_reply(body, text)

    fake.add_rule(re.compile(""), reply)


def define_add(cells: Cells, ids: tuple[str, str] = ("cell-add", "cell-tests")) -> None:
    cells.run(f"%%tgvariable add --kind code\n{BUGGY_ADD}", ids[0])
    cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", ids[1])


def test_load_ext_imports_no_sdk() -> None:
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell as S;"
        "S.instance().run_line_magic('load_ext', 'tg_magic');"
        "print([m for m in sys.modules if m.split('.')[0] in ('anthropic','openai','llama_cpp')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_variable_cell_is_a_node_keyed_by_cell_id(cells: Cells) -> None:
    cells.run("%%tgvariable greeting --role 'opening line of a letter'\nHello there.", "c1")
    var = cells.ns["greeting"]
    assert var.value.strip() == "Hello there."
    assert var.role_description == "opening line of a letter"
    cells.run("%%tgvariable greeting\nDear reader,", "c1")  # edited and re-run: same node
    session = cells.shell.magics_manager.registry["TgMagics"].session
    assert list(session.variables) == ["greeting"]
    assert cells.ns["greeting"].value.strip() == "Dear reader,"
    cells.run("%%tgvariable opening\nDear reader,", "c1")  # renamed in the same cell
    assert list(session.variables) == ["opening"]


def test_code_variable_also_runs_in_the_kernel(cells: Cells) -> None:
    cells.run(f"%%tgvariable add --kind code\n{BUGGY_ADD}")
    assert cells.ns["add"] is not None
    cells.run("x = add(5, 3)")
    assert cells.ns["x"] == 2


def test_code_optimized_against_tests(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    define_add(cells)
    fix_add(fake_api)
    shown = cells.run("%tgoptimize add_tests --steps 1")
    assert cells.error is None
    assert "step 1/1" in shown and "+    return a + b" in shown
    # The step's test run is real: the candidate passes every test.
    assert re.search(
        r"1\s+candidate\s+score before 0\.500\s+score after 1\.000", cells.run("%tghistory add")
    )
    gradient_request = next(
        r["body"]["messages"][0]["content"]
        for r in fake_api.requests
        if "<IMPROVED_VARIABLE>" not in r["body"]["messages"][0]["content"]
    )
    assert "assert add(1, 2) == 3" in gradient_request and "1 of 2" in gradient_request


def add_notebook(path: Path) -> nbformat.NotebookNode:
    """A notebook file with the buggy `add` cell and its test cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext tg_magic"),
        nbformat.v4.new_code_cell(f"%%tgvariable add --kind code\n{BUGGY_ADD}"),
        nbformat.v4.new_code_cell(f"%%tgloss add_tests --target add --tests\n{TESTS}"),
    ]
    nbformat.write(nb, path)
    return nb


def open_add_notebook(cells: Cells, path: Path) -> None:
    """The add notebook written to `path`, taken as the kernel's notebook, its cells run."""
    nb = add_notebook(path)
    cells.run(f"%tgconfig --notebook {path}")
    define_add(cells, ids=(nb.cells[1].id, nb.cells[2].id))


def test_accept_writes_the_notebook_file_keeping_the_magic_line(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    path = tmp_path / "work.ipynb"
    open_add_notebook(cells, path)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    shown = cells.run("%tgaccept add")
    assert "wrote add into work.ipynb" in shown
    saved = nbformat.read(path, as_version=4).cells[1].source
    assert saved.rstrip() == f"%%tgvariable add --kind code\n{FIXED_ADD}".rstrip()
    session = cells.shell.magics_manager.registry["TgMagics"].session
    assert session.variables["add"].variable.value.rstrip() == FIXED_ADD.rstrip()
    # Revert to the original: the file gets the bug back.
    cells.run("%tgrevert add")
    assert nbformat.read(path, as_version=4).cells[1].source.endswith("return a - b")


def test_accept_without_a_notebook_file_shows_the_new_cell(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define_add(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    shown = cells.run("%tgaccept add")
    assert "the cell was not edited" in shown
    assert f"%%tgvariable add --kind code\n{FIXED_ADD}".rstrip() in shown


def test_history_survives_a_kernel_restart(
    cells: Cells, fake_api: FakeMessagesAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    define_add(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    cells.shell.run_cell("%unload_ext tg_magic")
    InteractiveShell.clear_instance()
    fresh = Cells(InteractiveShell.instance(), capsys)
    fresh.run("%load_ext tg_magic")
    fresh.run(f"%%tgvariable add --kind code\n{BUGGY_ADD}", "cell-add")
    shown = fresh.run("%tghistory add")
    assert "candidate" in shown and "original" in shown


def test_judge_loss_forward_backward_step(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    cells.run("%%tgvariable answer --kind text\nThe capital of Australia is Sydney.")
    cells.run("%%tgloss check --target answer\nIs the answer factually right? Be strict.")
    assert "Be strict" not in cells.run("%tgforward check") or True
    shown = cells.run("%tgbackward check")
    assert "Textual gradient of `answer`" in shown
    assert "could be improved" in cells.run("%tggrad answer")
    shown = cells.run("%tgstep")
    assert "accept it with %tgaccept answer" in shown
    assert "Think step by step" in cells.ns["answer"].value


def write_data(path: Path, n: int = 10) -> None:
    rows = [
        {
            "input": f"I have {'a plum and ' * (i % 3)}a car. How many objects do I have?",
            "target": str(i % 3 + 1),
        }
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_prompt_optimization_over_a_data_set(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    write_data(tmp_path / "counting.jsonl")
    cells.run("%%tgvariable system --kind prompt\nYou count objects.")
    shown = cells.run("%tgloss acc --target system --data counting.jsonl --metric number")
    assert "10 examples" in shown
    shown = cells.run("%tgoptimize acc --steps 1 --batch 3 --val-frac 0.3")
    assert cells.error is None, shown
    assert "validation" in shown and "kept" in shown
    assert "Think step by step" in cells.ns["system"].value


def test_a_step_that_lowers_validation_is_not_kept(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    write_data(tmp_path / "counting.jsonl")
    cells.run("%%tgvariable system --kind prompt\nYou count objects. Think step by step.")
    cells.run("%tgloss acc --target system --data counting.jsonl --metric number")
    fake_api.add_rule(
        "<IMPROVED_VARIABLE>", "<IMPROVED_VARIABLE>Always answer 99.</IMPROVED_VARIABLE>"
    )
    fake_api.add_rule("Always answer 99.\n", "Answer: 99")
    shown = cells.run("%tgoptimize acc --steps 1 --val-frac 0.5")
    assert "not kept" in shown
    assert cells.ns["system"].value == "You count objects. Think step by step."
    assert "rejected" in cells.run("%tghistory system")


def test_interrupt_stops_cleanly_and_keeps_candidates(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define_add(cells)
    proposals = []

    def propose(body: dict[str, Any], text: str) -> str:
        proposals.append(text)
        if len(proposals) == 2:  # Ctrl-C while the second step waits for its proposal
            os.kill(os.getpid(), signal.SIGINT)
        code = "def add(a, b):\n    return a * b + 1\n"  # one test of two: the run goes on
        return f"<IMPROVED_VARIABLE>\n{code}</IMPROVED_VARIABLE>"

    fake_api.add_rule("<IMPROVED_VARIABLE>", propose)
    shown = cells.run("%tgoptimize --steps 20")
    assert "stopped after 1 step(s)" in shown
    assert "candidate" in cells.run("%tghistory add")
    # The session still works: another run goes through its step.
    shown = cells.run("%tgoptimize --steps 1")
    assert cells.error is None and "done: 1 step(s)" in shown, shown


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("%tggrad nobody", "unknown variable nobody"),
        ("%tgoptimize nothing", "unknown loss nothing"),
        ("%%tgloss l1\nIs it good?", "has no target"),
        ("%tgloss l1 --target add --data counting.jsonl", "trains a system prompt"),
        ("%%tgvariable empty\n   \n", "the cell of empty is empty"),
        ("%%tgvariable 2bad\ntext", "not a valid name"),
        ("%tgconfig --engine nonsense", "unknown engine"),
        ("%%tgvariable p --kind poem\nx", "invalid choice"),
        ("%tgoptimize --steps many", "invalid int value"),
        ("%%tgvariable p --role 'unclosed\nx", "check the quotes"),
        ("%tgaccept add 42", "has no iteration 42"),
    ],
)
def test_bad_input_is_one_clear_line(cells: Cells, source: str, message: str) -> None:
    define_add(cells)
    cells.fails(source, message)


def test_loss_data_problems(cells: Cells, tmp_path: Path) -> None:
    cells.run("%%tgvariable system\nYou count.")
    cells.fails("%tgloss a --target system --data missing.jsonl", "not found")
    (tmp_path / "bad.jsonl").write_text('{"input": "x", "target": "1"}\nnot json\n')
    cells.fails("%tgloss a --target system --data bad.jsonl", "bad.jsonl, line 2: not JSON")
    (tmp_path / "cols.csv").write_text("question,answer\nx,1\n")
    cells.fails("%tgloss a --target system --data cols.csv", "needs the fields 'input'")
    cells.fails("%%tgloss a --target system --tests\nassert True", "needs a code variable")
    cells.fails("%%tgloss system --target system\nx", "already a variable")


def test_every_magic_answers_help(cells: Cells) -> None:
    for magic in [
        "%tgoptimize",
        "%tgforward",
        "%tgbackward",
        "%tgstep",
        "%tggrad",
        "%tghistory",
        "%tgaccept",
        "%tgrevert",
        "%tggraph",
        "%tghint",
        "%tgconfig",
    ]:
        assert "usage:" in cells.run(f"{magic} --help"), magic
    assert "usage: %%tgvariable" in cells.run("%%tgvariable --help\nx")
    assert "usage: %%tgloss" in cells.run("%%tgloss -h\nx")


def test_settings_are_traitlets(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    cells.run('%config TgMagics.engine = "anthropic:claude-sonnet-5-5"')
    cells.run("%config TgMagics.concurrency = 3")
    shown = cells.run("%tgconfig")
    assert "anthropic:claude-sonnet-5-5" in shown and "concurrency:      3" in shown
    cells.run("%%tgvariable answer --kind text\nParis is in Spain.")
    cells.run("%%tgloss check --target answer\nIs it right?")
    cells.run("%tgforward check")
    assert fake_api.requests[-1]["body"]["model"] == "claude-sonnet-5-5"


def test_graph_shows_variables_losses_and_gradients(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define_add(cells)
    cells.run("%tgbackward")
    shown = cells.run("%tggraph")
    assert "add --> add_tests" in shown
    assert "could be improved" in shown


# -- one truth after accept; scores test by test; nothing to do, no calls -------------------

TEST_FUNCTIONS = (
    "def test_adds():\n    assert add(1, 2) == 3\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
)


def session_of(cells: Cells) -> Any:
    return cells.shell.magics_manager.registry["TgMagics"].session


def test_terminal_accept_updates_kernel_namespace_and_history(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define_add(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    assert cells.ns["add"](1, 2) == -1
    shown = cells.run("%tgaccept add")
    new_cell = f"%%tgvariable add --kind code\n{FIXED_ADD}".rstrip()
    assert shown.startswith("add: accepted #1; the kernel ran it; no notebook file here")
    assert shown.count(new_cell) == 1  # the new cell, printed once, to paste
    assert cells.ns["add"](1, 2) == 3  # the namespace has it: no re-run needed
    assert [e.status for e in session_of(cells).history.entries("add")] == [
        "original",
        "accepted",
    ]
    history = cells.run("%tghistory add")  # what the cell holds: #0 until the new one is pasted
    assert re.search(r"^  0\s+original .*◀ in the cell$", history, re.MULTILINE), history
    assert re.search(r"^  1\s+step 1\s+accepted ", history, re.MULTILINE), history
    shown = cells.run("%tgrevert add")
    assert shown.startswith("add: reverted to #0; the kernel ran it; no notebook file here")
    assert cells.ns["add"](1, 2) == -1


def test_accepted_code_that_fails_is_one_line_and_the_cell_keeps_it(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    path = tmp_path / "work.ipynb"
    open_add_notebook(cells, path)
    broken = f"{FIXED_ADD}raise ValueError('boom at import')\n"
    fake_api.add_rule("<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{broken}</IMPROVED_VARIABLE>")
    cells.run("%tgoptimize --steps 1")
    shown = cells.run("%tgaccept add")
    assert shown.strip() == (
        "add: accepted #1, but running it failed: ValueError: boom at import (line 3) "
        "(the cell holds the accepted text)"
    )
    assert "Traceback" not in shown
    assert "boom at import" in nbformat.read(path, as_version=4).cells[1].source


def test_accepting_a_text_variable_rebinds_it(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    cells.run("%%tgvariable answer --kind text\nThe capital of Australia is Sydney.")
    cells.run("%%tgloss check --target answer\nIs the answer factually right?")
    cells.run("%tgbackward check")
    cells.run("%tgstep")
    cells.ns["answer"] = "something else"  # the user rebound the name meanwhile
    assert cells.run("%tgaccept answer").startswith(
        "answer: accepted #1; the variable holds it now"
    )
    assert "Think step by step" in cells.ns["answer"].value


def test_scores_say_which_test_failed(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    half = "def add(a, b):\n    return a * b\n"  # add(0, 0) == 0 passes, add(1, 2) == 3 fails
    cells.run(f"%%tgvariable add --kind code\n{half}", "cell-add")
    cells.run(f"%%tgloss add_tests --target add --tests\n{TEST_FUNCTIONS}", "cell-tests")
    shown = cells.run("%tgforward")
    assert "1 of 2 tests pass" in shown
    assert "✓ test_zero" in shown
    assert re.search(r"✗ test_adds: .*assert 2 == 3", shown), shown
    fix_add(fake_api)
    shown = cells.run("%tgoptimize --steps 1")
    assert "tests: 2 of 2 tests pass" in shown  # the progress: the tests of the new value
    history = cells.run("%tghistory add")
    assert "score before" in history and "score after" in history
    assert re.search(r"0\s+original .* 1 of 2 tests pass", history), history
    assert re.search(r"✗ test_adds: .*assert 2 == 3", history)
    assert re.search(r"1\s+candidate .* 2 of 2 tests pass", history)


def test_nothing_to_do_makes_no_call(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    define_add(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    cells.run("%tgaccept add")
    calls = len(fake_api.requests)
    shown = cells.run("%tgoptimize --steps 3")
    assert shown.strip() == (
        "add_tests: 2 of 2 tests pass (score 1.000): nothing to optimize, no model call made"
    )
    assert len(fake_api.requests) == calls  # not one request


def test_patience_and_target_score_stop_a_run(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    cells.run(f"%%tgvariable add --kind code\n{BUGGY_ADD}", "cell-add")
    cells.run(f"%%tgloss add_tests --target add --tests\n{TEST_FUNCTIONS}", "cell-tests")
    versions = iter(range(100))

    def never_better(body: dict[str, Any], text: str) -> str:  # a new text, never a fix
        code = f"def add(a, b):\n    return a - b - {next(versions)} * 0\n"
        return f"<IMPROVED_VARIABLE>\n{code}</IMPROVED_VARIABLE>"

    fake_api.add_rule("<IMPROVED_VARIABLE>", never_better)
    shown = cells.run("%tgoptimize --steps 6 --patience 2")
    assert "done after 2 step(s): no better score in 2 step(s) (--patience 2); best 0.500" in shown
    fake_api.add_rule(
        "<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{FIXED_ADD}</IMPROVED_VARIABLE>"
    )
    shown = cells.run("%tgoptimize --steps 5 --target-score 1")
    assert "done after 1 step(s): reached the target score 1 (score 1.000)" in shown
    assert cells.error is None


def test_one_engine_setting_everywhere(
    cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tg_magic as tg

    monkeypatch.setenv("TG_MAGIC_ENGINE", "anthropic:claude-sonnet-5-5")
    assert "engine:           anthropic:claude-sonnet-5-5" in cells.run("%tgconfig")
    assert tg.get_engine(None).spec == "anthropic:claude-sonnet-5-5"
    define_add(cells)
    fix_add(fake_api)
    shown = cells.run("%tgoptimize --steps 1")
    assert (
        "engine anthropic:claude-sonnet-5-5, backward (the engine: anthropic:claude-sonnet-5-5)"
        in shown
    )
    assert {r["body"]["model"] for r in fake_api.requests} == {"claude-sonnet-5-5"}
    cells.run('%config TgMagics.backward_engine = "anthropic:claude-opus-5-5"')
    assert tg.settings.backward_engine == "anthropic:claude-opus-5-5"
    assert tg.get_backward_engine().spec == "anthropic:claude-opus-5-5"
    assert "backward engine:  anthropic:claude-opus-5-5" in cells.run("%tgconfig")
    tg.set_backward_engine("anthropic:claude-haiku-5-5")
    assert "backward engine:  anthropic:claude-haiku-5-5" in cells.run("%tgconfig")


def test_tests_cell_says_what_is_contained_and_asks_consent(
    cells: Cells, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tg_magic import sandbox
    from tg_magic.config import settings

    cells.run(f"%%tgvariable add --kind code\n{BUGGY_ADD}", "cell-add")
    shown = cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", "cell-tests")
    assert f"tests run in a child process; {sandbox.containment()}" in shown
    # Where bubblewrap is missing (a PATH without it, as on a machine without it), one line
    # says what to do.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert not sandbox.available()
    shown = cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", "cell-tests")
    assert "apt-get install bubblewrap" in shown and "%tgconfig --allow-unsandboxed on" in shown
    assert "unsandboxed ok:   on" in cells.run("%tgconfig --allow-unsandboxed on")
    assert settings.allow_unsandboxed is True
    shown = cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", "cell-tests")
    assert "tests run in a child process" in shown


def test_k_candidates_of_a_prompt_are_scored_on_each_held_out_example(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    write_data(tmp_path / "counting.jsonl")
    cells.run("%%tgvariable system --kind prompt\nYou count objects.")
    cells.run("%tgloss acc --target system --data counting.jsonl --metric number")

    # The first version answers 99 to everything; the retry, shown it, thinks step by step.
    def propose(body: dict[str, Any], text: str) -> str:
        new = "Always answer 99." if "<PAST_VALUE>" not in text else "Count. Think step by step."
        return f"<IMPROVED_VARIABLE>{new}</IMPROVED_VARIABLE>"

    fake_api.add_rule("Always answer 99.\n", "Answer: 99")
    fake_api.add_rule("<IMPROVED_VARIABLE>", propose)  # newer: wins in the optimizer's request
    shown = cells.run("%tgoptimize acc --steps 1 --val-frac 0.5 --candidates 2")
    assert cells.error is None, shown
    assert cells.ns["system"].value == "Count. Think step by step."
    rows = session_of(cells).step_candidates["system"]
    scores = {row.candidate.values[0]: row.candidate for row in rows}
    assert scores["Always answer 99."].score == 0.0
    assert scores["Count. Think step by step."].score == 1.0
    # One verdict per held-out example (5 of 10), so a version right on some is not lost.
    assert [len(c.per_example) for c in scores.values()] == [5, 5]
    statuses = [e.status for e in session_of(cells).history.entries("system")]
    assert statuses == ["original", "alternative", "candidate"]


# -- the magics table: flags, data losses, settings, history file --------------------------


def test_a_no_grad_variable_is_never_changed(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    cells.run(f"%%tgvariable add --kind code --no-grad\n{BUGGY_ADD}", "cell-add")
    cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", "cell-tests")
    cells.fails("%tgoptimize --steps 1", "add was declared with --no-grad: nothing to optimize")
    assert fake_api.requests == []
    assert cells.ns["add"](1, 2) == -1  # the code still runs, unchanged
    assert "1 of 2 tests pass" in cells.run("%tgforward")  # it can still be evaluated


def test_judge_flag_makes_a_judge_loss(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    cells.run("%%tgvariable answer --kind text\nThe capital of Australia is Sydney.")
    shown = cells.run("%%tgloss check --target answer --judge\nIs it right? Be strict.")
    assert shown.strip() == "check: judge loss on answer"
    cells.run("%tgforward check")
    judged = fake_api.requests[-1]["body"]
    assert "Be strict." in str(judged) and "Sydney" in str(judged)


def test_data_loss_from_csv_with_each_metric_and_its_own_model(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    question = "I have a plum and a car. How many objects do I have?"  # the fake: "Answer: 2"
    rows = ["input,target"] + [f"{question},{t}" for t in ("Answer: 2", "2", "2 objects")]
    (tmp_path / "counting.csv").write_text("\n".join(rows) + "\n")
    cells.run("%%tgvariable system --kind prompt\nYou count objects.")
    cells.ns["quarter"] = lambda prediction, target: 0.25
    scores = {}
    for metric in ("exact", "contains", "number", "python:quarter"):
        shown = cells.run(
            f"%tgloss acc --target system --data counting.csv --metric {metric} "
            "--model anthropic:claude-opus-5-5"
        )
        assert "3 examples" in shown, shown
        scores[metric] = re.search(r"\(score (\S+)\)", cells.run("%tgforward acc")).group(1)  # type: ignore[union-attr]
    assert scores == {
        "exact": "0.333",
        "contains": "0.667",
        "number": "1.000",
        "python:quarter": "0.250",
    }
    assert {r["body"]["model"] for r in fake_api.requests} == {"claude-opus-5-5"}


def test_history_is_kept_beside_the_notebook(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    (tmp_path / "course").mkdir()
    open_add_notebook(cells, tmp_path / "course" / "work.ipynb")
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    path = tmp_path / "course" / ".tg_magic" / "work.history.sqlite"
    assert f"history:          {path}" in cells.run("%tgconfig")
    with sqlite3.connect(path) as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM entries ORDER BY n")]
    assert statuses == ["original", "candidate"]


def test_tgconfig_shows_every_setting(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    path = tmp_path / "work.ipynb"
    add_notebook(path)
    shown = cells.run(
        "%tgconfig --engine anthropic:claude-sonnet-5-5 --backward-engine "
        "anthropic:claude-opus-5-5 --concurrency 3 --request-timeout 30 --run-deadline 600 "
        f"--budget-dollars 2.5 --budget-tokens 10000 --notebook {path} --feedback-only on "
        "--allow-unsandboxed on"
    )
    for line in (
        "engine:           anthropic:claude-sonnet-5-5",
        "backward engine:  anthropic:claude-opus-5-5",
        "concurrency:      3",
        "request timeout:  30 s",
        "run deadline:     600 s",
        "budget:           $2.5 and 10,000 tokens",
        f"notebook:         {path}",
        "feedback-only:    on",
        "unsandboxed ok:   on",
    ):
        assert line in shown.splitlines(), line


def test_tgconfig_shows_the_cache_file_before_its_first_reply(cells: Cells, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    assert f"cache:            {other}" in cells.run(f"%tgconfig --cache {other}").splitlines()


def without_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH without bwrap, as on a machine where it is not installed."""
    from tg_magic import sandbox

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert not sandbox.available()


def test_unsandboxed_runs_allowed_from_the_environment_run_the_tests(
    cells: Cells, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_bubblewrap(monkeypatch)
    monkeypatch.setenv("TG_MAGIC_ALLOW_UNSANDBOXED", "1")
    assert "unsandboxed ok:   on" in cells.run("%tgconfig")
    define_add(cells)
    assert "1 of 2 tests pass" in cells.run("%tgforward")


def test_the_loss_cell_says_what_an_allowed_unsandboxed_run_does_not_contain(
    cells: Cells, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_bubblewrap(monkeypatch)
    cells.run("%tgconfig --allow-unsandboxed on")
    cells.run(f"%%tgvariable add --kind code\n{BUGGY_ADD}", "cell-add")
    shown = cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", "cell-tests")
    assert "NOT CONTAINED" in shown and "the code can read your files" in shown


def test_history_shows_each_steps_usage(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    define_add(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    with capture_output() as shown:
        cells.shell.run_cell("%tghistory add")
    page = shown.outputs[0].data["text/html"]
    assert "<th" in page and ">usage<" in page
    assert re.search(r"2 calls, \d+ input \+ \d+ output tokens, \$0\.\d{4}", page), page
    # ... and the plain text that consoles and headless runs show:
    text = shown.outputs[0].data["text/plain"]
    assert re.search(r"usage: 2 calls, \d+ input \+ \d+ output tokens, \$0\.\d{4}", text), text
