"""Widgets (ipywidgets, no JavaScript of our own): a variable's candidate with its textual
gradient, its diff against the cell (side by side and unified), its scores, Accept / Reject /
Revert, an iteration selector and the table of a step's k candidates (`candidate_table.py`);
the live progress of `%tgoptimize` is `progress.py`.

They hold no optimization logic: the buttons call the session (accept, reject, revert) and the
views read its history. This module is imported only when a widget is shown, so `%load_ext
tg_magic` does not pay for ipywidgets. Each view also carries a plain-text twin (its text/plain),
which consoles and notebooks opened without the widget manager show instead.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..errors import TgMagicError
from . import diffs, render
from .candidate_table import CandidateTable
from .edits import Done, Outcome, first_changed_line, same

if TYPE_CHECKING:
    from .history import Entry
    from .session import CellVariable, Session

CELL = -1  # the "compare from" choice that means: the cell as it is now
PREVIOUS = -2  # ... and the one that means: the cell before the last accept or revert

_STATUS_COLOR = {
    True: "var(--jp-success-color1, #388e3c)",
    False: "var(--jp-error-color1, #d32f2f)",
}


class View:
    """A widget with a plain-text twin: rich frontends show the widget, others the text."""

    widget: w.Widget

    def text(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = self.text()
        return bundle


def status_html(message: str, ok: bool | None) -> str:
    color = f"; color: {_STATUS_COLOR[ok]}" if ok is not None else ""
    return (
        f'<div class="tg-magic-status" style="white-space: pre-wrap; margin: 2px 0{color}">'
        f"{html.escape(message)}</div>"
    )


def entry_label(entry: Entry, previous: Entry | None) -> str:
    """`#2 candidate · 1.000 · return a + b`: number, status, score, the first changed line."""
    score = entry.val_score if entry.val_score is not None else entry.score
    scored = f" · {render.score_text(score)}" if score is not None else ""
    line = first_changed_line(previous.value if previous else "", entry.value, 40)
    return f"#{entry.n} {entry.status}{scored} · {line}"


class CandidateView(View):
    """One variable: a history entry (default: the latest candidate) against the cell. It
    follows the cell: any accept, revert, reject or edit of the variable, from this widget,
    another one, a magic or the editor, redraws it."""

    def __init__(self, session: Session, name: str, n: int | None = None) -> None:
        self.session = session
        self.name = name
        self.kind = session.variable(name).kind
        self._quiet = False  # set while the dropdowns are refilled
        self.busy = False  # an edit from this widget is under way
        self.title = w.HTML()
        self.state = w.HTML()
        self.scores = w.HTML()
        self.tests = w.HTML()
        self.compare_from = w.Dropdown(description="compare", layout=w.Layout(width="45%"))
        self.compare_to = w.Dropdown(description="with", layout=w.Layout(width="45%"))
        self.side = w.HTML()
        self.unified = w.HTML()
        self.diff = w.Tab(children=[self.side, self.unified])
        self.diff.set_title(0, "Side by side")
        self.diff.set_title(1, "Unified")
        self.gradient = w.Output()
        self.accept_button = w.Button(description="Accept", button_style="success", icon="check")
        self.reject_button = w.Button(description="Reject", icon="times")
        self.revert_button = w.Button(description="Revert", icon="undo")
        self.status = w.HTML()
        self.output = w.Output()  # what accepted code printed when the kernel ran it
        self.table = CandidateTable(session, name, show=self.show, accept=self.accept)
        for button, tip in (
            (self.accept_button, "write this iteration into the cell and run it in the kernel"),
            (self.reject_button, "drop the candidate: the variable takes the cell's text again"),
            (self.revert_button, "put the original text back into the cell and run it"),
        ):
            button.tooltip = tip
        self.accept_button.on_click(lambda _: self.accept())
        self.reject_button.on_click(lambda _: self.reject())
        self.revert_button.on_click(lambda _: self.revert())
        self.compare_from.observe(self._changed, names="value")
        self.compare_to.observe(self._changed, names="value")
        self.accordion = w.Accordion(children=[self.gradient], titles=("Textual gradient",))
        self.widget = w.VBox(
            [
                self.title,
                self.state,
                self.scores,
                self.tests,
                self.table.widget,
                w.HBox([self.compare_from, self.compare_to]),
                self.diff,
                self.accordion,
                w.HBox([self.accept_button, self.reject_button, self.revert_button]),
                self.status,
                self.output,
            ]
        )
        self.widget.add_class("tg-magic-candidate")
        self.refresh(n)
        self.accordion.selected_index = 0  # the gradient is open by default
        session.edits.subscribe(self._variable_changed)

    # -- what is shown --------------------------------------------------------------------
    @property
    def entries(self) -> list[Entry]:
        return self.session.history.entries(self.name)

    def _entry(self, n: int) -> Entry:
        return next(e for e in self.entries if e.n == n)

    def _variable_changed(self, name: str) -> None:
        """Any change of the variable: the state line tells it; an older outcome and output of
        this widget no longer describe the cell, and the diff compares with the cell now."""
        if name == self.name:
            self.status.value = ""
            self.output.outputs = ()
            self.refresh(*self._telling())

    def _telling(self) -> tuple[int | None, int]:
        """(with, compare) after a change: after an accept, what it changed (the cell before it →
        the accepted iteration); otherwise (a revert, an edit) the cell now → the same iteration,
        which is what accepting it again would change."""
        cell = self.session.variable(self.name)
        put = self.session.edits.in_cell(self.name)
        if (
            cell.last_action.startswith("accepted")
            and put is not None
            and cell.previous_value
            and not same(put.value, cell.previous_value)
        ):
            return put.n, PREVIOUS
        return None, CELL

    def refresh(self, select: int | None = None, compare_from: int | None = None) -> None:
        """Re-read the history and the cell (both change) and redraw; `select` picks the
        "with" entry, `compare_from` the "compare" one."""
        entries = self.entries
        numbers = [e.n for e in entries]
        if select is None:
            current = self.compare_to.value
            select = (
                current
                if current in numbers
                else self.session.entry(self.name, None, default="latest").n
            )
        cell = self.session.variable(self.name)
        previous = cell.previous_value
        if compare_from is None:
            compare_from = self.compare_from.value
        self._quiet = True
        try:
            labels = [
                (entry_label(e, entries[i - 1] if i else None), e.n) for i, e in enumerate(entries)
            ]
            before = [("the cell before the last accept or revert", PREVIOUS)] if previous else []
            self.compare_from.options = [("the cell now", CELL), *before, *labels]
            known = numbers + [CELL] + ([PREVIOUS] if previous else [])
            self.compare_from.value = compare_from if compare_from in known else CELL
            self.compare_to.options = labels
            self.compare_to.value = select
        finally:
            self._quiet = False
        self._draw()

    def select(self, compare_from: int, compare_to: int) -> None:
        """Compare two iterations (CELL: the cell as it is now), as the dropdowns do."""
        self._quiet = True
        try:
            self.compare_from.value = compare_from
            self.compare_to.value = compare_to
        finally:
            self._quiet = False
        self._draw()

    def show(self, n: int) -> None:
        """Put iteration n in the "with" selector (the candidate table's Show)."""
        self.select(self.compare_from.value, n)

    def _changed(self, change: Any) -> None:
        if not self._quiet:
            self._draw()

    def _before(self) -> tuple[str, str]:
        cell = self.session.variable(self.name)
        if self.compare_from.value == CELL:
            return cell.cell_value, "the cell now"
        if self.compare_from.value == PREVIOUS:
            return cell.previous_value, "the cell before the last accept or revert"
        return self._entry(self.compare_from.value).value, f"#{self.compare_from.value}"

    def _draw(self) -> None:
        cell = self.session.variable(self.name)
        edits = self.session.edits
        entry = self._entry(self.compare_to.value)
        before, before_label = self._before()
        self.side.value = diffs.diff_html(before, entry.value, kind=self.kind, mode="side")
        self.unified.value = diffs.diff_html(before, entry.value, kind=self.kind, mode="unified")
        gate = "" if entry.kept else " (not kept: the validation score dropped)"
        self.title.value = (
            f"<b>{html.escape(self.name)}</b>: {html.escape(before_label)} → "
            f"iteration #{entry.n} ({entry.status}){gate}"
        )
        self.state.value = (
            f'<div class="tg-magic-state">{html.escape(edits.state(self.name))}</div>'
        )
        change = render.score_change(entry.score, entry.val_score)
        usage = f" · {html.escape(entry.usage)}" if entry.usage else ""
        self.scores.value = f"score before → after this step: <b>{change}</b>{usage}"
        self.tests.value = render.tests_html(self.session.test_report(self.name, entry.value))
        markdown = render.gradients_markdown(self.name, entry.gradients)
        self.gradient.outputs = (
            {
                "output_type": "display_data",
                "data": {"text/markdown": markdown, "text/plain": markdown},
                "metadata": {},
            },
        )
        busy = self.busy or self.name in edits.pending
        self.accept_button.description = f"Accept #{entry.n}"
        self.accept_button.disabled = busy or _in_use(entry, cell)
        self.table.refresh(entry.n, lambda e: not (busy or _in_use(e, cell)))
        latest = self.session.history.latest(self.name)
        candidate = latest is not None and latest.status == "candidate"
        self.reject_button.disabled = busy or not (
            candidate or not same(cell.variable.value, cell.kernel_value)
        )
        original = self.entries[0]
        self.revert_button.description = f"Revert to #{original.n}"
        self.revert_button.disabled = busy or (
            same(original.value, cell.cell_value) and same(original.value, cell.kernel_value)
        )

    def text(self) -> str:
        entry = self._entry(self.compare_to.value)
        before, label = self._before()
        tests = render.tests_text(self.session.test_report(self.name, entry.value))
        return (
            f"{self.name}: iteration #{entry.n} ({entry.status}) against {label}, score "
            f"{render.score_change(entry.score, entry.val_score)}\n"
            + (f"{tests}\n" if tests else "")
            + self.table.text()
            + f"{render.unified_diff(before, entry.value, self.name)}\n"
            f"accept it with %tgaccept {self.name} {entry.n}, or reject it with "
            f"%tgrevert {self.name}"
        )

    # -- the buttons (they only call the session) -----------------------------------------
    def accept(self, n: int | None = None) -> None:
        """Accept iteration n (default: the one in the "with" selector)."""
        n = self.compare_to.value if n is None else n
        self._act(lambda done: self.session.edits.accept(self.name, n, done), puts=True)

    def reject(self) -> None:
        self._act(lambda done: _now(done, self.session.edits.reject(self.name)), puts=False)

    def revert(self) -> None:
        self._act(lambda done: self.session.edits.revert(self.name, None, done), puts=True)

    def _act(self, call: Callable[[Done], str], *, puts: bool) -> None:
        """Run one edit; a click while an edit is under way does nothing."""
        if self.busy or self.name in self.session.edits.pending:
            return
        settled: list[Outcome] = []

        def done(outcome: Outcome) -> None:
            settled.append(outcome)
            self.busy = False
            self.status.value = status_html(outcome.message, outcome.ok)
            self.output.outputs = (
                (
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": outcome.output,
                    },
                )
                if outcome.output
                else ()
            )
            if puts and outcome.ok:
                self.refresh(*self._telling())

        self.busy = True
        try:
            message = call(done)
        except TgMagicError as exc:
            self.busy = False
            self.status.value = status_html(str(exc), False)
            self._draw()
            return
        if not settled:  # under way: JupyterLab confirms after the kernel is idle
            self.status.value = status_html(message, None)
            self._draw()


def _in_use(entry: Entry, cell: CellVariable) -> bool:
    """The cell and the kernel hold this iteration already: nothing to accept."""
    return same(entry.value, cell.cell_value) and same(entry.value, cell.kernel_value)


def _now(done: Done, message: str) -> str:
    done(Outcome(True, message))
    return message
