"""The magics: parse the line, hand the cell to the session, show what comes back."""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import os
import re
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode, default, observe

from .. import config as tg_config
from ..engines import METER
from ..errors import TgMagicError
from ..hints import hint_markdown
from . import frontend, render
from .apply import Done
from .session import Session

if TYPE_CHECKING:
    from ..train import StepResult


class _Help(Exception):
    """--help was answered."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and answers --help without exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message.strip())
        raise _Help


def _parser(prog: str, description: str) -> _Parser:
    return _Parser(prog=prog, description=description, add_help=True)


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input becomes one clear line (UsageError, no traceback); Ctrl-C stops cleanly."""

    @functools.wraps(method)
    def wrapper(self: TgMagics, *args: Any) -> Any:
        try:
            return method(self, *args)
        except _Help:
            return None
        except TgMagicError as exc:
            raise UsageError(str(exc)) from None

    return wrapper


@magics_class
class TgMagics(Magics):
    """TextGrad in the notebook. Settings: `%config TgMagics.engine = "anthropic:..."`."""

    engine = Unicode(
        "", help="Forward engine spec; empty: Claude if ANTHROPIC_API_KEY is set, else local"
    ).tag(config=True)
    backward_engine = Unicode("", help="Engine for gradients and steps; empty: same rule").tag(
        config=True
    )
    concurrency = Int(16, help="Model calls in flight at once").tag(config=True)
    budget_dollars = Float(None, allow_none=True, help="Stop before spending more").tag(config=True)
    budget_tokens = Int(None, allow_none=True, help="Stop before using more tokens").tag(
        config=True
    )
    cache = Unicode("", help="Cache file, or 'off'; empty: the user cache folder").tag(config=True)
    notebook = Unicode("", help="Path of this notebook's .ipynb (found by itself in Jupyter)").tag(
        config=True
    )
    feedback_only = Bool(False, help="Classroom mode: hints only, no steps or accept").tag(
        config=True
    )
    widgets = CaselessStrEnum(
        ("auto", "on", "off"),
        "auto",
        help="Show diffs and progress as widgets; auto: in a Jupyter kernel, not headless",
    ).tag(config=True)

    # The traitlets start from the library's settings (tg_magic.config, which reads the
    # environment) and write back to them: one setting, whatever route changed it.
    @default("engine")
    def _engine_default(self) -> str:
        return _spec(tg_config.settings.engine)

    @default("backward_engine")
    def _backward_engine_default(self) -> str:
        return _spec(tg_config.settings.backward_engine)

    @default("concurrency")
    def _concurrency_default(self) -> int:
        return int(tg_config.settings.concurrency)

    @default("feedback_only")
    def _feedback_only_default(self) -> bool:
        return bool(tg_config.settings.feedback_only)

    @default("notebook")
    def _notebook_default(self) -> str:
        return tg_config.settings.notebook or ""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.session = Session(shell.user_ns if shell is not None else {})
        self._cell_id = ""
        if shell is not None:
            shell.events.register("pre_run_cell", self._pre_run_cell)
        self.session.set_notebook(self.notebook or _find_notebook(self.session.namespace))
        self.session.frontend_holds_file = bool(
            os.environ.get("JPY_SESSION_NAME") and not tg_config.settings.notebook
        )
        self.session.frontend = frontend.attach(shell)  # pings: presence known by the next cell
        self.live = self._rich() and _install_live(shell)
        self.views: list[Any] = []  # the widgets shown lately (newest last)

    def _pre_run_cell(self, info: Any) -> None:
        self._cell_id = getattr(info, "cell_id", None) or _kernel_cell_id(self.shell) or ""

    # -- settings -----------------------------------------------------------------------
    @observe("engine", "backward_engine")
    def _engines_changed(self, change: Any) -> None:
        tg_config.configure(**{change["name"]: change["new"] or None})

    @observe("concurrency")
    def _concurrency_changed(self, change: Any) -> None:
        tg_config.configure(concurrency=self.concurrency)

    @observe("budget_dollars", "budget_tokens")
    def _budget_changed(self, change: Any) -> None:
        METER.set_budget(self.budget_dollars, self.budget_tokens)

    @observe("cache")
    def _cache_changed(self, change: Any) -> None:
        tg_config.configure(cache=self.cache or None)

    @observe("notebook")
    def _notebook_changed(self, change: Any) -> None:
        self.session.set_notebook(self.notebook or None)
        self.session.frontend_holds_file = False

    @observe("feedback_only")
    def _feedback_changed(self, change: Any) -> None:
        tg_config.configure(feedback_only=self.feedback_only)

    def _no_feedback_only(self, what: str) -> None:
        if tg_config.settings.feedback_only:
            raise UsageError(
                f"{what} is disabled in feedback-only mode: use %tggrad VARIABLE for a hint"
            )

    # -- cells ------------------------------------------------------------------------------
    @cell_magic
    @_guarded
    def tgvariable(self, line: str, cell: str) -> None:
        """%%tgvariable NAME [--role TEXT] [--kind prompt|code|text] [--no-grad]"""
        p = _parser("%%tgvariable", "Register this cell as a variable of the graph.")
        p.add_argument("name")
        p.add_argument("--role", default=None, help="what the text is, e.g. 'system prompt'")
        p.add_argument("--kind", default="prompt", choices=["prompt", "code", "text"])
        p.add_argument("--no-grad", action="store_true", help="use it, but never change it")
        args = p.parse_args(_split(line))
        entry = self.session.define_variable(
            args.name,
            cell,
            cell_id=self._cell_id,
            magic_line=f"%%tgvariable {line.strip()}",
            kind=args.kind,
            role=args.role,
            requires_grad=not args.no_grad,
        )
        shell: Any = self.shell
        shell.user_ns[args.name] = entry.variable
        if args.kind == "code":
            result = shell.run_cell(cell, store_history=False)
            if not result.success:
                return
        print(f"{args.name}: {args.kind} variable registered ({len(cell.splitlines())} lines)")

    @line_cell_magic
    @_guarded
    def tgloss(self, line: str, cell: str | None = None) -> None:
        """%%tgloss NAME --target VAR [--tests | --judge | --data FILE --metric M [--model E]]
        (a --data loss needs no body: `%tgloss NAME --target VAR --data FILE` works too)"""
        cell = cell or ""
        p = _parser("%%tgloss", "Register this cell as a loss: what 'better' means.")
        p.add_argument("name")
        p.add_argument("--target", help="the variable this loss evaluates")
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("--tests", action="store_true", help="the body is Python tests")
        mode.add_argument("--judge", action="store_true", help="the body instructs an LLM judge")
        mode.add_argument("--data", help="a JSONL/CSV file with input and target columns")
        p.add_argument("--metric", default="exact", help="exact | number | contains | python:FUNC")
        p.add_argument("--model", default=None, help="the forward model for --data")
        args = p.parse_args(_split(line))
        metric: Any = args.metric
        if metric.startswith("python:"):
            fn = self.session.namespace.get(metric[len("python:") :])
            if not callable(fn):
                raise UsageError(
                    f"--metric {metric}: define that function (prediction, target) -> score first"
                )
            metric = fn
        elif args.metric != "exact" and not args.data:
            raise UsageError("--metric needs a data set: add --data FILE.jsonl")
        loss_mode = "tests" if args.tests else "data" if args.data else "judge"
        loss = self.session.define_loss(
            args.name,
            cell,
            cell_id=self._cell_id,
            target=args.target,
            mode=loss_mode,
            data=args.data,
            metric=metric,
            model=args.model,
        )
        extra = f", {len(loss.examples)} examples" if loss.examples else ""
        print(f"{args.name}: {loss_mode} loss on {loss.target}{extra}")
        if loss_mode == "tests":
            from ..sandbox import containment

            print(f"tests run in a child process; {containment()}")

    # -- running ----------------------------------------------------------------------------
    def _optimize_run(self, line: str, *, live: bool) -> _Run:
        """Parse %tgoptimize's line and start the run (bad input fails here, before any step)."""
        self._no_feedback_only("%tgoptimize")
        p = _parser("%tgoptimize", "Mini-batch textual gradient descent with a validation gate.")
        p.add_argument("loss", nargs="?", help="the loss to minimise (default: all)")
        p.add_argument("--steps", type=int, default=3)
        p.add_argument("--batch", type=int, default=4)
        val = p.add_mutually_exclusive_group()
        val.add_argument("--val", help="validation data file (JSONL/CSV)")
        val.add_argument("--val-frac", type=float, help="hold out this fraction for validation")
        p.add_argument("--engine", help="forward engine for this run")
        p.add_argument("--backward-engine", help="gradient and step engine for this run")
        args = p.parse_args(_split(line))
        return _Run(self, args, live=live)

    @line_magic
    @_guarded
    def tgoptimize(self, line: str) -> None:
        """%tgoptimize [LOSS] [--steps N] [--batch B] [--val FILE | --val-frac F] [--engine E]"""
        run = self._optimize_run(line, live=False)
        try:
            for result in run.steps:
                run.show(result)
                if run.stop_requested:
                    break
        except KeyboardInterrupt:
            run.interrupted = True
        finally:
            run.restore()
        run.report()

    async def tgoptimize_live(self, line: str) -> None:
        """%tgoptimize run as an async cell in a Jupyter kernel (see _live_transform): a step runs
        as usual, then the cell yields to the kernel for a moment, which handles widget messages
        then (ipykernel dispatches comms while an async cell runs), so Stop is seen between steps.
        """
        try:
            run = self._optimize_run(line, live=True)
        except _Help:
            return
        except TgMagicError as exc:
            raise UsageError(str(exc)) from None
        steps = iter(run.steps)
        try:
            while not run.stop_requested:
                with _ctrl_c_raises():
                    result = next(steps, None)
                if result is None:
                    break
                run.show(result)
                await asyncio.sleep(LIVE_PAUSE)  # the Stop button's click is handled here
        except (KeyboardInterrupt, asyncio.CancelledError):
            run.interrupted = True
        except TgMagicError as exc:
            raise UsageError(str(exc)) from None
        finally:
            run.restore()
        run.report()

    @line_magic
    @_guarded
    def tgforward(self, line: str) -> None:
        """%tgforward [LOSS]: run the graph and show the evaluation."""
        p = _parser("%tgforward", "Run the forward pass of a loss and show its value.")
        p.add_argument("loss", nargs="?")
        args = p.parse_args(_split(line))
        loss = self.session.forward(args.loss)
        score = f" (score {render.score_text(loss.score)})" if loss.score is not None else ""
        _md(f"**{loss.role_description}**{score}\n\n{loss.value}")

    @line_magic
    @_guarded
    def tgbackward(self, line: str) -> None:
        """%tgbackward [LOSS]: compute the textual gradients and show them."""
        p = _parser("%tgbackward", "Compute textual gradients for the variables of a loss.")
        p.add_argument("loss", nargs="?")
        args = p.parse_args(_split(line))
        for cell in self.session.backward(args.loss):
            texts = [g.text for g in cell.variable.gradients]
            _md(render.gradients_markdown(cell.name, texts))

    @line_magic
    @_guarded
    def tgstep(self, line: str) -> None:
        """%tgstep: one optimizer step from the last %tgbackward."""
        self._no_feedback_only("%tgstep")
        p = _parser("%tgstep", "One TGD step from the gradients of the last %tgbackward.")
        p.parse_args(_split(line))
        for cell, before, after in self.session.step():
            if before == after:
                print(f"{cell.name}: unchanged (the optimizer's reply could not be used)")
                continue
            self._show_candidate(cell.name)

    @line_magic
    @_guarded
    def tggrad(self, line: str) -> None:
        """%tggrad VAR: the textual gradient of a variable (a hint in feedback-only mode)."""
        p = _parser("%tggrad", "Show a variable's textual gradient.")
        p.add_argument("name")
        args = p.parse_args(_split(line))
        if tg_config.settings.hint_url:  # the teacher's hint service (classroom/client.py)
            return _md(_service_hint(args.name, self.session))
        if tg_config.settings.feedback_only:  # a hint: computed, filtered so no solution shows
            hints, score = self.session.hint(args.name)
            _md(hint_markdown(args.name, hints, score))
            return
        cell = self.session.variable(args.name)
        texts = [g.text for g in cell.variable.gradients]
        if not texts:
            latest = self.session.history.latest(args.name)
            texts = latest.gradients if latest else []
        _md(render.gradients_markdown(args.name, texts))

    @line_magic
    @_guarded
    def tghint(self, line: str) -> None:
        """%tghint VAR: a hint from the teacher's service (TG_MAGIC_HINT_URL); without one, the
        kernel's own hint (feedback-only mode, an honour-system convenience for self-study)."""
        p = _parser("%tghint", "Ask for a hint on a variable: what is wrong, not the fix.")
        p.add_argument("name")
        name = p.parse_args(_split(line)).name
        if tg_config.settings.hint_url:
            return _md(_service_hint(name, self.session))
        _md(hint_markdown(name, *self.session.hint(name)))

    @line_magic
    @_guarded
    def tghistory(self, line: str) -> None:
        """%tghistory VAR: every iteration of a variable, with scores and usage."""
        p = _parser("%tghistory", "Show every stored iteration of a variable.")
        p.add_argument("name")
        args = p.parse_args(_split(line))
        entries = self.session.history.entries(args.name)
        if not entries:
            raise UsageError(f"no history for {args.name}: run its %%tgvariable cell first")
        _show(render.history_text(args.name, entries), html=render.history_html(args.name, entries))

    @line_magic
    @_guarded
    def tgaccept(self, line: str) -> None:
        """%tgaccept VAR [N]: write iteration N (default: the latest candidate) into the cell."""
        self._no_feedback_only("%tgaccept")
        p = _parser("%tgaccept", "Write a candidate into its cell (the magic line is kept).")
        p.add_argument("name")
        p.add_argument("n", nargs="?", type=int)
        args = p.parse_args(_split(line))
        self._applied(lambda done: self.session.accept(args.name, args.n, done=done))

    @line_magic
    @_guarded
    def tgrevert(self, line: str) -> None:
        """%tgrevert VAR [N]: put iteration N (default: the original) back into the cell."""
        p = _parser("%tgrevert", "Put an earlier iteration back into the cell.")
        p.add_argument("name")
        p.add_argument("n", nargs="?", type=int)
        args = p.parse_args(_split(line))
        self._applied(lambda done: self.session.revert(args.name, args.n, done=done))

    @line_magic
    @_guarded
    def tggraph(self, line: str) -> None:
        """%tggraph: a picture of the notebook's graph, with the latest gradients."""
        p = _parser("%tggraph", "Draw the graph of variables and losses.")
        p.parse_args(_split(line))
        if not self.session.variables:
            raise UsageError("the graph is empty: run a %%tgvariable cell first")
        markdown = render.graph_markdown(self.session)
        _show(markdown, markdown=markdown, html=render.graph_html(self.session))

    @line_magic
    @_guarded
    def tgconfig(self, line: str) -> None:
        """%tgconfig [--engine E] [--backward-engine E] [--concurrency N] [--budget-dollars X]
        [--budget-tokens N] [--cache PATH|off] [--notebook PATH] [--feedback-only on|off]"""
        p = _parser("%tgconfig", "Show or change settings (also: %config TgMagics.NAME = ...).")
        p.add_argument("--engine")
        p.add_argument("--backward-engine")
        p.add_argument("--concurrency", type=int)
        p.add_argument("--budget-dollars", type=float)
        p.add_argument("--budget-tokens", type=int)
        p.add_argument("--cache")
        p.add_argument("--notebook")
        p.add_argument("--feedback-only", choices=["on", "off"])
        args = p.parse_args(_split(line))
        for name, value in vars(args).items():
            if value is None:
                continue
            if name == "feedback_only":
                value = value == "on"
            if name in ("engine", "backward_engine"):
                from ..engines import get_engine

                get_engine(value)  # fails now, with the fix, if the spec is wrong
            setattr(self, name, value)
        print(self._settings_text())

    # -- showing ------------------------------------------------------------------------------
    def _rich(self) -> bool:
        """Widgets, or plain text and Markdown (consoles, headless runs)?"""
        if self.widgets != "auto":
            return self.widgets == "on"
        return getattr(self.shell, "kernel", None) is not None and not tg_config.settings.notebook

    def _show_view(self, view: Any) -> None:
        display(view)
        self.views = [*self.views[-19:], view]

    def _show_candidate(self, name: str) -> None:
        """A variable's candidate against its cell: a widget with buttons, or a diff."""
        if self._rich():
            from .widgets import CandidateView

            self._show_view(CandidateView(self.session, name))
            return
        cell = self.session.variable(name)
        _md(render.diff_markdown(name, cell.cell_value, cell.variable.value))
        print(f"accept it with %tgaccept {name}, or reject it with %tgrevert {name}")

    def _applied(self, call: Callable[[Done | None], str]) -> None:
        """Show what accept or revert did. Through JupyterLab the outcome arrives after the cell
        ends, so in a kernel it goes to a display that the callback updates."""
        if not self._rich():
            print(call(None))
            return
        shown: dict[str, Any] = {}  # the display, once there; an outcome that came before it

        def done(ok: bool, message: str) -> None:
            if "handle" in shown:
                _update_text(shown["handle"], message)
            else:
                shown["outcome"] = message

        message = call(done)  # bad input raises here, before anything is shown
        text = shown.get("outcome", message)
        shown["handle"] = display({"text/plain": text}, raw=True, display_id=True)

    def _settings_text(self) -> str:
        from ..engines import get_cache

        cache = get_cache()
        settings = tg_config.settings
        return "\n".join(
            [
                f"engine:           {_spec(settings.engine) or '(default)'}",
                f"backward engine:  {_spec(settings.backward_engine) or '(the engine)'}",
                f"concurrency:      {settings.concurrency}",
                f"request timeout:  {settings.request_timeout} s",
                f"budget:           {_budget(METER.budget_dollars, METER.budget_tokens)}",
                f"cache:            {cache.path if cache else 'off'}",
                f"notebook:         {self.session.notebook or '(unknown)'}",
                f"history:          {self.session.history.path}",
                f"feedback-only:    {'on' if settings.feedback_only else 'off'}",
                f"usage so far:     {METER.total}",
            ]
        )


def _spec(engine: Any) -> str:
    """An engine setting as text: a spec string, or the spec of an engine object."""
    return "" if engine is None else str(getattr(engine, "spec", engine))


def _budget(dollars: float | None, tokens: int | None) -> str:
    parts = ([f"${dollars}"] if dollars is not None else []) + (
        [f"{tokens:,} tokens"] if tokens is not None else []
    )
    return " and ".join(parts) or "none"


def _service_hint(name: str, session: Session) -> str:
    from ..classroom.client import hint_for

    return hint_for(name, session.variable(name).cell_value)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments ({exc}): check the quotes") from None


def _update(handle: Any, text: str) -> None:
    if handle is not None:
        handle.update({"text/plain": text, "text/markdown": text}, raw=True)
    else:
        print(text)


def _update_text(handle: Any, text: str) -> None:
    if handle is not None:
        handle.update({"text/plain": text}, raw=True)
    else:
        print(text)


class _Run:
    """One %tgoptimize: its steps, and their progress (a widget with Stop, or text lines)."""

    def __init__(self, magics: TgMagics, args: argparse.Namespace, *, live: bool) -> None:
        self.magics, self.args, self.session = magics, args, magics.session
        overrides = {"engine": args.engine, "backward_engine": args.backward_engine}
        self.scope = ExitStack()  # this run's engines, until restore()
        self.scope.enter_context(tg_config.context(**{k: v for k, v in overrides.items() if v}))
        try:
            self.steps = self.session.optimize(
                args.loss, steps=args.steps, batch=args.batch, val=args.val, val_frac=args.val_frac
            )
        except BaseException:
            self.restore()
            raise
        self.results: list[StepResult] = []
        self.interrupted = False
        self.view: Any = None
        self.handle: Any = None
        if magics._rich():
            from .widgets import ProgressView

            self.view = ProgressView(args.steps, can_stop=live)
            magics._show_view(self.view)
        else:
            self.handle = display({"text/plain": "starting…"}, raw=True, display_id=True)

    @property
    def stop_requested(self) -> bool:
        return self.view is not None and self.view.stop_requested

    def show(self, result: StepResult) -> None:
        self.results.append(result)
        if self.view is not None:
            self.view.update(result)
        else:
            _update(self.handle, render.progress_text(result, self.args.steps))

    def restore(self) -> None:
        self.scope.close()

    def report(self) -> None:
        """After the last step, or a stop: the outcome, then each candidate against its cell."""
        n = len(self.results)
        stopped = self.interrupted or (self.stop_requested and n < self.args.steps)
        message = (
            f"stopped after {n} step(s); every candidate so far is kept"
            if stopped
            else f"done: {n} step(s)"
        )
        if self.view is not None:
            self.view.finish(message)
        elif stopped:
            print(message)
        for cell in self.session.last_parameters:
            if cell.variable.value != cell.cell_value:
                self.magics._show_candidate(cell.name)


LIVE_PAUSE = 0.1  # seconds a live %tgoptimize yields to the kernel after each step

_MAGIC_CALL = re.compile(r"^get_ipython\(\)\.run_line_magic\('tgoptimize', (.*)\)$")


def _live_transform(lines: list[str]) -> list[str]:
    """IPython input transformer: a top-level `%tgoptimize ...` line becomes an awaited call of
    tgoptimize_live, which makes the cell async, so the kernel can handle a Stop click during it."""
    out = []
    for line in lines:
        body = line.rstrip("\n")
        match = _MAGIC_CALL.match(body)
        if match:
            body = (
                "await get_ipython().magics_manager.registry['TgMagics']"
                f".tgoptimize_live({match.group(1)})"
            )
        out.append(body + line[len(line.rstrip("\n")) :])
    return out


def _install_live(shell: Any) -> bool:
    """Use the live %tgoptimize where the kernel dispatches comm messages while an async cell
    runs (ipykernel 7); elsewhere a click is handled only after the cell, so no Stop button."""
    dispatch = getattr(getattr(shell, "kernel", None), "dispatch_shell", None)
    try:
        concurrent = dispatch is not None and "concurrent" in inspect.signature(dispatch).parameters
    except (TypeError, ValueError):
        concurrent = False
    if concurrent and _live_transform not in shell.input_transformers_post:
        shell.input_transformers_post.append(_live_transform)
    return concurrent


@contextmanager
def _ctrl_c_raises() -> Iterator[None]:
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


def _show(text: str, *, markdown: str | None = None, html: str | None = None) -> None:
    """Display rich output with a plain-text twin (consoles and tests read the text)."""
    bundle = {"text/plain": text}
    if markdown is not None:
        bundle["text/markdown"] = markdown
    if html is not None:
        bundle["text/html"] = html
    display(bundle, raw=True)


def _md(markdown: str) -> None:
    _show(markdown, markdown=markdown)


def _kernel_cell_id(shell: Any) -> str:
    kernel = getattr(shell, "kernel", None)
    try:
        return str(kernel.get_parent()["metadata"].get("cellId", "")) if kernel else ""
    except (AttributeError, KeyError, TypeError):
        return ""


def _find_notebook(namespace: dict[str, Any]) -> str | None:
    """The .ipynb this kernel runs: explicit, Jupyter server session, or VS Code."""
    for candidate in (
        tg_config.settings.notebook,
        namespace.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
        namespace.get("__vsc_ipynb_file__"),
    ):
        if (
            isinstance(candidate, str)
            and candidate.endswith(".ipynb")
            and os.path.exists(candidate)
        ):
            return candidate
    return None
