"""End to end in a real browser: JupyterLab with the tg-magic extension, driven by Playwright on
Debian's chromium, the model being the loopback fake Messages API of this test process.

A notebook with a buggy code cell, a test cell and `%tgoptimize` is run; Accept in the diff
widget must rewrite the cell in the page (magic line kept, Ctrl-Z undoes it) and, once saved, in
the .ipynb file. A second notebook checks that the Stop button ends a run between steps.
Screenshots go to test-output/.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests import pipeline_fake as pf
from tests.fake_api import FakeMessagesAPI
from tests.jupyter_server import (
    LAB_ARGS,
    disable_extensions,
    jupyter_server,
    model_env,
    start_session,
)
from tests.test_notebook import BUGGY_ADD, FIXED_ADD, TESTS
from tests.test_programs import PIPELINE, TWO_CELLS

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
BUILT = ROOT / "tg_magic" / "labextension" / "package.json"
SHOTS = ROOT / "test-output"
EXAMPLE = ROOT / "examples" / "code_vs_tests.ipynb"
MAGIC_LINE = "%%tgvariable add --kind code"
RAN = re.compile(r"\[(\*|\d+)\]")  # the prompt of a cell that ran or is running
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show
WAIT = 60_000  # ms: the longest any single thing may take

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (bash scripts/setup.sh --test installs it)", allow_module_level=True
    )
if not BUILT.exists():
    pytest.skip(
        f"the labextension is not built ({BUILT} is missing): bash scripts/setup.sh",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

pytestmark = pytest.mark.timeout(240)


@dataclass
class Lab:
    url: str
    root: Path
    fake: FakeMessagesAPI


@contextmanager
def checkout_server(
    base: Path, fake: FakeMessagesAPI, *, app: str = "jupyterlab", disabled: tuple[str, ...] = ()
) -> Iterator[Lab]:
    """`python -m <app>` (jupyterlab, or notebook for Notebook 7) of this venv serving
    `base`/root, with this checkout's build of the extension, the extensions in `disabled` off,
    its kernels' model being `fake`; Jupyter's per-user folders are in `base`."""
    root, config = base / "root", base / "config"
    root.mkdir(parents=True)
    disable_extensions(config, *disabled)
    # This checkout's build of the extension, ahead of any installed copy (JUPYTER_PATH comes
    # first in JupyterLab's search path for prebuilt extensions).
    extensions = base / "jupyter-path" / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "tg-magic").symlink_to(BUILT.parent, target_is_directory=True)
    env = {
        k: v for k, v in os.environ.items() if k not in ("TG_MAGIC_NOTEBOOK", "JPY_SESSION_NAME")
    }
    env.update(
        model_env(fake, base),
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_PATH=str(base / "jupyter-path"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    with jupyter_server(
        [sys.executable, "-m", app],
        root=root,
        env=env,
        log=base / f"{app}.log",
        args=LAB_ARGS if app == "jupyterlab" else (),
    ) as url:
        yield Lab(url, root, fake)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab with this checkout's build of the extension, its model a fake of its own."""
    with FakeMessagesAPI() as fake, checkout_server(tmp_path_factory.mktemp("lab"), fake) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    try:
        yield page
    finally:
        try:  # how the page looked at the end, pass or fail
            shot(page, f"last-{request.node.name}")
        finally:
            context.close()


def write_notebook(path: Path, cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return nb


def shot(page: Any, name: str, element: Any = None) -> None:
    SHOTS.mkdir(exist_ok=True)
    (element or page).screenshot(path=str(SHOTS / f"{name}.png"))


def cells(page: Any) -> Any:
    """The cells of the notebook on show."""
    return page.locator(f"{PANEL} .jp-Cell")


def dismiss_dialogs(page: Any) -> None:
    """Accept a kernel-selection (or any) dialog: it would block every click."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        button = dialog.locator("button.jp-mod-accept")
        if button.count():
            button.first.click()
        else:
            page.keyboard.press("Enter")


def undisturbed(page: Any) -> bool:
    """Click through a kernel-selection (or any) dialog; True, for use inside a wait."""
    dismiss_dialogs(page)
    return True


def open_notebook(page: Any, lab: Lab, name: str, url: str | None = None) -> None:
    """Open a notebook at `url` (by default JupyterLab's page, in a workspace of its own: no
    notebook of an earlier test is restored beside this one) once its kernel session exists
    (no kernel dialog); wait until every cell is shown."""
    start_session(lab.url, name)
    page.goto(url or f"{lab.url}/lab/workspaces/{name.replace('.', '-')}/tree/{name}")
    cells(page).first.locator(".cm-content").wait_for()
    count = len(nbformat.read(lab.root / name, as_version=4).cells)
    # JupyterLab renders a notebook's cells progressively: wait for all of them.
    wait_until(lambda: undisturbed(page) and cells(page).count() >= count, "every cell to be shown")


def open_in_lab(page: Any, lab: Lab, name: str) -> None:
    """Open a notebook in JupyterLab and wait until its kernel is idle."""
    open_notebook(page, lab, name)
    indicator = page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator")
    wait_until(
        lambda: undisturbed(page) and indicator.get_attribute("data-status") == "idle",
        "the kernel",
    )


def open_and_run_all(page: Any, lab: Lab, name: str, upto: int | None = None) -> None:
    """Open a notebook and run its cells (the first `upto` of them), as a person would."""
    open_in_lab(page, lab, name)
    # Cell by cell with Shift+Enter: a Run All sent while the kernel's connection settles can be
    # lost in part (seen on a fresh machine); a lost Shift+Enter is simply pressed again.
    count = len(nbformat.read(lab.root / name, as_version=4).cells)
    for index in range(count if upto is None else upto):
        run_cell(page, index)


def run_cell(page: Any, index: int) -> None:
    """Run one cell with Shift+Enter (pressed again if the press was lost)."""
    prompt = cells(page).nth(index).locator(".jp-InputPrompt")
    before = prompt.inner_text()
    for _attempt in range(3):
        prompt.click()
        page.keyboard.press("Shift+Enter")
        try:
            wait_until(
                lambda: (
                    undisturbed(page)
                    and bool(RAN.search(prompt.inner_text()))
                    and prompt.inner_text() != before
                ),
                f"cell {index + 1} to run",
                10,
            )
            return
        except AssertionError:
            continue
    raise AssertionError(f"cell {index + 1} did not start")


def wait_for(page: Any, locator: Any, what: str, seconds: float = 60) -> None:
    """Wait until `locator` is visible, clicking through dialogs meanwhile."""
    wait_until(lambda: undisturbed(page) and locator.first.is_visible(), what, seconds)


def cell_text(page: Any, index: int) -> str:
    return str(cells(page).nth(index).locator(".cm-content").inner_text())


def wait_until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def accept_notebook(lab: Lab) -> tuple[Path, int]:
    """examples/code_vs_tests.ipynb (else the same cells), with %tggraph at the end; returns
    its path in the server's folder and the index of the code variable's cell."""
    nb = None
    if EXAMPLE.exists():
        nb = nbformat.read(EXAMPLE, as_version=4)
        if not any(c.source.startswith(MAGIC_LINE) for c in nb.cells):
            nb = None  # the example changed shape: build the notebook this test is about
    if nb is None:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nb.cells = [
            nbformat.v4.new_code_cell(source)
            for source in (
                "%load_ext tg_magic",
                f"{MAGIC_LINE}\n{BUGGY_ADD}",
                f"%%tgloss add_tests --target add --tests\n{TESTS}",
                "%tgoptimize --steps 1",
            )
        ]
    nb.cells.append(nbformat.v4.new_code_cell("%tggraph"))
    # Run later, one by one: the accepted code in use, and a revert from another cell.
    nb.cells.append(nbformat.v4.new_code_cell("print('sum:', add(1, 2))"))
    nb.cells.append(nbformat.v4.new_code_cell("%tgrevert add"))
    path = lab.root / "code_vs_tests.ipynb"
    nbformat.write(nb, path)
    return path, next(i for i, c in enumerate(nb.cells) if c.source.startswith(MAGIC_LINE))


def test_accept_in_the_widget_rewrites_the_cell_in_the_page_and_the_file(
    lab: Lab, page: Any
) -> None:
    lab.fake.add_rule(
        "<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{FIXED_ADD}</IMPROVED_VARIABLE>"
    )
    path, var = accept_notebook(lab)
    count = len(nbformat.read(path, as_version=4).cells)
    graph_cell, use_cell, revert_cell = count - 3, count - 2, count - 1
    started = time.monotonic()
    open_and_run_all(page, lab, path.name, upto=graph_cell + 1)

    widget = page.locator(".tg-magic-candidate").first
    wait_for(page, widget, "the candidate widget")
    cells(page).nth(graph_cell).locator(".jp-OutputArea-output").wait_for()
    widget.scroll_into_view_if_needed()
    shot(page, "01-candidate-widget")
    assert "return a + b" in widget.inner_text()
    assert "unified" in widget.inner_text().lower()
    tests = widget.locator(".tg-magic-tests")
    assert "tests pass" in tests.inner_text() and "✓" in tests.inner_text()

    # A double click makes one edit: the second click, while the first is in flight, does
    # nothing (one Ctrl-Z later brings the old text back).
    widget.locator("button", has_text="Accept").dblclick()
    status = widget.locator(".tg-magic-status")
    state = widget.locator(".tg-magic-state")
    wait_until(lambda: "add: accepted #1; the cell holds it now" in status.inner_text(), "edit")
    assert "updated in JupyterLab" in status.inner_text()
    source = cell_text(page, var)
    assert source.startswith(MAGIC_LINE), source
    assert "return a + b" in source and "return a - b" not in source
    # After Accept the diff shows what the accept changed, labelled so (not an empty diff).
    title = widget.locator(".widget-html").first.inner_text()
    assert "the cell before the last accept or revert → iteration #1" in title, title
    side = widget.locator("table.tg-magic-diff-side")
    assert "return a - b" in side.inner_text() and "return a + b" in side.inner_text()
    assert widget.locator("button", has_text="Accept").is_disabled()
    cells(page).nth(var).scroll_into_view_if_needed()
    shot(page, "02-accepted")

    # The kernel ran the accepted code: the next cell uses it without a re-run.
    run_cell(page, use_cell)
    used = cells(page).nth(use_cell).locator(".jp-OutputArea-output")
    wait_until(lambda: "sum: 3" in used.inner_text(), "the fixed add in use")

    # Saved, the file has it too (the edit went through the frontend, not behind its back).
    cells(page).nth(var).locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+s")

    def saved_source() -> str:
        return str(nbformat.read(path, as_version=4).cells[var].source)

    wait_until(lambda: "return a + b" in saved_source(), "the saved file")
    assert saved_source().startswith(MAGIC_LINE)

    # One undo step in the cell brings the old text back, and the widget follows the cell.
    cells(page).nth(var).locator(".cm-content").click()
    page.keyboard.press("Control+z")
    wait_until(lambda: "return a - b" in cell_text(page, var), "the undo", 10)
    assert cell_text(page, var).startswith(MAGIC_LINE)
    wait_until(lambda: "edited in the cell: back to #0" in state.inner_text(), "the widget")
    assert "the kernel still uses #1 until the cell runs" in state.inner_text()
    assert widget.locator("button", has_text="Accept").is_enabled()
    widget.scroll_into_view_if_needed()
    shot(page, "03-undone-in-the-cell")

    # Accept again, then %tgrevert from another cell: the first widget follows.
    widget.locator("button", has_text="Accept").click()
    wait_until(lambda: "accepted #1; the cell holds #1" in state.inner_text(), "the 2nd accept")
    wait_until(lambda: "return a + b" in cell_text(page, var), "the second edit", 10)
    run_cell(page, revert_cell)
    reverted = cells(page).nth(revert_cell).locator(".jp-OutputArea-output")
    wait_until(lambda: "add: reverted to #0" in reverted.inner_text(), "%tgrevert")
    wait_until(lambda: "reverted to #0; the cell holds #0" in state.inner_text(), "the widget")
    assert "return a - b" in cell_text(page, var)
    assert widget.locator("button", has_text="Revert").is_disabled()
    assert widget.locator("button", has_text="Accept").is_enabled()
    assert "add: accepted" not in widget.inner_text()  # no stale outcome under the buttons
    side = widget.locator("table.tg-magic-diff-side")  # the cell now against #1: not empty
    assert "return a - b" in side.inner_text() and "return a + b" in side.inner_text()
    widget.scroll_into_view_if_needed()
    shot(page, "04-reverted-from-another-cell")

    # %tggraph: the graph as inline SVG; each arrow's tooltip is the latest gradient.
    graph = cells(page).nth(graph_cell).locator(".jp-OutputArea-output")
    wait_for(page, graph.locator("svg.tg-magic-graph"), "the graph")
    graph.scroll_into_view_if_needed()
    shot(page, "05-graph", graph)
    assert "add_tests" in graph.inner_text()
    tip = graph.locator("svg.tg-magic-graph .tg-magic-edge title").first.text_content()
    assert tip.startswith("add → add_tests: latest gradient") and "could be improved" in tip
    print(f"browser flow took {time.monotonic() - started:.1f} s")


def slow_optimization(lab: Lab, name: str, tail: list[str]) -> Path:
    """A notebook whose %tgoptimize takes a few seconds a step (the fake answers slowly)."""
    lab.fake.add_rule(
        "<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{FIXED_ADD}</IMPROVED_VARIABLE>"
    )
    lab.fake.latency = 0.5
    path = lab.root / name
    write_notebook(
        path,
        [
            "%load_ext tg_magic\n%tgconfig --cache off",
            f"{MAGIC_LINE}\n{BUGGY_ADD}",
            # A test no version passes: the run always has something left to gain.
            f"%%tgloss add_tests --target add --tests\n{TESTS}assert add(2, 3) == 6\n",
            "%tgoptimize --steps 8",
            *tail,
        ],
    )
    return path


def steps_done(progress_text: str) -> int:
    return int(progress_text.split("stopped after ")[1].split(" ")[0])


def test_stop_button_ends_the_run_between_steps(lab: Lab, page: Any) -> None:
    path = slow_optimization(lab, "stop.ipynb", ["print('after the run')", "%tgaccept add"])
    try:
        open_and_run_all(page, lab, path.name)
        progress = page.locator(".tg-magic-progress")
        wait_for(page, progress, "the progress widget")
        wait_until(lambda: "step 1/8" in progress.inner_text(), "the first step")
        shot(page, "06-progress")
        progress.locator("button", has_text="Stop").click()
        wait_until(lambda: "stopped after" in progress.inner_text(), "the stop", 30)
        text = progress.inner_text()
        assert 1 <= steps_done(text) <= 3, text  # the step under way ends, then the run
        shot(page, "07-stopped")
        # The cells after it run as usual; the candidate is kept, and %tgaccept takes it: its
        # output is a display that JupyterLab's answer updates after the cell has ended.
        page.locator(".tg-magic-candidate").wait_for()
        wait_until(lambda: "after the run" in cells(page).nth(4).inner_text(), "the next cell")
        accepted = cells(page).nth(5).locator(".jp-OutputArea-output")
        wait_until(lambda: "updated in JupyterLab" in accepted.inner_text(), "%tgaccept")
        assert "return a + b" in cell_text(page, 1) and cell_text(page, 1).startswith(MAGIC_LINE)
        # The candidate widget follows %tgaccept: it shows what the accept changed.
        widget = page.locator(".tg-magic-candidate").first
        state = widget.locator(".tg-magic-state")
        wait_until(lambda: "accepted #" in state.inner_text(), "the widget to follow")
        side = widget.locator("table.tg-magic-diff-side")
        assert "return a - b" in side.inner_text() and "return a + b" in side.inner_text()
    finally:
        lab.fake.latency = 0.0


def test_kernel_interrupt_stops_the_run_at_once_and_keeps_the_candidates(
    lab: Lab, page: Any
) -> None:
    path = slow_optimization(lab, "interrupt.ipynb", ["print('after the run')"])
    try:
        open_and_run_all(page, lab, path.name)
        progress = page.locator(".tg-magic-progress")
        wait_for(page, progress, "the progress widget")
        wait_until(lambda: "step 1/8" in progress.inner_text(), "the first step")
        page.locator(f"{PANEL} [data-jp-item-name='interrupt'] button").click()  # ■
        wait_until(lambda: "stopped after" in progress.inner_text(), "the interrupt", 30)
        assert steps_done(progress.inner_text()) <= 2
        page.locator(".tg-magic-candidate").wait_for()  # the candidate of step 1 is kept
        wait_until(lambda: "after the run" in cells(page).nth(4).inner_text(), "the next cell")
        shot(page, "08-interrupted")
    finally:
        lab.fake.latency = 0.0


def test_accept_all_rewrites_each_prompt_cell_with_an_undo_of_its_own(lab: Lab, page: Any) -> None:
    pf.install(lab.fake)
    pf.write_data(lab.root)
    path = lab.root / "program.ipynb"
    loss = "%tgloss acc --data counting.jsonl --metric number --program pipeline"
    optimize = "%tgoptimize acc --steps 3 --batch 4 --val-frac 0.34"
    show = "print(extract.value, '|', answer.value)"
    write_notebook(path, ["%load_ext tg_magic", *TWO_CELLS, PIPELINE, loss, optimize, show])
    old = {1: TWO_CELLS[0], 2: TWO_CELLS[1]}
    new = {1: f"{old[1]} {pf.COUNTS}.", 2: f"{old[2]} {pf.ADD}."}
    expect = sync_api.expect

    def has_text(index: int, text: str) -> None:
        editor = cells(page).nth(index).locator(".cm-content")
        expect(editor).to_have_text(text, use_inner_text=True, timeout=WAIT)
        assert cell_text(page, index) == text  # and the magic line is a line of its own

    try:
        open_and_run_all(page, lab, path.name, upto=6)
        output = cells(page).nth(5).locator(".jp-Cell-outputArea")
        accept_all = output.locator(".tg-magic-accept-all")
        wait_for(page, accept_all, "the Accept all widget")
        # One candidate widget per variable, then Accept all; the cells are untouched so far.
        order = output.evaluate(
            "area => [...area.querySelectorAll('.tg-magic-candidate, .tg-magic-accept-all')]"
            ".map(e => e.classList.contains('tg-magic-accept-all') ? 'all' : 'one')"
        )
        assert order == ["one", "one", "all"], order
        assert (cell_text(page, 1), cell_text(page, 2)) == (old[1], old[2])
        accept_all.scroll_into_view_if_needed()
        shot(page, "09-accept-all")

        accept_all.locator("button", has_text="Accept all (extract, answer)").click()
        has_text(1, new[1])
        has_text(2, new[2])
        status = accept_all.locator(".tg-magic-status")
        for name in ("extract", "answer"):
            line = status.filter(has_text=f"{name}: accepted #1; the cell holds it now")
            expect(line).to_have_count(1, timeout=WAIT)
        accept_all.scroll_into_view_if_needed()
        shot(page, "10-accepted-all")

        # The kernel took both new values without the cells being run again.
        run_cell(page, 6)
        printed = cells(page).nth(6).locator(".jp-OutputArea-output")
        expect(printed).to_contain_text(
            f"{pf.EXTRACT} {pf.COUNTS}. | {pf.ANSWER} {pf.ADD}.", timeout=WAIT
        )

        # Each cell is its own undo step: Ctrl-Z in extract brings back only extract's old text.
        cells(page).nth(1).locator(".cm-content").click()
        page.keyboard.press("Control+z")
        has_text(1, old[1])
        has_text(2, new[2])
        shot(page, "11-undone-in-one-cell")
    finally:
        lab.fake.reset()
