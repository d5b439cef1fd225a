""" "Accept all": after a run that changed several variables (a program's prompts, code cells
under one tests cell), one button writes every changed cell, each in its own edit (one undo
step per cell), and the kernel takes each new value. Imported only when shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as w

from ..errors import TgMagicError
from .edits import Outcome
from .widgets import View, status_html

if TYPE_CHECKING:
    from .session import Session


class AcceptAllView(View):
    """One button for the variables a run changed together; one line per outcome."""

    def __init__(self, session: Session, names: list[str]) -> None:
        self.session, self.names = session, names
        self.button = w.Button(
            description=f"Accept all ({', '.join(names)})",
            button_style="success",
            icon="check-double",
            tooltip="write each variable's latest candidate into its cell and run it",
            layout=w.Layout(width="auto"),
        )
        self.button.on_click(lambda _: self.accept())
        self.lines: dict[str, str] = {}
        self.status = w.HTML()
        self.widget = w.VBox([self.button, self.status])
        self.widget.add_class("tg-magic-accept-all")
        session.edits.subscribe(self._variable_changed)
        self._draw()

    def accept(self) -> None:
        """Accept each waiting variable's latest candidate; a click while edits are under way
        does nothing."""
        if any(name in self.session.edits.pending for name in self.names):
            return
        self.lines = {}
        for name in self.session.edits.waiting(self.names):

            def done(outcome: Outcome, name: str = name) -> None:
                self.lines[name] = status_html(outcome.message, outcome.ok)
                self._draw()

            try:
                message = self.session.edits.accept(name, None, done)
            except TgMagicError as exc:
                self.lines[name] = status_html(str(exc), False)
                continue
            self.lines.setdefault(name, status_html(message, None))
        self._draw()

    def _variable_changed(self, name: str) -> None:
        if name in self.names:
            self._draw()

    def _draw(self) -> None:
        pending = any(name in self.session.edits.pending for name in self.names)
        self.button.disabled = pending or not self.session.edits.waiting(self.names)
        self.status.value = "".join(self.lines.values())

    def text(self) -> str:
        return f"{', '.join(self.names)} changed: accept them all with %tgaccept --all"
