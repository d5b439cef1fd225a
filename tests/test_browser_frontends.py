"""Accept in a real browser where the tg-magic extension is absent, and in Notebook 7 where it is
there: JupyterLab started with the extension disabled (page_config.json's disabledExtensions),
and the VS Code path simulated in that JupyterLab (`__vsc_ipynb_file__` set by a first cell),
Notebook 7 (`jupyter notebook`) with the extension. The model is the loopback fake Messages API
of this test process; Playwright drives Debian's chromium as in tests/test_browser.py.

Without the extension, Accept runs the accepted code in the kernel and leaves the cell (and the
.ipynb) alone; the next run of the variable's cell puts the accepted text into the cell through
IPython's `set_next_input(..., replace=True)` payload, unless the cell was edited by hand since.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.fake_api import FakeMessagesAPI
from tests.test_browser import (
    CHROMIUM,
    MAGIC_LINE,
    WAIT,
    Lab,
    cell_text,
    cells,
    checkout_server,
    open_in_lab,
    open_notebook,
    run_cell,
    shot,
    sync_api,
    wait_for,
    wait_until,
    write_notebook,
)
from tests.test_notebook import BUGGY_ADD, FIXED_ADD, TESTS

pytestmark = pytest.mark.timeout(240)

FIXED_CELL = f"{MAGIC_LINE}\n{FIXED_ADD}".rstrip("\n")
OLD_CELL = f"{MAGIC_LINE}\n{BUGGY_ADD}".rstrip("\n")
STILL_SHOWS = "add: accepted #1; the kernel runs it; the cell still shows #0: run the cell of add "
# JupyterLab logs this when the kernel opens a comm to a target nobody registered: the kernel's
# ping of the extension, which is how the kernel learns the extension is absent.
COMM_ABSENT = "Exception opening new comm"
# Notebook 7.6.5 throws this on every page load (its tree page too, in a venv with nothing but
# `notebook`, with or without tg-magic): its shortcuts plugin handles a settings reload of
# @jupyterlab/docmanager-extension:plugin (started by the document registry's `changed`) before
# its own settings have loaded, and reads registry.plugins[shortcuts.id].schema
# (jupyter/notebook#7862). JupyterLab 4.6 loads in another order and never shows it.
SCHEMA_ERROR = "Cannot read properties of undefined (reading 'schema')"
NOTEBOOK_BUNDLE = "/static/notebook/notebook_core."
# The notebook of these tests: cell VAR is the variable, USE prints what the kernel's add does.
VAR, OPTIMIZE, USE = 1, 3, 4


@contextmanager
def serve(
    base: Path, fake: FakeMessagesAPI, *, app: str, disabled: tuple[str, ...] = ()
) -> Iterator[Lab]:
    """tests/test_browser.py's server of this checkout (`app` jupyterlab, or notebook for
    Notebook 7) with the extensions in `disabled` off and autosave off (the file on disk
    changes only when the test saves it, or when something writes it behind the page)."""
    settings = base / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    with checkout_server(base, fake, app=app, disabled=disabled) as lab:
        yield lab


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as api:
        yield api


@pytest.fixture(scope="module")
def bare_lab(tmp_path_factory: pytest.TempPathFactory, fake: FakeMessagesAPI) -> Iterator[Lab]:
    """JupyterLab with the tg-magic extension disabled."""
    with serve(
        tmp_path_factory.mktemp("bare-lab"), fake, app="jupyterlab", disabled=("tg-magic",)
    ) as lab:
        yield lab


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory, fake: FakeMessagesAPI) -> Iterator[Lab]:
    """Notebook 7 (`jupyter notebook`) with the tg-magic extension."""
    pytest.importorskip("notebook", reason='pip install "notebook>=7,<8"')
    with serve(tmp_path_factory.mktemp("notebook7"), fake, app="notebook") as lab:
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A page with the errors it logged: console.error messages and uncaught exceptions, each
    with where it came from (the script's URL, or the exception's stack)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[tuple[str, str]] = []  # (message, where)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append((f"uncaught: {e}", e.stack or "")))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append((message.text, json.dumps(message.location)))

    def from_tg_magic(self) -> list[tuple[str, str]]:
        """Errors logged by our extension's code (its message prefix, or its own files)."""
        return [e for e in self.errors if "tg-magic" in e[0] or "labextensions/tg-magic" in e[1]]

    def besides(self, *expected: str) -> list[tuple[str, str]]:
        """The errors whose message contains none of `expected`."""
        return [e for e in self.errors if not any(x in e[0] for x in expected)]


@pytest.fixture
def page(browser: Any, fake: FakeMessagesAPI, request: pytest.FixtureRequest) -> Iterator[Page]:
    fake.reset()
    fake.add_rule("<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{FIXED_ADD}</IMPROVED_VARIABLE>")
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(WAIT)
    watched = Page(context.new_page())
    try:
        yield watched
    finally:
        try:
            shot(watched.page, f"last-{request.node.name}")
        finally:
            context.close()
            for message, where in watched.errors:
                print(f"page error: {message}\n    at {where[:600]}")


def add_notebook(lab: Lab, name: str, first: str = "%load_ext tg_magic") -> Path:
    path = lab.root / name
    write_notebook(
        path,
        [
            first,
            OLD_CELL,
            f"%%tgloss add_tests --target add --tests\n{TESTS}",
            "%tgoptimize --steps 1",
            "print('sum:', add(1, 2), getattr(add, 'mine', ''))",
        ],
    )
    return path


def run_upto_the_candidate(page: Any) -> Any:
    """Run the cells up to %tgoptimize; return the candidate widget."""
    for index in range(OPTIMIZE + 1):
        run_cell(page, index)
    widget = page.locator(".tg-magic-candidate").first
    wait_for(page, widget, "the candidate widget")
    widget.scroll_into_view_if_needed()
    assert "return a + b" in widget.inner_text()
    return widget


def output(page: Any, index: int) -> Any:
    return cells(page).nth(index).locator(".jp-OutputArea-output")


def prompt_of(page: Any, index: int) -> str:
    return str(cells(page).nth(index).locator(".jp-InputPrompt").inner_text())


def run_and_read(page: Any, index: int, expected: str) -> str:
    """Run cell `index`, wait until it has finished and shows `expected`; its output."""
    run_cell(page, index)
    wait_until(lambda: "*" not in prompt_of(page, index), f"cell {index + 1} to finish")

    def shown() -> str:
        return "\n".join(output(page, index).all_inner_texts())

    wait_until(lambda: expected in shown(), expected)
    return shown()


def accept_without_extension(page: Any, lab: Lab, path: Path, frontend: str) -> None:
    """Open the notebook in JupyterLab, run it up to the candidate and Accept in the widget:
    the status says the cell still shows #0 and to run it once; the kernel runs the fix;
    neither the cell nor the file changes."""
    open_in_lab(page, lab, path.name)
    widget = run_upto_the_candidate(page)
    before = path.read_bytes()
    widget.locator("button", has_text="Accept").click()
    status = widget.locator(".tg-magic-status")
    wait_until(lambda: STILL_SHOWS in status.inner_text(), "the accept")
    text = status.inner_text()
    assert f"once to write #1 into it ({frontend} has no tg-magic extension)" in text, text
    assert "updated in" not in text and "JupyterLab" not in text, text
    state = widget.locator(".tg-magic-state").inner_text()
    assert "run the cell of add once to write #1 into it" in state, state
    assert cell_text(page, VAR) == OLD_CELL
    assert path.read_bytes() == before  # the kernel never writes a file the frontend holds
    widget.scroll_into_view_if_needed()
    shot(page, f"frontends-01-accepted-{path.stem}")
    assert "sum: 3" in run_and_read(page, USE, "sum: 3")  # the kernel runs the fix at once
    assert path.read_bytes() == before


def accepted_in_bare_lab(page: Any, lab: Lab, name: str) -> tuple[Path, bytes]:
    """The notebook `name`, accepted in JupyterLab without the extension (see
    accept_without_extension): its path, and its bytes as first written."""
    path = add_notebook(lab, name)
    written = path.read_bytes()
    accept_without_extension(page, lab, path, "this Jupyter frontend")
    return path, written


def test_lab_without_the_extension_the_cell_takes_the_fix_when_it_runs(
    bare_lab: Lab, page: Page
) -> None:
    p = page.page
    path, written = accepted_in_bare_lab(p, bare_lab, "bare.ipynb")
    before = path.read_bytes()

    # The variable's cell runs, still holding #0: the kernel's reply puts #1 into it.
    shown = run_and_read(p, VAR, "wrote #1")
    assert "add: wrote #1 into this cell (accepted #1); the kernel runs it" in shown, shown
    wait_until(lambda: cell_text(p, VAR) == FIXED_CELL, "the cell to take the fix", 10)
    assert cell_text(p, VAR).count("%%tgvariable") == 1
    cells(p).nth(VAR).scroll_into_view_if_needed()
    shot(p, "frontends-02-the-cell-took-the-fix")
    first_use = prompt_of(p, USE)
    assert "sum: 3" in run_and_read(p, USE, "sum: 3")
    assert prompt_of(p, USE) != first_use

    # A second run of the cell (now holding #1) changes nothing; the fix stays in use.
    shown = run_and_read(p, VAR, "code variable registered")
    assert "wrote" not in shown and "set aside" not in shown, shown
    assert cell_text(p, VAR) == FIXED_CELL
    second_use = prompt_of(p, USE)
    assert "sum: 3" in run_and_read(p, USE, "sum: 3")
    assert prompt_of(p, USE) != second_use
    assert path.read_bytes() == before == written  # nothing written behind the page, ever

    # The rewrite is an ordinary edit of the cell: Ctrl-Z brings #0 back.
    cells(p).nth(VAR).locator(".cm-content").click()
    p.keyboard.press("Control+z")
    wait_until(lambda: cell_text(p, VAR) == OLD_CELL, "the undo", 10)
    shot(p, "frontends-03-undone")
    assert not page.besides(COMM_ABSENT), page.errors


def test_lab_without_the_extension_a_hand_edit_before_the_run_wins(
    bare_lab: Lab, page: Page
) -> None:
    p = page.page
    path, written = accepted_in_bare_lab(p, bare_lab, "hand.ipynb")
    # The user types in the cell before running it (a line at its end).
    editor = cells(p).nth(VAR).locator(".cm-content")
    editor.click()
    p.keyboard.press("Control+End")
    p.keyboard.insert_text("\nadd.mine = 'mine'")
    mine = f"{OLD_CELL}\nadd.mine = 'mine'"
    wait_until(lambda: cell_text(p, VAR) == mine, "the hand edit", 10)
    shown = run_and_read(p, VAR, "your edit")
    assert (
        "add: your edit of the cell wins; #1 (accepted #1) was set aside "
        "(%tgaccept add 1 brings it back)"
    ) in shown, shown
    assert cell_text(p, VAR) == mine  # the page keeps what the user typed
    assert "sum: -1 mine" in run_and_read(p, USE, "sum: -1 mine")  # and the kernel runs it
    cells(p).nth(VAR).scroll_into_view_if_needed()
    shot(p, "frontends-04-hand-edit-wins")
    assert path.read_bytes() == written
    assert not page.besides(COMM_ABSENT), page.errors


def saved(path: Path, since: float) -> bool:
    return path.stat().st_mtime > since


def save_without_dialog(page: Any, path: Path) -> None:
    """Ctrl+S in the notebook: the file is written, and no dialog ("File Changed") came up."""
    since = path.stat().st_mtime
    cells(page).nth(VAR).locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+s")
    wait_until(lambda: page.locator(".jp-Dialog").count() > 0 or saved(path, since), "the save")
    assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").inner_text()
    assert saved(path, since)


def test_vs_code_path_writes_nothing_and_the_save_meets_no_file_changed_dialog(
    bare_lab: Lab, page: Page
) -> None:
    p = page.page
    path = bare_lab.root / "vscode.ipynb"
    add_notebook(bare_lab, path.name, f"__vsc_ipynb_file__ = {str(path)!r}\n%load_ext tg_magic")
    os.utime(path, (time.time() - 10, time.time() - 10))  # a save shows as a newer mtime
    accept_without_extension(p, bare_lab, path, "VS Code")
    save_without_dialog(p, path)
    on_disk = nbformat.read(path, as_version=4).cells[VAR].source
    assert on_disk == OLD_CELL  # the save wrote the page's cell: still #0

    run_and_read(p, VAR, "wrote #1")
    wait_until(lambda: cell_text(p, VAR) == FIXED_CELL, "the cell to take the fix", 10)
    save_without_dialog(p, path)
    assert nbformat.read(path, as_version=4).cells[VAR].source == FIXED_CELL
    shot(p, "frontends-05-vs-code-path-saved")

    # The check above would see the dialog: a file written behind the page meets it.
    nb = nbformat.read(path, as_version=4)
    nb.cells[USE].source += "  # written behind the page"
    nbformat.write(nb, path)
    later = time.time() + 5  # past JupyterLab's 500 ms tolerance for clocks
    os.utime(path, (later, later))
    cells(p).nth(VAR).locator(".jp-InputPrompt").click()
    p.keyboard.press("Control+s")
    dialog = p.locator(".jp-Dialog")
    wait_until(lambda: dialog.count() > 0, "the File Changed dialog", 10)
    assert "File Changed" in dialog.inner_text(), dialog.inner_text()
    dialog.locator("button.jp-mod-reject").first.click()
    assert not page.errors  # under "VS Code" the kernel does not even ping the extension


def test_notebook_7_with_the_extension(notebook7: Lab, page: Page) -> None:
    p = page.page
    path = add_notebook(notebook7, "nb7.ipynb")
    open_notebook(p, notebook7, path.name, f"{notebook7.url}/notebooks/{path.name}")
    assert "/notebooks/" in p.url and "/lab" not in p.url, p.url
    widget = run_upto_the_candidate(p)
    widget.locator("button", has_text="Accept").click()
    status = widget.locator(".tg-magic-status")
    wait_until(lambda: "add: accepted #1; the cell holds it now" in status.inner_text(), "edit")
    text = status.inner_text()
    assert "updated in Jupyter Notebook" in text and "JupyterLab" not in text, text
    assert cell_text(p, VAR) == FIXED_CELL
    assert "sum: 3" in run_and_read(p, USE, "sum: 3")
    widget.scroll_into_view_if_needed()
    shot(p, "frontends-06-notebook-7-accepted")
    # Nothing from our extension; the only error is Notebook 7's own (see SCHEMA_ERROR), thrown
    # in its bundle while the page loads.
    assert not page.from_tg_magic(), page.errors
    for message, where in page.errors:
        assert SCHEMA_ERROR in message and NOTEBOOK_BUNDLE in where, page.errors
