"""The k candidates of a variable's last `%tgoptimize --candidates K` step, as a table in the
candidate widget: number, validation score, how each was made, its first changed line, which
one the step kept. Each row's Show puts it in the widget's diff; its Accept writes it into the
cell (through the widget's Accept, so the same edit path runs it in the kernel).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as w

from . import render
from .edits import first_changed_line

if TYPE_CHECKING:
    from .history import Entry
    from .records import StepCandidate
    from .session import Session

_WIDTHS = ("4em", "5em", "14em", "22em", "7em")  # number, score, made from, line, status


def row_text(row: StepCandidate, entry: Entry | None) -> list[str]:
    """The cells of one row: `#3`, `0.500`, `feedback 1+2`, first changed line, status."""
    status = entry.status if entry is not None else "?"
    kept = " (kept)" if row.candidate.chosen and status != "accepted" else ""
    return [
        f"#{row.n}",
        render.score_text(row.candidate.score),
        row.candidate.source,
        first_changed_line(row.before, entry.value if entry else "", 60),
        status + kept,
    ]


class CandidateTable:
    """The rows of the last step; hidden when the last step had one candidate (plain TGD)."""

    def __init__(
        self,
        session: Session,
        name: str,
        *,
        show: Callable[[int], None],
        accept: Callable[[int], None],
    ) -> None:
        self.session, self.name = session, name
        self._show, self._accept = show, accept
        self.accept_buttons: dict[int, w.Button] = {}
        self.show_buttons: dict[int, w.Button] = {}
        self.widget = w.VBox()
        self.widget.add_class("tg-magic-candidates")

    @property
    def rows(self) -> list[StepCandidate]:
        return self.session.step_candidates.get(self.name, [])

    def _entries(self) -> dict[int, Entry]:
        return {e.n: e for e in self.session.history.entries(self.name)}

    def refresh(self, selected: int, can_accept: Callable[[Entry], bool]) -> None:
        """Redraw from the history (statuses change on accept): `selected` is the row shown in
        the diff; `can_accept(entry)` says whether its Accept is enabled now."""
        rows, entries = self.rows, self._entries()
        self.widget.layout.display = "" if len(rows) > 1 else "none"
        self.accept_buttons, self.show_buttons = {}, {}
        lines: list[w.Widget] = [
            w.HTML(
                f"<b>{len(rows)} candidates of the last step</b>, scored on validation "
                "(the best is kept; accept any of them):"
            )
        ]
        for row in rows:
            entry = entries.get(row.n)
            cells = [
                w.HTML(
                    f"<b>{html.escape(text)}</b>" if row.n == selected else html.escape(text),
                    layout=w.Layout(width=width, overflow="hidden"),
                )
                for text, width in zip(row_text(row, entry), _WIDTHS, strict=True)
            ]
            show = w.Button(description="Show", layout=w.Layout(width="5em"))
            show.tooltip = f"compare #{row.n} in the diff below"
            show.disabled = row.n == selected
            show.on_click(lambda _, n=row.n: self._show(n))
            accept = w.Button(description=f"Accept #{row.n}", layout=w.Layout(width="8em"))
            accept.tooltip = "write this candidate into the cell and run it in the kernel"
            accept.disabled = entry is None or not can_accept(entry)
            accept.on_click(lambda _, n=row.n: self._accept(n))
            self.show_buttons[row.n], self.accept_buttons[row.n] = show, accept
            lines.append(w.HBox([*cells, show, accept]))
        self.widget.children = lines

    def text(self) -> str:
        """The plain-text twin: one line a candidate, and how to accept any of them."""
        rows, entries = self.rows, self._entries()
        if len(rows) < 2:
            return ""
        lines = [f"{len(rows)} candidates of the last step (validation score, made from):"]
        lines += ["  " + " · ".join(row_text(r, entries.get(r.n))) for r in rows]
        lines.append(f"accept any of them with %tgaccept {self.name} N")
        return "\n".join(lines) + "\n"
