"""A program as a loss's forward pass: the user's own Python function of one example's input.

The program calls models on the trained variables (`tg.llm`, `tg.BlackboxLLM`, `tg.LLMCall`,
`tg.FormattedLLMCall`) with plain Python in between; the graph is whatever those calls build,
so every variable it reaches is trained. Examples run at once, a thread each (an async program
gets an event loop of its own there): a program that reads an intermediate answer to parse it
waits only on its own example, and the model calls of all examples share the concurrency limit.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .autograd import graph
from .errors import BudgetExceeded, EngineError, InputError, redact
from .variable import Variable, reading

MAX_THREADS = 64  # examples whose program runs at once (their model calls are limited apart)

Program = Callable[[Any], Any]


@dataclass
class ProgramRun:
    """The program on one example: its output, or why there is none (one line, which the
    caller prefixes with the example it was)."""

    index: int
    output: Variable | None = None
    error: str = ""


def name_of(program: Program) -> str:
    return getattr(program, "__name__", type(program).__name__)


def check_program(program: Any, name: str = "") -> Program:
    """A program must be a function of one example's input."""
    if not callable(program):
        shown = name or repr(program)[:40]
        raise InputError(
            f"--program {shown} is not a function: define def {shown or 'program'}(x): ... "
            "returning the model's answer, and run that cell first"
        )
    return program


def run(program: Program, inputs: Sequence[Any]) -> list[ProgramRun]:
    """The program on every input at once; a failure is kept as one line, never raised."""
    if not inputs:
        return []
    jobs = [(contextvars.copy_context(), i, x) for i, x in enumerate(inputs)]
    pool = ThreadPoolExecutor(min(len(jobs), MAX_THREADS), "tg_magic-program")
    try:
        futures = [pool.submit(ctx.run, _one, program, i, x) for ctx, i, x in jobs]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _one(program: Program, index: int, given: Any) -> ProgramRun:
    name = name_of(program)
    try:
        result = program(given)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
    except (EngineError, BudgetExceeded):
        raise  # a model call failed or the budget is spent: the run stops, as without a program
    except Exception as exc:  # the user's code: any failure skips this example, in one line
        why = redact(" ".join(str(exc).split()))[:200]
        return ProgramRun(index, error=f"{name} raised {type(exc).__name__}: {why}")
    if isinstance(result, str):
        if not result.strip():
            return ProgramRun(index, error=f"{name} returned empty text")
        result = Variable(result, role_description="output of the program", requires_grad=False)
    if not isinstance(result, Variable) or isinstance(result._value, bytes):
        what = "an image" if isinstance(result, Variable) else type(result).__name__
        return ProgramRun(
            index,
            error=f"{name} returned {what}, not text: return the tg.Variable "
            "of its last model call (or a str)",
        )
    return ProgramRun(index, result)


async def _awaited(result: Any) -> Any:
    return await result


@dataclass
class Reach:
    """What a program's graph reaches, from a run on one example."""

    trains: list[Variable] = field(default_factory=list)  # reached, requires_grad
    uses: list[Variable] = field(default_factory=list)  # reached, not trained (no grad)
    cut: list[Variable] = field(default_factory=list)  # read as text, then not reached


REACH_TRIES = 5  # examples tried, one after another, to find one the program runs on


def reach(
    program: Program, inputs: Sequence[Any], known: Iterable[Variable] | None = None
) -> Reach:
    """Run the program on one input (the first it runs on, of the first few) and see which
    variables its output's graph reaches, and which of `known` (None: any trainable leaf) it
    read as plain text without keeping the chain. No run is one line naming the exception."""
    first = ""
    for given in inputs[:REACH_TRIES]:
        with reading() as seen:
            [one] = run(program, [given])
        if one.output is not None:
            break
        first = first or one.error
    else:
        tried = min(len(inputs), REACH_TRIES)
        raise InputError(f"on the first {tried} example(s), {first}")
    reached = graph([one.output])
    leaves = [v for v in reached if v.grad_fn is None]
    candidates = list(known) if known is not None else None

    def wanted(v: Variable) -> bool:
        return any(v is k for k in candidates) if candidates is not None else v.requires_grad

    found = Reach(
        trains=[v for v in leaves if wanted(v) and v.requires_grad],
        uses=[v for v in leaves if wanted(v) and not v.requires_grad],
    )
    in_graph = {id(v) for v in reached}
    for v in graph(seen):
        fresh = all(v is not c for c in found.cut)
        if v.grad_fn is None and wanted(v) and id(v) not in in_graph and fresh:
            found.cut.append(v)
    return found
