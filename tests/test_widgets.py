"""The widgets in-process: magics driven through InteractiveShell, buttons pressed with
`Button.click()`, and the JupyterLab transport's protocol driven through real `comm` objects
(outside a kernel `comm.create_comm` gives a comm whose publishing is a no-op; the frontend's
reply or close is delivered with `handle_msg` / `handle_close`, as ipykernel would)."""

from __future__ import annotations

import asyncio
import html
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tests.test_notebook import (
    BUGGY_ADD,
    FIXED_ADD,
    TESTS,
    fix_add,
    interrupt_after_first_step,
    never_fixed,
    open_add_notebook,
)
from tg_magic.notebook import frontend
from tg_magic.notebook.cellwriter import CellRef, Written
from tg_magic.notebook.live import install_live, live_transform
from tg_magic.notebook.magics import TgMagics
from tg_magic.notebook.progress import ProgressView
from tg_magic.notebook.widgets import CELL, PREVIOUS, CandidateView

COMMENTS = "".join(f"    # step {i} of the addition\n" for i in range(1, 19))
LONG_BUGGY = f"def add(a, b):\n{COMMENTS}    return a - b\n"
LONG_FIXED = f"def add(a, b):\n{COMMENTS}    return a + b\n"


@pytest.fixture
def cells(cells: Cells) -> Cells:
    """The notebook cells of conftest, with widgets on as in JupyterLab."""
    cells.run('%config TgMagics.widgets = "on"')
    assert cells.error is None
    return cells


def magics_of(cells: Cells) -> TgMagics:
    found = cells.shell.magics_manager.registry["TgMagics"]
    assert isinstance(found, TgMagics)
    return found


def plain(markup: str) -> str:
    """What a person reads in an HTML fragment."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def candidate(cells: Cells) -> CandidateView:
    view = magics_of(cells).display.views[-1]
    assert isinstance(view, CandidateView)
    return view


def define(
    cells: Cells, code: str = BUGGY_ADD, ids: tuple[str, str] = ("c-add", "c-tests")
) -> None:
    cells.run(f"%%tgvariable add --kind code\n{code}", ids[0])
    cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", ids[1])
    assert cells.error is None


def test_diff_widget_shows_the_candidate_and_folds_unchanged_lines(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define(cells, LONG_BUGGY)
    fake_api.add_rule(
        "<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{LONG_FIXED}</IMPROVED_VARIABLE>"
    )
    shown = cells.run("%tgoptimize --steps 1")
    assert cells.error is None, shown
    view = candidate(cells)
    side, unified = plain(view.side.value), plain(view.unified.value)
    for text in (side, unified):
        assert "return a + b" in text and "return a - b" in text
        assert "… 16 unchanged lines" in text  # the head of the function is folded
        assert "step 1 of" not in text and "step 18 of" in text  # three lines of context
    assert "<span style=" in view.side.value  # the code is highlighted
    assert "jp-mirror-editor-keyword-color" in view.side.value
    assert "0.500 → 1.000" in plain(view.scores.value)  # tests passed: before, after
    gradient = view.gradient.outputs[0]["data"]["text/markdown"]
    assert "Textual gradient of `add`" in gradient
    assert view.accept_button.description == "Accept #1"
    # The plain-text twin, for consoles and notebooks opened without the widget manager:
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "+    return a + b" in bundle["text/plain"] and "+    return a + b" in shown
    assert "%tgaccept add 1" in shown


def test_accept_writes_the_notebook_file_then_revert_restores_it(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    path = tmp_path / "work.ipynb"
    open_add_notebook(cells, path)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    view = candidate(cells)
    session = magics_of(cells).session

    assert cells.ns["add"](1, 2) == -1  # the buggy cell ran

    view.accept_button.click()
    assert plain(view.status.value) == (
        "add: accepted #1; the cell holds it now (wrote add into work.ipynb), and the kernel ran it"
    )
    assert cells.ns["add"](1, 2) == 3  # the namespace matches the cell: no re-run needed
    saved = nbformat.read(path, as_version=4).cells[1].source
    assert saved.rstrip() == f"%%tgvariable add --kind code\n{FIXED_ADD}".rstrip()
    assert [e.status for e in session.history.entries("add")] == ["original", "accepted"]
    assert session.variables["add"].cell_value.rstrip() == FIXED_ADD.rstrip()
    assert view.accept_button.disabled  # the cell holds it now: nothing to accept
    # The diff shows what the accept changed, labelled so (not an empty cell-vs-cell diff).
    assert view.compare_from.value == PREVIOUS
    assert "the cell before the last accept or revert → iteration #1" in plain(view.title.value)
    side = plain(view.side.value)
    assert "return a - b" in side and "return a + b" in side
    assert "accepted #1; the cell holds #1 (accepted)" in plain(view.state.value)

    view.revert_button.click()
    assert plain(view.status.value).startswith("add: reverted to #0; the cell holds it now")
    assert nbformat.read(path, as_version=4).cells[1].source.endswith("return a - b")
    assert session.history.entries("add")[0].status == "reverted"
    assert session.variables["add"].variable.value.rstrip() == BUGGY_ADD.rstrip()
    assert cells.ns["add"](1, 2) == -1
    assert view.revert_button.disabled and not view.accept_button.disabled


def test_accept_without_a_notebook_file_shows_the_new_cell(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    view = candidate(cells)
    view.accept_button.click()
    status = plain(view.status.value)
    assert "the cell was not edited" in status
    assert f"%%tgvariable add --kind code\n{FIXED_ADD}".rstrip() in status
    assert "tg-magic-status" in view.status.value


def test_reject_gives_the_variable_the_cell_text_again(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    session = magics_of(cells).session
    assert session.variables["add"].variable.value.rstrip() == FIXED_ADD.rstrip()
    view = candidate(cells)
    view.reject_button.click()
    assert session.variables["add"].variable.value.rstrip() == BUGGY_ADD.rstrip()
    assert session.history.latest("add").status == "rejected"  # type: ignore[union-attr]
    assert (
        plain(view.status.value)
        == "add: rejected #1; the variable holds #0 (the cell's text) again"
    )
    assert view.reject_button.disabled


def test_iteration_selector_compares_any_two_entries(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define(cells)
    replies = iter(["return a * b + 1  # first", "return b + a  # second"])

    def propose(body: dict[str, Any], text: str) -> str:
        line = next(replies, "return b + a  # second")
        return f"<IMPROVED_VARIABLE>\ndef add(a, b):\n    {line}\n</IMPROVED_VARIABLE>"

    fake_api.add_rule("<IMPROVED_VARIABLE>", propose)
    shown = cells.run("%tgoptimize --steps 2")
    assert cells.error is None, shown
    view = candidate(cells)
    assert [v for _, v in view.compare_from.options] == [CELL, 0, 1, 2]
    assert [v for _, v in view.compare_to.options] == [0, 1, 2]
    assert view.compare_to.value == 2 and view.compare_from.value == CELL
    view.select(1, 2)
    side = plain(view.side.value)
    assert "# first" in side and "# second" in side and "return a - b" not in side
    assert plain(view.title.value) == "add: #1 → iteration #2 (candidate)"
    view.compare_from.value = 0  # as a person picks it in the dropdown
    side = plain(view.side.value)
    assert "return a - b" in side and "# second" in side and "# first" not in side
    view.compare_to.value = 1
    assert view.accept_button.description == "Accept #1"


def test_progress_widget_updates_per_step(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    define(cells)
    never_fixed(fake_api)
    session = magics_of(cells).session
    view = ProgressView(2, can_stop=True)
    assert view.bar.value == 0 and "no score yet" in view.curve.value
    for step, result in enumerate(session.optimize("add_tests", steps=2), 1):
        view.update(result)
        assert view.bar.value == step and view.bar.description == f"step {step}/2"
        points = re.search(r'points="([^"]+)"', view.curve.value)
        assert points is not None and len(points.group(1).split()) == step + 1
        assert f"step {step}/2" in plain(view.label.value)
        assert view.usage.calls > 0 and "tokens" in plain(view.usage_label.value)
    view.finish("done: 2 step(s)")
    assert view.bar.bar_style == "success" and view.stop_button.layout.display == "none"


def test_optimize_shows_progress_then_the_candidate(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define(cells)
    never_fixed(fake_api)
    cells.run("%tgoptimize --steps 2")
    progress, view = magics_of(cells).display.views[-2:]
    assert isinstance(progress, ProgressView) and isinstance(view, CandidateView)
    assert progress.bar.value == 2 and progress.results == 2
    assert "done: 2 step(s)" in plain(progress.label.value)
    assert progress.stop_button.layout.display == "none"  # a plain cell cannot see a click


def test_stop_button_ends_a_live_run_after_the_step_under_way(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define(cells)
    magics = magics_of(cells)
    clicked = threading.Event()

    def propose(body: dict[str, Any], text: str) -> str:
        if not clicked.is_set():  # a person presses Stop while step 1 runs
            clicked.set()
            progress = magics.display.views[-1]
            assert isinstance(progress, ProgressView)
            progress.stop_button.click()
        return f"<IMPROVED_VARIABLE>\n{FIXED_ADD}</IMPROVED_VARIABLE>"

    fake_api.add_rule("<IMPROVED_VARIABLE>", propose)
    asyncio.run(magics.tgoptimize_live("--steps 5"))
    progress = next(v for v in magics.display.views if isinstance(v, ProgressView))
    assert progress.results == 1 and progress.stop_requested
    assert "stopped after 1 step(s)" in progress.label.value
    assert progress.bar.bar_style == "warning"
    assert isinstance(magics.display.views[-1], CandidateView)  # the candidate is kept and shown


def test_ctrl_c_stops_a_live_run_inside_a_step(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    define(cells)
    interrupt_after_first_step(fake_api)
    magics = magics_of(cells)
    asyncio.run(magics.tgoptimize_live("--steps 20"))
    progress = next(v for v in magics.display.views if isinstance(v, ProgressView))
    assert "stopped after" in progress.label.value and progress.results < 20
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_step_shows_the_candidate_widget(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    cells.run("%%tgvariable answer --kind text\nThe capital of Australia is Sydney.")
    cells.run("%%tgloss check --target answer\nIs the answer factually right?")
    cells.run("%tgbackward check")
    shown = cells.run("%tgstep")
    view = candidate(cells)
    assert view.name == "answer" and "Think step by step" in plain(view.side.value)
    assert "accept it with %tgaccept answer" in shown


# -- the JupyterLab transport -------------------------------------------------------------


REF = CellRef("add", "cell-add", "%%tgvariable add --kind code")


def reply(channel: Any, data: dict[str, Any]) -> None:
    """The frontend answers on the comm, as ipykernel delivers it."""
    channel.handle_msg({"content": {"comm_id": channel.comm_id, "data": data}})


def only_pending(transport: frontend.CommTransport) -> tuple[str, Any]:
    assert len(transport.pending) == 1
    return next(iter(transport.pending.items()))


def answering(app: str = "JupyterLab") -> frontend.CommTransport:
    """A transport whose ping the extension answered (as by the cell after %load_ext)."""
    transport = frontend.CommTransport()
    transport.ping()
    request_id, channel = only_pending(transport)
    reply(channel, {"request_id": request_id, "ok": True, "version": "0.1.0", "app": app})
    return transport


def test_transport_confirms_an_edit_when_jupyterlab_answers() -> None:
    transport = answering()
    outcomes: list[Written] = []
    assert transport.replace_cell(REF, FIXED_ADD, outcomes.append)
    request_id, channel = only_pending(transport)
    assert outcomes == [] and channel.target_name == "tg_magic"
    reply(channel, {"request_id": "someone-else", "ok": True})  # not ours: ignored
    assert outcomes == []
    reply(channel, {"request_id": request_id, "ok": True, "cell_id": "cell-add", "source": "x"})
    (written,) = outcomes
    assert written.ok and written.edited and "updated in JupyterLab" in written.text
    assert transport.state == frontend.PRESENT and transport.pending == {}
    assert channel._closed  # the kernel closes the comm once answered
    reply(channel, {"request_id": request_id, "ok": True})  # a duplicate changes nothing
    assert len(outcomes) == 1


def test_transport_reports_a_failed_edit_with_the_new_cell() -> None:
    transport = answering("Jupyter Notebook")
    outcomes: list[Written] = []
    transport.replace_cell(REF, FIXED_ADD, outcomes.append)
    request_id, channel = only_pending(transport)
    error = 'No cell with id "cell-add" in this notebook.'
    reply(channel, {"request_id": request_id, "ok": False, "cell_id": "cell-add", "error": error})
    (written,) = outcomes
    ok, message = written.ok, written.text
    assert not ok and 'No cell with id "cell-add" in this notebook' in message
    assert message.startswith("Jupyter Notebook could not edit the cell")  # named as it is
    assert f"%%tgvariable add --kind code\n{FIXED_ADD}".rstrip() in message
    assert transport.state == frontend.PRESENT  # it answered: the extension is there


def test_no_edit_is_sent_unless_the_extension_answered_the_ping() -> None:
    outcomes: list[Written] = []
    # JupyterLab without the extension closes the ping's comm at once: absent.
    closing = frontend.CommTransport()
    closing.ping()
    _, channel = only_pending(closing)
    channel.handle_close({"content": {"comm_id": channel.comm_id, "data": {}}})
    assert closing.state == frontend.ABSENT
    assert not closing.replace_cell(REF, FIXED_ADD, outcomes.append)
    # VS Code and nbclassic never answer at all: no edit is left under way for ever.
    silent = frontend.CommTransport()
    silent.ping()
    assert silent.state == frontend.UNKNOWN
    assert not silent.replace_cell(REF, FIXED_ADD, outcomes.append)
    assert outcomes == [] and len(silent.pending) == 1  # only the ping
    # An answered extension whose page went away: the cell takes the text when it next runs.
    gone = answering()
    assert gone.replace_cell(REF, FIXED_ADD, outcomes.append)
    _, channel = only_pending(gone)
    channel.handle_close({"content": {"comm_id": channel.comm_id, "data": {}}})
    (written,) = outcomes
    assert written.ok and not written.edited and written.next_run


def test_ping_learns_that_the_extension_is_there() -> None:
    transport = frontend.CommTransport()
    transport.ping()
    request_id, channel = only_pending(transport)
    reply(channel, {"request_id": request_id, "ok": True, "version": "0.1.0", "app": "JupyterLab"})
    assert transport.state == frontend.PRESENT and transport.version == "0.1.0"
    assert transport.app == "JupyterLab"


def test_attached_only_in_a_kernel_under_a_jupyter_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel_shell = SimpleNamespace(kernel=object())
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("TG_MAGIC_NOTEBOOK", raising=False)
    assert frontend.attach(kernel_shell) is None  # a console kernel, nbclient...
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/work.ipynb")
    assert frontend.attach(SimpleNamespace()) is None  # not a kernel
    attached = frontend.attach(kernel_shell)
    assert attached is not None and len(attached.pending) == 1  # the ping is out
    monkeypatch.setenv("TG_MAGIC_NOTEBOOK", "/tmp/work.ipynb")  # headless: nobody answers
    assert frontend.attach(kernel_shell) is None


def test_widget_accept_through_jupyterlab_is_confirmed_later(
    cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/work.ipynb")
    define(cells)
    fix_add(fake_api)
    session = magics_of(cells).session
    session.frontend = answering()
    cells.run("%tgoptimize --steps 1")
    view = candidate(cells)
    view.accept_button.click()
    assert plain(view.status.value) == "add: sending #1 to the notebook…"
    assert view.accept_button.disabled and view.revert_button.disabled  # in flight
    assert session.history.latest("add").status == "candidate"  # type: ignore[union-attr]
    request_id, channel = only_pending(session.frontend)
    reply(channel, {"request_id": request_id, "ok": True, "cell_id": "c-add", "source": "…"})
    assert plain(view.status.value) == (
        "add: accepted #1; the cell holds it now (updated in JupyterLab; Ctrl-Z in the cell "
        "undoes it), and the kernel ran it"
    )
    assert cells.ns["add"](1, 2) == 3  # no re-run of the cell needed
    assert session.history.latest("add").status == "accepted"  # type: ignore[union-attr]
    assert session.variables["add"].cell_value.rstrip() == FIXED_ADD.rstrip()


def test_tgaccept_display_is_updated_when_jupyterlab_answers(
    cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/work.ipynb")
    define(cells)
    fix_add(fake_api)
    session = magics_of(cells).session
    session.frontend = answering()
    cells.run("%tgoptimize --steps 1")
    assert cells.run("%tgaccept add").strip() == "add: sending #1 to the notebook…"
    request_id, channel = only_pending(session.frontend)
    error = 'Cell "c-add" is read-only, so it was not changed.'
    reply(channel, {"request_id": request_id, "ok": False, "cell_id": "c-add", "error": error})
    shown = cells.capsys.readouterr().out  # the display handle's update
    assert "is read-only" in shown and "return a + b" in shown
    assert session.history.latest("add").status == "candidate"  # type: ignore[union-attr]


# -- staying light --------------------------------------------------------------------------


def test_load_ext_imports_no_widgets() -> None:
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell as S;"
        "S.instance().run_line_magic('load_ext', 'tg_magic');"
        "print([m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'pygments.lexers')"
        " or m.endswith('notebook.widgets')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_live_transform_makes_only_a_top_level_tgoptimize_async() -> None:
    lines = [
        "x = 1\n",
        "get_ipython().run_line_magic('tgoptimize', '--steps 2')\n",
        "    get_ipython().run_line_magic('tgoptimize', '')\n",
    ]
    out = live_transform(lines)
    assert out[0] == lines[0] and out[2] == lines[2]
    assert out[1] == (
        "await get_ipython().magics_manager.registry['TgMagics'].tgoptimize_live('--steps 2')\n"
    )
    assert not install_live(InteractiveShell.instance())  # no kernel: plain cells


def test_live_optimize_answers_help_and_reports_bad_input(cells: Cells) -> None:
    magics = magics_of(cells)
    asyncio.run(magics.tgoptimize_live("--help"))
    assert "usage: %tgoptimize" in cells.capsys.readouterr().out
    with pytest.raises(UsageError, match="no loss defined"):
        asyncio.run(magics.tgoptimize_live("--steps 1"))


# -- widgets follow the cell ----------------------------------------------------------------


def report_edit(cell_id: str, source: str) -> None:
    """The extension reports an edit of a cell, as ipykernel delivers its comm_open."""
    import comm

    opened = comm.get_comm_manager().targets[frontend.CHANGES_TARGET]
    channel = comm.create_comm(target_name=frontend.CHANGES_TARGET)
    opened(channel, {"content": {"data": frontend_edit(cell_id, source)}})


def frontend_edit(cell_id: str, source: str) -> dict[str, str]:
    return {"action": "cell_changed", "cell_id": cell_id, "source": source}


def jupyterlab(cells: Cells, monkeypatch: pytest.MonkeyPatch) -> Cells:
    """Cells under a Jupyter server with the extension (its comm answered by the test)."""
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/work.ipynb")
    cells.run("%unload_ext tg_magic")
    cells.run("%load_ext tg_magic")
    cells.run('%config TgMagics.widgets = "on"')
    session = magics_of(cells).session
    session.frontend = frontend.CommTransport()
    session.frontend.state = frontend.PRESENT
    return cells


def answer_edit(session: Any) -> None:
    request_id, channel = only_pending(session.frontend)
    reply(channel, {"request_id": request_id, "ok": True, "cell_id": "c-add", "source": "…"})


def test_every_widget_of_a_variable_follows_accept_undo_and_revert(
    cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = jupyterlab(cells, monkeypatch)
    define(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    session = magics_of(cells).session
    first = candidate(cells)
    second = CandidateView(session, "add")  # the same variable shown in another cell
    assert [label for label, _ in first.compare_to.options] == [
        "#0 original · def add(a, b):",
        "#1 candidate · 1.000 · return a + b",
    ]

    first.accept_button.click()
    first.accept_button.click()  # a second click while the edit is in flight does nothing
    assert len(session.frontend.pending) == 1
    answer_edit(session)
    assert cells.ns["add"](1, 2) == 3
    for view in (first, second):
        assert plain(view.state.value) == "accepted #1; the cell holds #1 (accepted)"
        assert view.accept_button.disabled and not view.revert_button.disabled
        assert view.compare_from.value == PREVIOUS  # what the accept changed: not empty
        assert "return a - b" in plain(view.side.value)

    # Ctrl-Z in the cell: the extension reports the old text; both widgets say so.
    report_edit("c-add", f"%%tgvariable add --kind code\n{BUGGY_ADD}")
    for view in (first, second):
        assert plain(view.state.value) == (
            "edited in the cell: back to #0; the cell holds #0 (original); the kernel still "
            "uses #1 until the cell runs"
        )
        assert not view.accept_button.disabled

    # A hand edit that is no iteration at all.
    report_edit("c-add", "%%tgvariable add --kind code\ndef add(a, b):\n    return 0\n")
    assert plain(second.state.value).startswith("edited in the cell; the cell holds text edited")

    # %tgrevert from another cell: the first widget follows.
    cells.run("%tgrevert add")
    answer_edit(session)
    for view in (first, second):
        assert plain(view.state.value) == "reverted to #0; the cell holds #0 (reverted)"
        assert view.revert_button.disabled and not view.accept_button.disabled
        assert view.status.value == ""  # no stale "accepted" line under the buttons
        # The cell now against the candidate: what accepting it again would change.
        assert (view.compare_from.value, view.compare_to.value) == (CELL, 1)
        assert "return a - b" in plain(view.side.value) and "return a + b" in plain(view.side.value)
    assert cells.ns["add"](1, 2) == -1
    history = cells.run("%tghistory add")
    assert re.search(r"^  0\s+reverted .*◀ in the cell$", history, re.MULTILINE), history


def test_progress_final_state_shows_the_score_and_no_stop(
    cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    define(cells)
    fix_add(fake_api)
    cells.run("%tgoptimize --steps 1")
    progress = next(v for v in magics_of(cells).display.views if isinstance(v, ProgressView))
    assert plain(progress.label.value) == "done: 1 step(s); score 0.500 → 1.000"
    assert progress.stop_button.layout.display == "none"
    assert progress.hint.layout.display == "none"  # no stale hint about Stop
    assert "2 of 2 tests pass" in plain(progress.tests.value)
    view = candidate(cells)
    assert "2 of 2 tests pass" in plain(view.tests.value) and "✓" in plain(view.tests.value)


def test_tables_are_left_aligned(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    from tg_magic.notebook import graph_view, render

    define(cells)
    session = magics_of(cells).session
    history = render.history_html("add", render.history_rows(session, "add"))
    graph = graph_view.graph_html(session)
    for table in (history, graph):
        cells_html = re.findall(r"<t[dh][^>]*>", table)
        assert cells_html and all("text-align: left" in c for c in cells_html)
    assert "<th" in history and "score before" in history and "score after" in history


def test_the_sdk_is_imported_in_the_background_once_a_loss_is_defined() -> None:
    code = (
        "import sys, os; os.environ['ANTHROPIC_API_KEY'] = 'x'\n"
        "from IPython.core.interactiveshell import InteractiveShell as S\n"
        "s = S.instance(); s.run_line_magic('load_ext', 'tg_magic')\n"
        "before = 'anthropic' in sys.modules\n"
        "s.run_cell('%%tgvariable p\\nYou count.')\n"
        "s.run_cell('%%tgloss l --target p\\nIs it good?')\n"
        "import threading\n"
        "for t in threading.enumerate():\n"
        "    if t.name.startswith('tg-magic-import-'): t.join()\n"
        "print(before, 'anthropic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip().splitlines()[-1] == "False True"


# -- k candidates a step ------------------------------------------------------------------


def three_proposals(fake: FakeMessagesAPI) -> None:
    """The fake optimizer writes a different add for each thing it is shown: with no past value
    (the first candidate) a product, shown one past value the fix, shown more a constant. Against
    TESTS (add(1, 2) == 3, add(0, 0) == 0) they pass 1, 2 and 1 of 2."""

    def propose(body: dict[str, Any], text: str) -> str:
        line = {0: "return a * b", 1: "return a + b"}.get(text.count("<PAST_VALUE>"), "return 3")
        return f"<IMPROVED_VARIABLE>\ndef add(a, b):\n    {line}\n</IMPROVED_VARIABLE>"

    fake.add_rule("<IMPROVED_VARIABLE>", propose)


def test_k_candidates_are_all_shown_with_scores_and_any_can_be_accepted(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    path = tmp_path / "work.ipynb"
    open_add_notebook(cells, path)
    three_proposals(fake_api)
    shown = cells.run("%tgoptimize --steps 1 --candidates 3")
    assert cells.error is None, shown
    view = candidate(cells)
    rows = {
        row.n: (row.candidate.values[0], row.candidate.score, row.candidate.chosen)
        for row in view.table.rows
    }
    bodies = {
        value.split("\n")[1].strip(): (score, chosen) for value, score, chosen in rows.values()
    }
    assert bodies == {
        "return a * b": (0.5, False),
        "return a + b": (1.0, True),
        "return 3": (0.5, False),
    }
    assert view.table.widget.layout.display == ""  # the table is on screen
    table = " ".join(
        plain(c.value) for box in view.table.widget.children[1:] for c in box.children[:5]
    )
    assert table.count("0.500") == 2 and "1.000" in table and "(kept)" in table
    # Every candidate is in the history: the kept one last, as the variable's candidate.
    entries = magics_of(cells).session.history.entries("add")
    assert [e.status for e in entries] == ["original", "alternative", "alternative", "candidate"]
    assert "return a + b" in entries[-1].value
    assert "alternative" in cells.run("%tghistory add")
    # The plain-text twin lists them and says how to accept any of them.
    assert "3 candidates of the last step" in shown and "%tgaccept add N" in shown

    # Accept a candidate that was not kept, from its row: the cell and the kernel get it.
    constant = next(n for n, (value, _, _) in rows.items() if "return 3" in value)
    button = view.table.accept_buttons[constant]
    assert not button.disabled
    button.click()
    assert cells.ns["add"](0, 0) == 3  # the kernel runs the accepted alternative
    assert nbformat.read(path, as_version=4).cells[1].source.rstrip().endswith("return 3")
    assert magics_of(cells).session.history.entries("add")[constant].status == "accepted"
    assert view.table.accept_buttons[constant].disabled  # it is in the cell now
    # ... and the kept one is still one click away.
    kept = entries[-1].n
    view.table.show_buttons[kept].click()
    assert view.compare_to.value == kept and "return a + b" in plain(view.side.value)
    view.table.accept_buttons[kept].click()
    assert cells.ns["add"](1, 2) == 3


def test_one_candidate_a_step_shows_no_table(cells: Cells, fake_api: FakeMessagesAPI) -> None:
    define(cells)
    fix_add(fake_api)
    shown = cells.run("%tgoptimize --steps 1")
    assert cells.error is None, shown
    assert candidate(cells).table.widget.layout.display == "none"
    assert "candidates of the last step" not in shown


def test_candidates_must_be_at_least_one(cells: Cells) -> None:
    define(cells)
    cells.run("%tgoptimize --candidates 0")
    assert "--candidates must be at least 1" in str(cells.error)
