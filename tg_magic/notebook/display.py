"""Where the magics' output goes: widgets in a Jupyter frontend, text and Markdown elsewhere
(consoles, headless runs, which read the plain-text twin of every display)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.display import display

from ..errors import valid_text
from . import render

if TYPE_CHECKING:
    from .edits import Done, Outcome
    from .session import Session


def show(text: str, *, markdown: str | None = None, html: str | None = None) -> None:
    """Display rich output with a plain-text twin (consoles and tests read the text)."""
    bundle = {"text/plain": text}
    if markdown is not None:
        bundle["text/markdown"] = markdown
    if html is not None:
        bundle["text/html"] = html
    display(_valid(bundle), raw=True)


def _valid(bundle: dict[str, str]) -> dict[str, str]:
    """Every output as valid Unicode (a lone surrogate in a cell cannot be sent or saved)."""
    return {kind: valid_text(text) for kind, text in bundle.items()}


def show_markdown(markdown: str) -> None:
    show(markdown, markdown=markdown)


def updatable(text: str) -> Any:
    """A display that later calls can replace (see `update`)."""
    return display(_valid({"text/plain": text}), raw=True, display_id=True)


def update(handle: Any, text: str, *, markdown: bool = False) -> None:
    bundle = _valid({"text/plain": text, **({"text/markdown": text} if markdown else {})})
    if handle is not None:
        handle.update(bundle, raw=True)
    else:
        print(text)


class Display:
    """The session's output: `rich()` says whether widgets are shown; `views` are the widgets
    shown lately (newest last)."""

    def __init__(self, session: Session, rich: Callable[[], bool]) -> None:
        self.session = session
        self.rich = rich
        self.views: list[Any] = []

    def view(self, view: Any) -> None:
        display(view)
        self.views = [*self.views[-19:], view]

    def candidate(self, name: str) -> None:
        """A variable's candidate against its cell: a widget with buttons, or a diff."""
        if self.rich():
            from .widgets import CandidateView

            self.view(CandidateView(self.session, name))
            return
        cell = self.session.variable(name)
        show_markdown(render.diff_markdown(name, cell.cell_value, cell.variable.value))
        report = self.session.test_report(name, cell.variable.value)
        lines = render.tests_text(report)
        if lines:
            print(lines)
        print(f"accept it with %tgaccept {name}, or reject it with %tgrevert {name}")

    def forward(self, loss: Any) -> None:
        """%tgforward's result: the evaluation and its score, or the tests one by one (one report
        for the cells a tests loss runs together)."""
        session = self.session
        score = f" (score {render.score_text(loss.score)})" if loss.score is not None else ""
        reports: dict[int, tuple[list[str], Any]] = {}
        for cell in session.last_parameters:
            report = session.test_report(cell.name, cell.variable.value)
            if report is not None:
                reports.setdefault(id(report), ([], report))[0].append(cell.name)
        text = "\n".join(render.tests_text(r) for _, r in reports.values())
        markdown = "\n\n".join(render.tests_markdown(", ".join(n), r) for n, r in reports.values())
        head = f"**{loss.role_description}**{score}\n\n"
        if not text:
            show_markdown(head + loss.value)
            return
        show(f"{loss.role_description}{score}\n{text}", markdown=head + markdown)

    def changed_together(self, names: list[str]) -> None:
        """Several variables changed in one run: Accept all (or the magic that does it)."""
        if self.rich():
            from .accept_all import AcceptAllView

            self.view(AcceptAllView(self.session, names))
            return
        print(f"{', '.join(names)} changed: accept them all with %tgaccept --all")

    def accept_all(self) -> None:
        """Every variable whose latest candidate is not in its cell: each cell its own edit
        (one undo step each), each outcome its own line."""
        for name in self.session.edits.changed_names():
            self.applied(functools.partial(self.session.edits.accept, name, None))

    def applied(self, call: Callable[[Done], str]) -> None:
        """Show what an accept or a revert did. Through JupyterLab the outcome arrives after the
        cell ends, so it goes to a display that the callback updates."""
        shown: dict[str, Any] = {}  # the display, once there; an outcome that came before it

        def done(outcome: Outcome) -> None:
            text = outcome.message + (f"\n{outcome.output.rstrip()}" if outcome.output else "")
            if "handle" in shown:
                update(shown["handle"], text)
            else:
                shown["outcome"] = text

        message = call(done)  # bad input raises here, before anything is shown
        text = shown.get("outcome", message)
        if not self.rich() and "outcome" in shown:
            print(text)  # a console: printed once
            return
        shown["handle"] = updatable(text)
