"""The magics: parse the line, hand the cell to the session, show what comes back."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode, default, observe, validate

from .. import config as tg_config
from ..engines import METER, get_engine
from ..errors import TgMagicError
from ..hints import hint_markdown
from ..nbfile import cell_source
from . import frontend, graph_view, parsers, render, where
from .display import Display, show, show_markdown
from .live import LIVE_PAUSE, OptimizeRun, ctrl_c_raises, install_live
from .parsers import HelpAnswered, parse
from .session import Session


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input becomes one clear line (UsageError, no traceback); Ctrl-C stops cleanly."""

    @functools.wraps(method)
    def wrapper(self: TgMagics, *args: Any) -> Any:
        try:
            return method(self, *args)
        except HelpAnswered:
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
        self.session.set_notebook(self.notebook or frontend.find_notebook(self.session.namespace))
        self.session.frontend = frontend.attach(shell)  # pings: presence known by the next cell
        self.session.where = self._where
        # the extension reports edits of variable cells (typing, Ctrl-Z): the widgets follow
        self.stop_listening = frontend.listen(self.session.edits.cell_changed)
        self.display = Display(self.session, self._rich)
        self.live = self._rich() and install_live(shell)

    def _pre_run_cell(self, info: Any) -> None:
        self._cell_id = getattr(info, "cell_id", None) or frontend.kernel_cell_id(self.shell) or ""

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

    def _where(self) -> where.Frontend:
        app = getattr(self.session.frontend, "app", None)
        return where.current(self.shell, self.session.namespace, app)

    @validate("notebook")
    def _notebook_allowed(self, proposal: Any) -> str:
        """Never a file that a frontend holds open (it would be written behind the editor)."""
        if proposal["value"] and self._where().holds_file:
            raise UsageError(where.no_notebook_setting(self._where()))
        return str(proposal["value"])

    @observe("notebook")
    def _notebook_changed(self, change: Any) -> None:
        self.session.set_notebook(self.notebook or None)

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
        args = parse(parsers.variable(), line)
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
        if entry.ran and entry.ran.rewrite:  # the frontend puts the accepted text in this cell
            shell.set_next_input(cell_source(entry.cell.magic_line, entry.cell_value), replace=True)
        if entry.ran and entry.ran.note:
            print(entry.ran.note)
        if args.kind == "code":
            result = shell.run_cell(entry.cell_value, store_history=False)
            if not result.success:
                return
        lines = len(entry.cell_value.splitlines())
        print(f"{args.name}: {args.kind} variable registered ({lines} lines)")

    @line_cell_magic
    @_guarded
    def tgloss(self, line: str, cell: str | None = None) -> None:
        """%%tgloss NAME --target VAR [--tests | --judge | --data FILE --metric M [--model E]]
        (a --data loss needs no body: `%tgloss NAME --target VAR --data FILE` works too)"""
        cell = cell or ""
        args = parse(parsers.loss(), line)
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
        if args.program and not args.data:
            raise UsageError(f"--program {args.program} needs a data set: add --data FILE.jsonl")
        loss_mode = "program" if args.program else "data" if args.data else args.kind
        loss = self.session.define_loss(
            args.name,
            cell,
            cell_id=self._cell_id,
            target=args.target,
            mode=loss_mode,
            data=args.data,
            metric=metric,
            model=args.model,
            program=args.program,
        )
        from ..engines import preload

        preload()  # the provider SDK imports in the background: the first step starts at once
        extra = f", {len(loss.examples)} examples" if loss.examples else ""
        if loss.program:
            print(f"{args.name}: program {loss.program}{extra}; trains: {', '.join(loss.targets)}")
        else:
            print(f"{args.name}: {loss_mode} loss on {', '.join(loss.targets)}{extra}")
        if loss.note:
            print(loss.note)
        if loss_mode == "tests":
            print(render.containment_line())

    # -- running ----------------------------------------------------------------------------
    def _optimize_run(self, line: str, *, live: bool) -> OptimizeRun:
        """Parse %tgoptimize's line and start the run (bad input fails here, before any step)."""
        self._no_feedback_only("%tgoptimize")
        return OptimizeRun(self.display, parse(parsers.optimize(), line), live=live)

    @line_magic
    @_guarded
    def tgoptimize(self, line: str) -> None:
        """%tgoptimize [LOSS] [--steps N] [--batch B] [--candidates K] [--val FILE | --val-frac F]
        [--engine E] [--patience N] [--target-score S]"""
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
        """%tgoptimize run as an async cell in a Jupyter kernel (see live.live_transform): a step
        runs as usual, then the cell yields to the kernel for a moment, which handles widget
        messages then (ipykernel dispatches comms while an async cell runs), so Stop is seen
        between steps."""
        try:
            run = self._optimize_run(line, live=True)
        except HelpAnswered:
            return
        except TgMagicError as exc:
            raise UsageError(str(exc)) from None
        steps = iter(run.steps)
        try:
            while not run.stop_requested:
                with ctrl_c_raises():
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
        """%tgforward [LOSS]: run the graph and show the evaluation, test by test."""
        args = parse(parsers.loss_name("%tgforward", "Run a loss's forward pass; show it."), line)
        self.display.forward(self.session.forward(args.loss))

    @line_magic
    @_guarded
    def tgbackward(self, line: str) -> None:
        """%tgbackward [LOSS]: compute the textual gradients and show them."""
        p = parsers.loss_name("%tgbackward", "Compute textual gradients for a loss's variables.")
        args = parse(p, line)
        for cell in self.session.backward(args.loss):
            texts = [g.text for g in cell.variable.gradients]
            show_markdown(render.gradients_markdown(cell.name, texts))

    @line_magic
    @_guarded
    def tgstep(self, line: str) -> None:
        """%tgstep: one optimizer step from the last %tgbackward."""
        self._no_feedback_only("%tgstep")
        parse(parsers.no_arguments("%tgstep", "One TGD step from the last %tgbackward."), line)
        for cell, before, after in self.session.step():
            if before == after:
                print(f"{cell.name}: unchanged (the optimizer's reply could not be used)")
                continue
            self.display.candidate(cell.name)

    @line_magic
    @_guarded
    def tggrad(self, line: str) -> None:
        """%tggrad VAR: the textual gradient of a variable (a hint in feedback-only mode)."""
        args = parse(parsers.variable_name("%tggrad", "Show a variable's textual gradient."), line)
        if tg_config.settings.hint_url:  # the teacher's hint service (classroom/client.py)
            return show_markdown(_service_hint(args.name, self.session))
        if tg_config.settings.feedback_only:  # a hint: computed, filtered so no solution shows
            hints, score = self.session.hint(args.name)
            show_markdown(hint_markdown(args.name, hints, score))
            return
        cell = self.session.variable(args.name)
        texts = [g.text for g in cell.variable.gradients]
        if not texts:
            latest = self.session.history.latest(args.name)
            texts = latest.gradients if latest else []
        show_markdown(render.gradients_markdown(args.name, texts))

    @line_magic
    @_guarded
    def tghint(self, line: str) -> None:
        """%tghint VAR: a hint from the teacher's service (TG_MAGIC_HINT_URL); without one, the
        kernel's own hint (feedback-only mode, an honour-system convenience for self-study)."""
        args = parse(
            parsers.variable_name(
                "%tghint", "Ask for a hint on a variable: what is wrong, not the fix."
            ),
            line,
        )
        if tg_config.settings.hint_url:
            return show_markdown(_service_hint(args.name, self.session))
        show_markdown(hint_markdown(args.name, *self.session.hint(args.name)))

    @line_magic
    @_guarded
    def tghistory(self, line: str) -> None:
        """%tghistory VAR: every iteration of a variable, with scores, tests and usage."""
        p = parsers.variable_name("%tghistory", "Show every stored iteration of a variable.")
        args = parse(p, line)
        rows = render.history_rows(self.session, args.name)
        if not rows:
            raise UsageError(f"no history for {args.name}: run its %%tgvariable cell first")
        show(render.history_text(args.name, rows), html=render.history_html(args.name, rows))

    @line_magic
    @_guarded
    def tgaccept(self, line: str) -> None:
        """%tgaccept VAR [N]: write iteration N (default: the latest candidate) into the cell;
        %tgaccept --all: every variable's latest candidate, each cell in its own edit."""
        self._no_feedback_only("%tgaccept")
        args = parse(parsers.accept(), line)
        if args.all:
            if args.name:
                raise UsageError("%tgaccept --all takes no variable name")
            return self.display.accept_all()
        if not args.name:
            raise UsageError("%tgaccept: name a variable (%tgaccept VAR [N]) or use --all")
        self.display.applied(lambda done: self.session.edits.accept(args.name, args.n, done))

    @line_magic
    @_guarded
    def tgrevert(self, line: str) -> None:
        """%tgrevert VAR [N]: put iteration N (default: the original) back into the cell."""
        p = parsers.iteration("%tgrevert", "Put an earlier iteration back into the cell.")
        args = parse(p, line)
        self.display.applied(lambda done: self.session.edits.revert(args.name, args.n, done))

    @line_magic
    @_guarded
    def tggraph(self, line: str) -> None:
        """%tggraph: a picture of the notebook's graph, with the latest gradients."""
        parse(parsers.no_arguments("%tggraph", "Draw the graph of variables and losses."), line)
        if not self.session.variables:
            raise UsageError("the graph is empty: run a %%tgvariable cell first")
        markdown = graph_view.graph_markdown(self.session)
        show(markdown, markdown=markdown, html=graph_view.graph_html(self.session))

    @line_magic
    @_guarded
    def tgconfig(self, line: str) -> None:
        """%tgconfig [--engine E] [--backward-engine E] [--concurrency N] [--max-concurrency N]
        [--request-timeout S] [--idle-timeout S] [--run-deadline S] [--budget-dollars X] [--budget-
        tokens N] [--cache PATH|off] [--notebook PATH] [--feedback-only|--allow-unsandboxed X]"""
        args = parse(parsers.config(), line)
        for name, value in vars(args).items():
            if value is None:
                continue
            if name in ("feedback_only", "allow_unsandboxed"):
                value = value == "on"
            if refusal := tg_config.refused(name, value):  # `tg-magic run`: its person decides
                print(refusal)
                continue
            if name in ("engine", "backward_engine"):
                get_engine(value)  # fails now, with the fix, if the spec is wrong
            if name in tg_config.FIELDS and name != "notebook":  # the session owns --notebook
                # The library owns the setting: write it there, even where the traitlet already
                # holds this value (tg.configure in a cell may have changed the setting since).
                tg_config.configure(**{name: value if value != "" else None})
            if self.has_trait(name):
                setattr(self, name, value)
        print(render.settings_text(self.session))

    # -- showing ------------------------------------------------------------------------------
    def _rich(self) -> bool:
        """Widgets, or plain text and Markdown (consoles, headless runs)?"""
        if self.widgets != "auto":
            return self.widgets == "on"
        return getattr(self.shell, "kernel", None) is not None and not tg_config.settings.notebook


def _spec(engine: Any) -> str:
    """An engine setting as text: a spec string, or the spec of an engine object."""
    return "" if engine is None else str(getattr(engine, "spec", engine))


def _service_hint(name: str, session: Session) -> str:
    from ..classroom.client import hint_for

    return hint_for(name, session.variable(name).cell_value)
