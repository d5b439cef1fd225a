"""k candidates per step, scored on validation, with a Pareto pool of the best (GEPA-style).

One TGD reply is one guess; a small model's guess is often worse than the value it replaces,
and the validation gate then throws the whole step away. Here each step asks for k proposals,
scores them all on the validation set at once, and keeps the best. The engines decode greedily
(and the Anthropic SDK takes no temperature), so proposals differ by what they are shown:
candidate 1 sees all the feedback (it is plain TGD's proposal), the next ones see different
subsets of it, and when the subsets run out a candidate sees the step's earlier proposals as
past values not to repeat. Proposals come from TGD itself (its prompts, its reply parsing), run
on stand-in copies of the parameters, so the parameters change only when a candidate is kept.

A pool keeps the candidates that no other beats on every validation example (a Pareto front),
and each step grows from a pool member drawn by how many examples it is best on, so progress
on different examples is not lost when another candidate has the best mean.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import random
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

from . import pysource, runtime
from .config import get_backward_engine
from .engines import Engine
from .optim import TGD
from .variable import Gradient, Variable

# Scores each validation example for the given values (one per parameter), without touching the
# parameters; called from several threads at once.
ValidateEach = Callable[[list[str]], list[float]]


@dataclass
class Candidate:
    """One proposal of a step: a value per parameter and its validation scores."""

    values: list[str]
    source: str  # how it was made: "all feedback", "feedback 1+3", "retry 1", "incumbent"
    score: float | None = None  # mean validation score; None when there is no validation
    per_example: list[float] = field(default_factory=list)
    chosen: bool = False  # the one the step kept (at most one per step)


def gradient_subsets(n: int, k: int, rng: random.Random) -> list[list[int]]:
    """Up to k index lists over n gradients: all of them first, then leave-one-out subsets and
    single gradients in turn (a seeded order), never the same subset twice."""
    leave_one_out = [[j for j in range(n) if j != i] for i in range(n)]
    singles = [[i] for i in range(n)]
    rng.shuffle(leave_one_out)
    rng.shuffle(singles)
    subsets = [list(range(n))]
    for pair in zip(leave_one_out, singles, strict=True):
        subsets += [s for s in pair if s and s not in subsets]
    return subsets[:k]


# Sampling temperatures of candidates 2, 3, ... on engines that take one (candidate 1 is greedy).
TEMPERATURES = (0.6, 0.8, 1.0, 1.2)


def _sampling(engine: Engine, j: int, seed: int) -> Engine:
    """Candidate j's engine: greedy for the first, sampling hotter for the next ones where the
    engine can (`with_temperature`, the local model), with a seed drawn per step so that a
    step from the same value and feedback still gets new samples; the engine itself elsewhere."""
    variant = getattr(engine, "with_temperature", None)
    if j == 0 or variant is None:
        return engine
    return cast(Engine, variant(TEMPERATURES[(j - 1) % len(TEMPERATURES)], seed + j))


async def _propose(
    parameters: list[Variable],
    template: TGD,
    engine: Engine,
    subset: list[int] | None,
    shown: list[list[str]],
) -> tuple[list[str], list[str]]:
    """New values from TGD run on stand-ins carrying a subset of the gradients (None: all) and,
    as extra past values, the proposals in `shown` (one list per parameter). Returns the values
    (the old value where TGD's reply was unusable) and the failure reasons."""
    stand_ins = []
    for i, p in enumerate(parameters):
        twin = Variable(p.value, role_description=p.role_description, requires_grad=True)
        grads: list[Gradient] = list(p.gradients)
        if subset is not None and grads:
            grads = [grads[j] for j in subset if j < len(grads)] or grads
        twin.gradients = grads
        past = p.past_values[-template.momentum :] if template.momentum else []
        twin.past_values = [*past, *shown[i]]
        stand_ins.append(twin)
    active = [t for t in stand_ins if t.gradients]
    if not active:
        return [p.value for p in parameters], []
    optimizer = TGD(
        active,
        engine,
        momentum=len(max((t.past_values for t in active), key=len)),
        constraints=template.constraints,
        in_context_examples=template.in_context_examples,
    )
    await optimizer.astep()
    return [t.value for t in stand_ins], [f.reason for f in optimizer.failures]


def propose(
    parameters: list[Variable],
    template: TGD,
    k: int,
    rng: random.Random,
    tidy: Callable[[str], str] | None = None,
) -> tuple[list[Candidate], list[str]]:
    """k candidates from the parameters' current gradients (distinct values only). Candidate j
    sees the j-th gradient subset, or all of them, and samples at the j-th temperature where
    the engine can; `tidy` cleans each proposed value (e.g. code cut to what parses)."""
    engine = template.engine or get_backward_engine()
    n = max((len(p.gradients) for p in parameters), default=0)
    subsets = gradient_subsets(n, k, rng) if n else [[]]
    sampling = getattr(engine, "with_temperature", None) is not None
    seed = rng.randrange(2**16)
    plans: list[tuple[list[int] | None, int]] = [(s, j) for j, s in enumerate(subsets)]
    if sampling:
        plans += [(None, j) for j in range(len(plans), k)]

    def label(subset: list[int] | None, j: int) -> str:
        seen = (
            "all feedback"
            if subset is None or len(subset) == n
            else ("feedback " + "+".join(str(i + 1) for i in subset))
        )
        hot = getattr(_sampling(engine, j, seed), "temperature", 0.0) if sampling else 0.0
        return f"{seen}, temperature {hot:g}" if hot else seen

    async def first_round() -> list[tuple[list[str], list[str]]]:
        none: list[list[str]] = [[] for _ in parameters]
        jobs = [
            _propose(parameters, template, _sampling(engine, j, seed), s, none) for s, j in plans
        ]
        return list(await asyncio.gather(*jobs))

    candidates: list[Candidate] = []
    failures: list[str] = []
    seen = {tuple(p.value for p in parameters)}

    def add(values: list[str], source: str, reasons: list[str]) -> None:
        failures.extend(reasons)
        values = [tidy(v) for v in values] if tidy else values
        if tuple(values) not in seen:
            seen.add(tuple(values))
            candidates.append(Candidate(values, source))

    for (subset, j), (values, reasons) in zip(plans, runtime.run(first_round()), strict=True):
        add(values, label(subset, j), reasons)
    # Retries: all the feedback again, with this step's proposals shown as values to move past.
    for attempt in range(1, k - len(candidates) + 1):
        if len(candidates) >= k:
            break
        shown = [[c.values[i] for c in candidates] for i in range(len(parameters))]
        values, reasons = runtime.run(_propose(parameters, template, engine, None, shown))
        before = len(candidates)
        add(values, f"retry {attempt}", reasons)
        if len(candidates) == before:
            break  # the model repeats itself: more retries would too (greedy decoding)
    return candidates[:k], failures


CODE_START = re.compile(r"^(def |class |import |from |@|async def )")
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def python_prefix(code: str) -> str:
    """The code of a reply: without Markdown fence lines, from its first definition or import
    on, cut to its longest leading part that parses, without top-level expressions (calls,
    stray strings), asserts, `test_*` functions, or definitions that a later one of the same
    name replaces. Small models wrap a right fix in prose, fences, the old version or tests
    they made up: the tests should judge the fix, and the diff show it, without the chatter."""
    lines = [line for line in code.splitlines() if not line.startswith("```")]
    start = next((i for i, line in enumerate(lines) if CODE_START.match(line)), 0)
    lines = lines[start:]
    for end in range(len(lines), 0, -1):
        head = "\n".join(lines[:end])
        try:
            tree = pysource.parse(head)
        except SyntaxError:
            continue
        defs = [n for n in tree.body if isinstance(n, DEFINITIONS)]
        last = {n.name: n for n in defs}  # the definition of each name that Python keeps
        kept = []
        for node in tree.body:
            if isinstance(node, ast.Expr | ast.Assert):
                continue
            if isinstance(node, DEFINITIONS) and (
                last[node.name] is not node or node.name.startswith("test_")
            ):
                continue
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
        return "\n\n".join(kept).strip() + "\n" if kept else code
    return code


def score_all(
    parameters: list[Variable],
    candidates: list[Candidate],
    validate_each: ValidateEach | None,
    validate: Callable[[], float | None] | None,
) -> None:
    """Fill in each candidate's validation scores. With `validate_each`, all candidates are
    scored at once (their model calls share tg_magic's concurrency limit, as every call does);
    otherwise one after another, setting the parameters to each candidate and back."""
    if validate_each is not None:
        # Each thread runs in a copy of the caller's context, so `with tg.context(...)` holds.
        jobs = [(contextvars.copy_context(), c.values) for c in candidates]
        with ThreadPoolExecutor(max(1, len(candidates)), "tg_magic-candidate") as pool:
            results = list(pool.map(lambda job: job[0].run(validate_each, job[1]), jobs))
        for candidate, scores in zip(candidates, results, strict=True):
            candidate.per_example = list(scores)
            candidate.score = sum(scores) / len(scores) if scores else None
        return
    if validate is None:
        return
    current = [p.value for p in parameters]
    try:
        for candidate in candidates:
            for p, v in zip(parameters, candidate.values, strict=True):
                p.value = v
            candidate.score = validate()
    finally:
        for p, v in zip(parameters, current, strict=True):
            p.value = v


def _dominates(a: Candidate, b: Candidate) -> bool:
    pairs = list(zip(a.per_example, b.per_example, strict=True))
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def _mean(c: Candidate) -> float:
    return float("-inf") if c.score is None else c.score


class ParetoPool:
    """The best candidates seen so far: none beaten by another on every validation example,
    at most `size` of them (the best means kept). Index 0 is the best mean (the incumbent)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = max(1, size)
        self.members: list[Candidate] = []
        self.rng = random.Random(seed)

    def add(self, candidates: Sequence[Candidate]) -> None:
        everyone = self.members + [c for c in candidates if c.score is not None]
        comparable = all(len(c.per_example) == len(everyone[0].per_example) for c in everyone)
        if comparable and everyone and everyone[0].per_example:
            everyone = [c for c in everyone if not any(_dominates(o, c) for o in everyone)]
        # Stable sort: among equal means the older member (the incumbent) stays first.
        self.members = sorted(everyone, key=_mean, reverse=True)[: self.size]

    @property
    def best(self) -> Candidate:
        return self.members[0]

    def parent(self) -> Candidate:
        """A member drawn with weight = the number of validation examples it is best on."""
        lengths = {len(m.per_example) for m in self.members}
        if len(self.members) < 2 or len(lengths) > 1 or 0 in lengths:
            return self.best
        tops = [max(col) for col in zip(*(m.per_example for m in self.members), strict=True)]
        weights = [
            sum(1 for s, top in zip(m.per_example, tops, strict=True) if s >= top)
            for m in self.members
        ]
        if not any(weights):
            return self.best
        return self.rng.choices(self.members, weights=weights)[0]
