"""Widgets (ipywidgets, no JavaScript of our own): a variable's candidate with its textual
gradient, its diff against the cell (side by side and unified), its scores, Accept / Reject /
Revert and an iteration selector; and the live progress of `%tgoptimize` with a Stop button.

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

from ..engines import Usage
from ..errors import TgMagicError
from . import render

if TYPE_CHECKING:
    from ..train import StepResult
    from .history import Entry
    from .session import Session

CELL = -1  # the "compare from" choice that means: the cell as it is now

_STATUS_COLOR = {
    True: "var(--jp-success-color1, #388e3c)",
    False: "var(--jp-error-color1, #d32f2f)",
}


class _View:
    """A widget with a plain-text twin: rich frontends show the widget, others the text."""

    widget: w.Widget

    def text(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = self.text()
        return bundle


def _status_html(message: str, ok: bool | None) -> str:
    color = f"; color: {_STATUS_COLOR[ok]}" if ok is not None else ""
    return (
        f'<div class="tg-magic-status" style="white-space: pre-wrap; margin: 2px 0{color}">'
        f"{html.escape(message)}</div>"
    )


def _entry_label(entry: Entry) -> str:
    first = entry.value.strip().splitlines()[0][:40] if entry.value.strip() else ""
    score = (
        f" · {render.score_change(entry.score, entry.val_score)}"
        if entry.score is not None or entry.val_score is not None
        else ""
    )
    return f"#{entry.n} {entry.status}{score} · {first}"


class CandidateView(_View):
    """One variable: a history entry (default: the latest candidate) against the cell."""

    def __init__(self, session: Session, name: str, n: int | None = None) -> None:
        self.session = session
        self.name = name
        self.kind = session.variable(name).kind
        self._quiet = False  # set while the dropdowns are refilled
        self.title = w.HTML()
        self.scores = w.HTML()
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
        for button, tip in (
            (self.accept_button, "write this iteration into the cell (its magic line is kept)"),
            (self.reject_button, "drop the candidate: the variable takes the cell's text again"),
            (self.revert_button, "put the original text back into the cell"),
        ):
            button.tooltip = tip
        self.accept_button.on_click(lambda _: self.accept())
        self.reject_button.on_click(lambda _: self.reject())
        self.revert_button.on_click(lambda _: self.revert())
        self.compare_from.observe(self._changed, names="value")
        self.compare_to.observe(self._changed, names="value")
        self.widget = w.VBox(
            [
                self.title,
                self.scores,
                w.HBox([self.compare_from, self.compare_to]),
                self.diff,
                w.Accordion(children=[self.gradient], titles=("Textual gradient",)),
                w.HBox([self.accept_button, self.reject_button, self.revert_button]),
                self.status,
            ]
        )
        self.widget.add_class("tg-magic-candidate")
        self.refresh(n)
        accordion = self.widget.children[4]
        accordion.selected_index = 0  # the gradient is open by default

    # -- what is shown --------------------------------------------------------------------
    @property
    def entries(self) -> list[Entry]:
        return self.session.history.entries(self.name)

    def _entry(self, n: int) -> Entry:
        return next(e for e in self.entries if e.n == n)

    def refresh(self, select: int | None = None) -> None:
        """Re-read the history (it grows) and redraw; `select` picks the "with" entry."""
        entries = self.entries
        numbers = [e.n for e in entries]
        if select is None:
            current = self.compare_to.value
            select = (
                current
                if current in numbers
                else self.session.entry(self.name, None, default="latest").n
            )
        previous_from = self.compare_from.value
        self._quiet = True
        try:
            labels = [(_entry_label(e), e.n) for e in entries]
            self.compare_from.options = [("the cell now", CELL), *labels]
            self.compare_to.options = labels
            self.compare_from.value = previous_from if previous_from in numbers else CELL
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

    def _changed(self, change: Any) -> None:
        if not self._quiet:
            self._draw()

    def _before(self) -> tuple[str, str]:
        if self.compare_from.value == CELL:
            return self.session.variable(self.name).cell_value, "the cell"
        return self._entry(self.compare_from.value).value, f"#{self.compare_from.value}"

    def _draw(self) -> None:
        cell = self.session.variable(self.name)
        entry = self._entry(self.compare_to.value)
        before, before_label = self._before()
        self.side.value = render.diff_html(before, entry.value, kind=self.kind, mode="side")
        self.unified.value = render.diff_html(before, entry.value, kind=self.kind, mode="unified")
        gate = "" if entry.kept else " (not kept: the validation score dropped)"
        self.title.value = (
            f"<b>{html.escape(self.name)}</b>: iteration #{entry.n} ({entry.status}){gate} "
            f"against {before_label}"
        )
        change = render.score_change(entry.score, entry.val_score)
        usage = f" · {html.escape(entry.usage)}" if entry.usage else ""
        self.scores.value = f"score before → after this step: <b>{change}</b>{usage}"
        markdown = render.gradients_markdown(self.name, entry.gradients)
        self.gradient.outputs = (
            {
                "output_type": "display_data",
                "data": {"text/markdown": markdown, "text/plain": markdown},
                "metadata": {},
            },
        )
        self.accept_button.description = f"Accept #{entry.n}"
        self.accept_button.disabled = entry.value == cell.cell_value
        self.reject_button.disabled = cell.variable.value == cell.cell_value
        original = self.entries[0]
        self.revert_button.description = f"Revert to #{original.n}"
        self.revert_button.disabled = cell.cell_value == original.value

    def text(self) -> str:
        entry = self._entry(self.compare_to.value)
        before, label = self._before()
        return (
            f"{self.name}: iteration #{entry.n} ({entry.status}) against {label}, score "
            f"{render.score_change(entry.score, entry.val_score)}\n"
            f"{render.unified_diff(before, entry.value, self.name)}\n"
            f"accept it with %tgaccept {self.name} {entry.n}, or reject it with "
            f"%tgrevert {self.name}"
        )

    # -- the buttons (they only call the session) -----------------------------------------
    def accept(self) -> None:
        n = self.compare_to.value
        self._act(lambda done: self.session.accept(self.name, n, done=done))

    def reject(self) -> None:
        self._act(lambda done: _now(done, self.session.reject(self.name)))

    def revert(self) -> None:
        self._act(lambda done: self.session.revert(self.name, None, done=done))

    def _act(self, call: Callable[[Callable[[bool, str], None]], str]) -> None:
        settled: list[bool] = []

        def done(ok: bool, message: str) -> None:
            settled.append(ok)
            self.status.value = _status_html(message, ok)
            self.refresh()

        try:
            message = call(done)
        except TgMagicError as exc:
            self.status.value = _status_html(str(exc), False)
            return
        if not settled:  # under way: JupyterLab confirms after the kernel is idle
            self.status.value = _status_html(message, None)
            self.refresh()


def _now(done: Callable[[bool, str], None], message: str) -> str:
    done(True, message)
    return message


class ProgressView(_View):
    """The live progress of %tgoptimize: steps, the score curve, tokens and cost, Stop."""

    def __init__(self, steps: int, *, can_stop: bool) -> None:
        self.steps = steps
        self.stop_requested = False
        self.points: list[float] = []
        self.usage = Usage()
        self.results = 0
        self.bar = w.IntProgress(
            value=0, min=0, max=steps, description=f"step 0/{steps}", bar_style="info"
        )
        self.label = w.HTML("starting…")
        self.curve = w.HTML(render.score_curve_svg([]))
        self.usage_label = w.HTML(self._usage_text())
        self.stop_button = w.Button(
            description="Stop",
            icon="stop",
            button_style="warning",
            tooltip="stop after the step under way (every candidate is kept)",
        )
        self.stop_button.on_click(lambda _: self.stop())
        hint = (
            "Stop ends the run after the step under way; interrupting the kernel (■) stops at "
            "once. Every candidate is kept."
            if can_stop
            else "Interrupt the kernel (■) to stop; every candidate is kept."
        )
        if not can_stop:
            self.stop_button.layout.display = "none"
        self.hint = w.HTML(f'<span style="color: var(--jp-ui-font-color2, #777)">{hint}</span>')
        self.widget = w.VBox(
            [
                w.HBox([self.bar, self.stop_button]),
                self.label,
                w.HBox([self.curve, w.VBox([self.usage_label, self.hint])]),
            ]
        )
        self.widget.add_class("tg-magic-progress")

    def _usage_text(self) -> str:
        u = self.usage
        return (
            f"<b>{u.tokens:,}</b> tokens ({u.input_tokens:,} in, {u.output_tokens:,} out) · "
            f"<b>${u.cost:.4f}</b> · {u.calls} calls"
            + (f" ({u.cached_calls} from cache)" if u.cached_calls else "")
        )

    def update(self, result: StepResult) -> None:
        """Show one finished step."""
        self.results += 1
        if result.val_after is not None or result.val_before is not None:
            if not self.points and result.val_before is not None:
                self.points.append(result.val_before)
            if result.val_after is not None:
                self.points.append(result.val_after)
        elif result.score is not None:
            self.points.append(result.score)
        self.usage = self.usage + result.usage
        self.bar.value = min(result.step, self.steps)
        self.bar.description = f"step {result.step}/{self.steps}"
        text = render.progress_text(result, self.steps)
        if result.failures:
            text += " (" + "; ".join(result.failures) + ")"
        if self.stop_requested:
            text += " · stopping…"
        self.label.value = html.escape(text)
        self.curve.value = render.score_curve_svg(self.points)
        self.usage_label.value = self._usage_text()

    def stop(self) -> None:
        """The Stop button: the run ends after the step under way."""
        self.stop_requested = True
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        self.label.value += html.escape(" · stopping after this step…")

    def finish(self, message: str) -> None:
        self.stop_button.layout.display = "none"
        self.bar.bar_style = "success" if self.results == self.steps else "warning"
        self.label.value = html.escape(message)

    def text(self) -> str:
        return f"%tgoptimize: step {self.results}/{self.steps}"
