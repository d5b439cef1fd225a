"""Accept in every frontend, at the kernel: what runs it is read from what the kernel can see;
a file a frontend holds is never written; without the extension the cell takes the accepted text
when it next runs (IPython's set_next_input payload, replace=True), and nothing the user typed
is overwritten. The protocol itself is checked through a real kernel in test_frontends_kernel."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest

from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tests.test_notebook import BUGGY_ADD, FIXED_ADD, TESTS, add_notebook, fix_add
from tg_magic.notebook import where

MAGIC = "%%tgvariable add --kind code"


@pytest.fixture
def payloads(cells: Cells, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """What the kernel asks the frontend to put into the running cell (set_next_input)."""
    sent: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        cells.shell, "set_next_input", lambda text, replace=False: sent.append((text, replace))
    )
    return sent


def run_add(cells: Cells, body: str = BUGGY_ADD, cell_id: str = "c-add") -> str:
    return cells.run(f"{MAGIC}\n{body}", cell_id)


def optimized(cells: Cells, fake: FakeMessagesAPI) -> None:
    run_add(cells)
    cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", "c-tests")
    fix_add(fake)
    cells.run("%tgoptimize --steps 1")
    assert cells.error is None


@pytest.fixture
def accepted_in_jupyter(
    cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> Cells:
    """A Jupyter server's kernel with no extension, add's fix accepted (not in its cell yet)."""
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/nowhere.ipynb")
    optimized(cells, fake_api)
    cells.run("%tgaccept add")
    return cells


def session_of(cells: Cells) -> Any:
    return cells.shell.magics_manager.registry["TgMagics"].session


def test_the_frontend_is_read_from_what_the_kernel_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JPY_SESSION_NAME", "COLAB_RELEASE_TAG"):
        monkeypatch.delenv(name, raising=False)
    for name in [k for k in __import__("os").environ if k.startswith("VSCODE_")]:
        monkeypatch.delenv(name)
    kernel = SimpleNamespace(kernel=object())
    assert where.current(None, {}) == where.Frontend("a terminal IPython", False, False)
    assert where.current(kernel, {}).name == "a headless run"  # nbclient, tg-magic run
    assert not where.current(kernel, {}).holds_file
    code = where.current(kernel, {"__vsc_ipynb_file__": "/w/a.ipynb"})
    assert code.name == "VS Code" and code.holds_file and code.runs_payloads
    monkeypatch.setenv("JPY_SESSION_NAME", "/w/a.ipynb")
    assert where.current(kernel, {}).name == "this Jupyter frontend"
    assert where.current(kernel, {}, app="Jupyter Notebook").name == "Jupyter Notebook"
    # `jupyter lab` started from VS Code's terminal inherits its variables: still a Jupyter page.
    monkeypatch.setenv("VSCODE_PID", "1234")
    assert where.current(kernel, {}).answers_comms
    monkeypatch.delenv("VSCODE_PID")
    monkeypatch.delenv("JPY_SESSION_NAME")
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")
    colab = where.current(kernel, {})
    assert colab.name == "Colab" and colab.holds_file and not colab.answers_comms


def test_without_the_extension_the_cell_takes_the_accepted_text_when_it_runs(
    cells: Cells,
    fake_api: FakeMessagesAPI,
    payloads: list[tuple[str, bool]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = tmp_path / "median.ipynb"
    add_notebook(path)
    before = path.read_bytes()
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # a Jupyter server, no extension
    optimized(cells, fake_api)
    shown = cells.run("%tgaccept add")
    assert shown.strip() == (
        "add: accepted #1; the kernel runs it; the cell still shows #0: run the cell of add "
        "once to write #1 into it (this Jupyter frontend has no tg-magic extension)"
    )
    assert path.read_bytes() == before  # the file the frontend holds is never written
    assert cells.ns["add"](1, 2) == 3  # the kernel runs the fix at once
    assert "the cell holds #0" in session_of(cells).edits.state("add")
    history = cells.run("%tghistory add")
    assert "◀ in the cell" in next(line for line in history.splitlines() if " 0 " in line)
    # The cell runs, still holding #0: its text becomes #1 (magic line kept), the fix stays.
    shown = run_add(cells)
    assert payloads == [(f"{MAGIC}\n{FIXED_ADD}".rstrip("\n"), True)]
    assert "add: wrote #1 into this cell (accepted #1); the kernel runs it" in shown
    assert cells.ns["add"](1, 2) == 3
    assert "the cell holds #1 (accepted)" in session_of(cells).edits.state("add")
    # The next run of the cell (now holding #1) changes nothing more.
    run_add(cells, FIXED_ADD)
    assert len(payloads) == 1 and cells.ns["add"](1, 2) == 3


def test_a_hand_edit_before_the_run_wins_and_is_reported(
    accepted_in_jupyter: Cells, payloads: list[tuple[str, bool]]
) -> None:
    cells = accepted_in_jupyter
    mine = "def add(a, b):\n    return b + a  # mine\n"
    shown = run_add(cells, mine)
    assert payloads == []  # the user's text is never replaced
    assert (
        "add: your edit of the cell wins; #1 (accepted #1) was set aside "
        "(%tgaccept add 1 brings it back)"
    ) in shown
    assert session_of(cells).variables["add"].kernel_value.endswith("# mine")
    shown = cells.run("%tgaccept add 1")  # it comes back when asked
    assert "the cell still shows" in shown and "run the cell of add once" in shown


def test_revert_goes_into_the_cell_the_same_way(
    accepted_in_jupyter: Cells, payloads: list[tuple[str, bool]]
) -> None:
    cells = accepted_in_jupyter
    run_add(cells)  # the cell takes #1
    shown = cells.run("%tgrevert add")
    assert "reverted to #0; the kernel runs it; the cell still shows #1" in shown
    assert cells.ns["add"](1, 2) == -1
    run_add(cells, FIXED_ADD)
    assert payloads[-1] == (f"{MAGIC}\n{BUGGY_ADD}".rstrip("\n"), True)
    assert cells.ns["add"](1, 2) == -1


def test_vs_code_never_has_its_file_written_behind_it(
    cells: Cells,
    fake_api: FakeMessagesAPI,
    payloads: list[tuple[str, bool]],
    tmp_path: Path,
) -> None:
    path = tmp_path / "median.ipynb"
    nb = add_notebook(path)
    before = path.read_bytes()
    cells.ns["__vsc_ipynb_file__"] = str(path)  # as VS Code sets it in the kernel
    run_add(cells, cell_id=nb.cells[1].id)
    cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", nb.cells[2].id)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    shown = cells.run("%tgaccept add")
    assert "VS Code has no tg-magic extension" in shown and "JupyterLab" not in shown
    assert path.read_bytes() == before
    run_add(cells, cell_id=nb.cells[1].id)
    assert payloads[-1][1] is True and "return a + b" in payloads[-1][0]
    assert nbformat.read(path, as_version=4).cells[1].source.rstrip().endswith("return a - b")


def test_no_notebook_setting_under_a_frontend_that_holds_the_file(
    cells: Cells, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cells.ns["__vsc_ipynb_file__"] = str(tmp_path / "a.ipynb")
    shown = cells.fails(f"%tgconfig --notebook {tmp_path / 'a.ipynb'}", "VS Code has this")
    assert "loses your edits" in shown or "loses your edits" in str(cells.error)
    del cells.ns["__vsc_ipynb_file__"]
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "a.ipynb"))
    cells.fails(f"%tgconfig --notebook {tmp_path / 'a.ipynb'}", "has this notebook open")
    monkeypatch.delenv("JPY_SESSION_NAME")
    cells.run(f"%tgconfig --notebook {tmp_path / 'a.ipynb'}")  # a terminal: the file is free
    assert cells.error is None
