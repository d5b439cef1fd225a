"""Graph execution: forward runs every pending call as soon as its inputs exist; backward runs a
node as soon as all its successors have delivered their gradients and its own value exists, with
the forward pass still running for the others. Both are schedules over an iteratively sorted
graph (no recursion, so a 1,000-node chain is fine), concurrent where the graph allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable

from ..engines import Engine, get_engine
from ..errors import InputError
from ..gradients import sending_rank
from ..variable import Variable


def graph(roots: Iterable[Variable]) -> list[Variable]:
    """Every variable reachable from `roots` through predecessors, inputs before outputs; a
    variable among its own predecessors (a cycle) is refused in one line."""
    order: list[Variable] = []
    seen: set[int] = set()
    finished: set[int] = set()
    for root in roots:
        if id(root) in seen:
            continue
        stack: list[tuple[Variable, bool]] = [(root, False)]
        while stack:
            var, expanded = stack.pop()
            if expanded:
                order.append(var)
                finished.add(id(var))
                continue
            if id(var) in seen:
                continue
            seen.add(id(var))
            for p in var.predecessors:
                if id(p) in seen and id(p) not in finished:  # on the path to here: a cycle
                    raise InputError(
                        f"the graph has a cycle: the {p.role_description} is computed from "
                        "itself; make each value from earlier ones only"
                    )
            stack.append((var, True))
            stack.extend((p, False) for p in reversed(var.predecessors) if id(p) not in seen)
    return order


async def _run_all(jobs: list[Awaitable[None]]) -> None:
    """Await every job; after a failure, jobs not yet started are skipped, started ones finish
    (their results are kept), and the first error is raised."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, _Skipped):
            raise result


class _Skipped(Exception):
    """A job that did not start because another one failed."""


def _computing(
    roots: Iterable[Variable], failed: asyncio.Event
) -> tuple[dict[int, asyncio.Event], list[Awaitable[None]]]:
    """The jobs that compute every pending variable `roots` depend on, each as soon as its
    inputs exist, and an event per pending variable, set once its value exists (or `failed`)."""
    pending = [v for v in graph(roots) if v.is_pending]
    done: dict[int, asyncio.Event] = {id(v): asyncio.Event() for v in pending}

    async def compute(var: Variable) -> None:
        try:
            for p in var.predecessors:
                if id(p) in done:
                    await done[id(p)].wait()
            if failed.is_set():
                raise _Skipped
            assert var.grad_fn is not None
            var._value = await var.grad_fn.forward()
        except BaseException:
            failed.set()
            for event in done.values():
                event.set()
            raise
        done[id(var)].set()

    return done, [compute(v) for v in pending]


async def forward(roots: Iterable[Variable]) -> None:
    """Compute every pending variable that `roots` depend on, concurrently where possible."""
    _, jobs = _computing(roots, asyncio.Event())
    if jobs:
        await _run_all(jobs)


async def backward(
    loss: Variable, engine: Engine | str | None = None, *, hint: bool = False
) -> None:
    """Textual backpropagation from `loss` to every variable with requires_grad; `hint` asks
    for feedback that points at the problem without writing the fix."""
    from ..config import get_backward_engine

    nodes = graph([loss])
    # An output needs gradients when an input does, whatever was true when it was made: an
    # optimizer may have taken an output (a model's answer) as its parameter since (TextGrad's
    # instance optimization).
    for v in nodes:
        if v.grad_fn is not None and not v.requires_grad:
            v.requires_grad = any(p.requires_grad for p in v.predecessors)
    if not any(v.requires_grad for v in nodes if v is not loss):
        raise InputError(
            "nothing to optimize: no variable in this graph has requires_grad=True; create the "
            "one to improve with tg.Variable(..., requires_grad=True)"
        )
    eng = get_engine(engine) if engine is not None else get_backward_engine()
    # A node runs when every successor that sends it gradients has run.
    senders = [v for v in nodes if v.grad_fn is not None and v.requires_grad]
    # Gradients are filed by their sender's place in the graph, not by when its call returned.
    rank = {id(v): i for i, v in enumerate(senders)}
    waiting: dict[int, int] = {}
    for v in senders:
        for p in {id(p): p for p in v.predecessors if p.requires_grad}.values():
            waiting[id(p)] = waiting.get(id(p), 0) + 1
    ready: dict[int, asyncio.Event] = {id(v): asyncio.Event() for v in senders}
    failed = asyncio.Event()
    # The forward pass runs alongside: a node's backward waits for its own value only (a sum's
    # not even that), so an example's gradients start when its own forward ends, not when the
    # slowest example's does.
    computed, computing = _computing([loss], failed)

    def release(var: Variable) -> None:
        waiting[id(var)] = waiting.get(id(var), 0) - 1
        if waiting[id(var)] <= 0 and id(var) in ready:
            ready[id(var)].set()

    for v in senders:
        if waiting.get(id(v), 0) == 0:
            ready[id(v)].set()

    async def run(var: Variable) -> None:
        try:
            await ready[id(var)].wait()
            assert var.grad_fn is not None
            if id(var) in computed and var.grad_fn.function.reads_output:
                await computed[id(var)].wait()
            if failed.is_set():
                raise _Skipped
            sending_rank.set(rank[id(var)])
            await var.grad_fn.backward(var, eng, hint=hint)
        except BaseException:
            failed.set()
            for event in ready.values():
                event.set()
            raise
        for p in {id(p): p for p in var.predecessors if p.requires_grad}.values():
            release(p)

    await _run_all([*computing, *(run(v) for v in senders)])
