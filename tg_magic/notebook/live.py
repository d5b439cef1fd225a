"""One %tgoptimize run and its progress, and the machinery that lets Stop be clicked during it.

In a Jupyter kernel a top-level `%tgoptimize` line is turned into an awaited call (an input
transformer), which makes the cell async: ipykernel then handles widget messages between steps,
so the Stop button is seen. Ctrl-C still raises inside a step, as in a plain cell.
"""

from __future__ import annotations

import argparse
import inspect
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from .. import config as tg_config
from . import display as out
from . import render, scores

if TYPE_CHECKING:
    from ..train import StepResult
    from .display import Display


class OptimizeRun:
    """One %tgoptimize: its steps, and their progress (a widget with Stop, or text lines)."""

    def __init__(self, shown: Display, args: argparse.Namespace, *, live: bool) -> None:
        self.shown, self.args, self.session = shown, args, shown.session
        overrides = {"engine": args.engine, "backward_engine": args.backward_engine}
        self.scope = ExitStack()  # this run's engines, until restore()
        self.scope.enter_context(tg_config.context(**{k: v for k, v in overrides.items() if v}))
        self.results: list[StepResult] = []
        self.interrupted = False
        self.view: Any = None
        self.handle: Any = None
        try:
            self.nothing = scores.nothing_to_do(self.session, args.loss, target=args.target_score)
            self.steps: Iterator[StepResult] = iter(())
            if self.nothing is None:
                self.steps = self.session.optimize(
                    args.loss,
                    steps=args.steps,
                    batch=args.batch,
                    val=args.val,
                    val_frac=args.val_frac,
                    patience=args.patience,
                    target=args.target_score,
                    candidates=args.candidates,
                )
        except BaseException:
            self.restore()
            raise
        if self.nothing is not None:
            return
        if shown.rich():
            from .progress import ProgressView

            self.view = ProgressView(args.steps, can_stop=live, engines=render.engines_text())
            shown.view(self.view)
        else:
            self.handle = out.updatable(f"starting… ({render.engines_text()})")

    @property
    def stop_requested(self) -> bool:
        return self.view is not None and self.view.stop_requested

    def show(self, result: StepResult) -> None:
        self.results.append(result)
        tests = self._tests(result)
        changed = self._changed(result)
        if self.view is not None:
            self.view.update(result, tests, changed)
        else:
            text = render.progress_text(result, self.args.steps, changed)
            out.update(self.handle, text + (f"\n{tests}" if tests else ""))

    def _changed(self, result: StepResult) -> list[str] | None:
        """Which variables the step changed, when it trains several (None: it trains one)."""
        cells = self.session.last_parameters
        if len(cells) < 2:
            return None
        moved = {id(p.variable) for p in result.proposals if p.kept and p.after != p.before}
        return [c.name for c in cells if id(c.variable) in moved]

    def _tests(self, result: StepResult) -> str:
        """The tests of the value this step left in the variable, one line each."""
        for proposal in result.proposals:
            for cell in self.session.last_parameters:
                if cell.variable is proposal.variable:
                    kept = proposal.after if proposal.kept else proposal.before
                    return render.tests_text(self.session.test_report(cell.name, kept))
        return ""

    def restore(self) -> None:
        self.scope.close()

    def report(self) -> None:
        """After the last step, or a stop: the outcome, then each candidate against its cell."""
        if self.nothing is not None:
            print(self.nothing)
            return
        n = len(self.results)
        stopped = self.interrupted or (self.stop_requested and n < self.args.steps)
        final = render.final_score(self.results)
        if stopped:
            message = f"stopped after {n} step(s); every candidate so far is kept{final}"
        elif self.session.stop_reason:
            message = f"done after {n} step(s): {self.session.stop_reason}"
        else:
            message = f"done: {n} step(s){final}"
        if self.view is not None:
            self.view.finish(message, stopped=stopped)
        else:
            print(message)
        changed = [c.name for c in self.session.last_parameters if c.variable.value != c.cell_value]
        for name in changed:
            self.shown.candidate(name)
        if len(changed) > 1:
            self.shown.changed_together(changed)


LIVE_PAUSE = 0.1  # seconds a live %tgoptimize yields to the kernel after each step

_MAGIC_CALL = re.compile(r"^get_ipython\(\)\.run_line_magic\('tgoptimize', (.*)\)$")


def live_transform(lines: list[str]) -> list[str]:
    """IPython input transformer: a top-level `%tgoptimize ...` line becomes an awaited call of
    tgoptimize_live, which makes the cell async, so the kernel can handle a Stop click during it."""
    result = []
    for line in lines:
        body = line.rstrip("\n")
        match = _MAGIC_CALL.match(body)
        if match:
            body = (
                "await get_ipython().magics_manager.registry['TgMagics']"
                f".tgoptimize_live({match.group(1)})"
            )
        result.append(body + line[len(line.rstrip("\n")) :])
    return result


def install_live(shell: Any) -> bool:
    """Use the live %tgoptimize where the kernel dispatches comm messages while an async cell
    runs (ipykernel 7); elsewhere a click is handled only after the cell, so no Stop button."""
    dispatch = getattr(getattr(shell, "kernel", None), "dispatch_shell", None)
    try:
        concurrent = dispatch is not None and "concurrent" in inspect.signature(dispatch).parameters
    except (TypeError, ValueError):
        concurrent = False
    if concurrent and live_transform not in shell.input_transformers_post:
        shell.input_transformers_post.append(live_transform)
    return concurrent


@contextmanager
def ctrl_c_raises() -> Iterator[None]:
    """In an async cell ipykernel turns Ctrl-C into a cancellation at the next `await`; a step
    runs without awaiting, so let Ctrl-C raise KeyboardInterrupt in it, as in a plain cell."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
