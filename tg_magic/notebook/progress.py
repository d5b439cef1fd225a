"""The live progress of `%tgoptimize` (ipywidgets): a bar, the score curve, the tests of the
value the last step left, tokens and cost, and a Stop button that ends the run after the step
under way. Imported only when shown."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import ipywidgets as w

from ..engines import Usage, pacing
from . import render
from .widgets import View

if TYPE_CHECKING:
    from ..train import StepResult


class ProgressView(View):
    """The live progress of %tgoptimize: steps, the score curve, tokens and cost, Stop."""

    def __init__(self, steps: int, *, can_stop: bool, engines: str = "") -> None:
        self.steps = steps
        self.stop_requested = False
        self.points: list[float] = []
        self.usage = Usage()
        self.results = 0
        self.bar = w.IntProgress(
            value=0, min=0, max=steps, description=f"step 0/{steps}", bar_style="info"
        )
        self.label = w.HTML("starting…")
        self.waiting = w.HTML()  # while model calls wait for the provider's rate limit
        pacing.watch(self.rate_limited)
        self.steps_done: list[str] = []  # one line a step: its score, what it changed
        self.log = w.HTML()
        self.tests = w.HTML()
        self.engines = w.HTML(
            f'<span style="color: var(--jp-ui-font-color2, #777)">{html.escape(engines)}</span>'
        )
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
                self.waiting,
                self.log,
                self.tests,
                w.HBox([self.curve, w.VBox([self.usage_label, self.engines, self.hint])]),
            ]
        )
        self.widget.add_class("tg-magic-progress")

    def _usage_text(self) -> str:
        u = self.usage
        prompt_cache = u.prompt_cache_text()
        return (
            f"<b>{u.tokens:,}</b> tokens ({u.all_input_tokens:,} in, {u.output_tokens:,} out) · "
            f"<b>${u.cost:.4f}</b> · {u.calls} calls"
            + (f" ({u.cached_calls} from cache)" if u.cached_calls else "")
            + (f"<br>{html.escape(prompt_cache)}" if prompt_cache else "")
        )

    def update(self, result: StepResult, tests: str = "", changed: list[str] | None = None) -> None:
        """Show one finished step (and the tests of the value it left, one line each)."""
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
        text = render.progress_text(result, self.steps, changed)
        if self.stop_requested:
            text += " · stopping…"
        self.label.value = html.escape(text)
        self.steps_done.append(text)
        self.log.value = (
            '<div style="color: var(--jp-ui-font-color2, #777); font-size: 12px">'
            + "<br>".join(html.escape(line) for line in self.steps_done)
            + "</div>"
        )
        self.tests.value = (
            f'<pre style="margin: 2px 0; white-space: pre-wrap">{html.escape(tests)}</pre>'
            if tests
            else ""
        )
        self.curve.value = render.score_curve_svg(self.points)
        self.usage_label.value = self._usage_text()

    def rate_limited(self, note: str) -> None:
        """Model calls started ("..." why) or stopped ("") waiting for a provider's limit."""
        text = f"waiting for the provider's rate limit ({note})" if note else ""
        self.waiting.value = (
            f'<span style="color: var(--jp-warn-color1, #b26b00)">{html.escape(text)}</span>'
            if text
            else ""
        )

    def stop(self) -> None:
        """The Stop button: the run ends after the step under way."""
        self.stop_requested = True
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        self.label.value += html.escape(" · stopping after this step…")

    def finish(self, message: str, *, stopped: bool = False) -> None:
        """The final state: the outcome with the final score; no Stop, no hint about it. A run
        that ended early with nothing left to gain is complete; one stopped by the user is not."""
        self.stop_button.layout.display = "none"
        self.hint.layout.display = "none"
        pacing.unwatch(self.rate_limited)
        self.rate_limited("")
        self.bar.bar_style = "warning" if stopped else "success"
        if not stopped:
            self.bar.value = self.bar.max
        self.label.value = html.escape(message)

    def text(self) -> str:
        return f"%tgoptimize: step {self.results}/{self.steps}"
