"""Mini-batch textual gradient descent with a validation gate (the paper's prompt optimization).

`optimize()` is a generator: it yields one StepResult per step, so a caller can show progress
live, stop between steps, and keep every candidate even when interrupted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .candidates import Candidate, ParetoPool, ValidateEach, propose, score_all
from .engines import METER, Usage
from .errors import InputError
from .loss import skipped
from .optim import TGD
from .variable import Variable

T = TypeVar("T")


@dataclass
class Proposal:
    """What one step did to one variable."""

    variable: Variable
    before: str
    after: str  # equals `before` when the optimizer's reply could not be used
    gradients: list[str]
    kept: bool = True


@dataclass
class StepResult:
    step: int
    score: float | None  # the training batch's score before the step
    val_before: float | None
    val_after: float | None
    proposals: list[Proposal]
    usage: Usage
    failures: list[str] = field(default_factory=list)
    # With optimize(candidates=k): every proposal of the step with its validation scores; the
    # kept one has chosen=True (none when the incumbent stayed best). Empty for plain TGD.
    candidates: list[Candidate] = field(default_factory=list)
    # Why the run ends after this step, with steps left ("" when it goes on): nothing is left
    # to gain (every test passes, the validation score is the metric's maximum).
    finished: str = ""

    @property
    def kept(self) -> bool:
        return all(p.kept for p in self.proposals)


@dataclass
class Objective(Generic[T]):
    """What to optimize: `loss(batch)` builds a graph from the current values; `validate()` scores
    the current values on held-out data (or re-runs the tests), None when there is no number.

    `validate_each(values)` (optional) scores given values (one per parameter) on each held-out
    example without touching the parameters, from any thread: with it, k candidates are scored
    concurrently and kept in a Pareto pool; without it, they are scored one after another.

    `maximum`: the best validation score there is (None: unknown); a run that reaches it ends,
    saying `at_maximum`."""

    loss: Callable[[list[T] | None], Variable]
    train: Sequence[T] | None = None
    validate: Callable[[], float | None] | None = None
    validate_each: ValidateEach | None = None
    maximum: float | None = None
    at_maximum: str = "the validation score is the best there is"

    def done(self, score: float | None) -> str:
        """Why nothing is left to gain at this validation score ("" when something is)."""
        if self.maximum is None or score is None or score < self.maximum - 1e-9:
            return ""
        return self.at_maximum


def optimize(
    parameters: list[Variable],
    objective: Objective[Any],
    *,
    steps: int = 3,
    batch_size: int = 4,
    seed: int = 0,
    candidates: int = 1,
    pool: int = 4,
    tidy: Callable[[str], str] | None = None,
    **tgd_options: Any,
) -> Iterator[StepResult]:
    """Run `steps` steps of TGD; a step that lowers the validation score is undone.

    candidates=k (k > 1): each step proposes k values and keeps the best on validation, growing
    from a Pareto pool of at most `pool` good values (tg_magic.candidates). `tidy` cleans every
    proposed value before it is scored (e.g. candidates.python_prefix for code)."""
    if steps < 1:
        raise InputError("--steps must be at least 1")
    if batch_size < 1:
        raise InputError("--batch must be at least 1")
    if candidates < 1:
        raise InputError("--candidates must be at least 1")
    optimizer = TGD(parameters, **tgd_options)
    rng = random.Random(seed)
    train = list(objective.train) if objective.train is not None else None
    if candidates > 1:
        yield from _search(
            parameters, objective, optimizer, steps, batch_size, rng, candidates, pool, tidy
        )
        return
    val_score = objective.validate() if objective.validate else None
    for step in range(1, steps + 1):
        with METER.scope() as scope:
            batch = rng.sample(train, min(batch_size, len(train))) if train else None
            optimizer.zero_grad()
            loss = objective.loss(batch)
            loss.backward(optimizer.engine)
            before = [p.value for p in parameters]
            gradients = [[g.text for g in p.gradients] for p in parameters]
            failed = len(optimizer.failures)
            optimizer.step()
            for p, b in zip(parameters, before, strict=True):
                if tidy is not None and p.value != b:
                    p.value = tidy(p.value)
            proposals = [
                Proposal(p, b, p.value, g)
                for p, b, g in zip(parameters, before, gradients, strict=True)
            ]
            changed = any(p.after != p.before for p in proposals)
            val_after = objective.validate() if objective.validate and changed else val_score
            if val_score is not None and val_after is not None and val_after < val_score:
                for proposal in proposals:
                    if proposal.after != proposal.before:
                        proposal.variable.value = proposal.before
                        proposal.variable.past_values.pop()
                    proposal.kept = False
            result = StepResult(
                step,
                loss.score,
                val_score,
                val_after,
                proposals,
                Usage(),
                skipped(loss) + [f.reason for f in optimizer.failures[failed:]],
            )
        result.usage = scope.usage
        if result.kept and val_after is not None:
            val_score = val_after
        if step < steps:
            result.finished = objective.done(val_score)
        yield result
        if result.finished:
            return


def _search(
    parameters: list[Variable],
    objective: Objective[Any],
    optimizer: TGD,
    steps: int,
    batch_size: int,
    rng: random.Random,
    k: int,
    pool_size: int,
    tidy: Callable[[str], str] | None,
) -> Iterator[StepResult]:
    """The k-candidate loop: propose from a pool member, score all, keep the best mean if it
    beats the incumbent's."""
    train = list(objective.train) if objective.train is not None else None
    pool = ParetoPool(pool_size, seed=rng.randrange(2**32))
    incumbent = Candidate([p.value for p in parameters], "incumbent")
    score_all(parameters, [incumbent], objective.validate_each, objective.validate)
    pool.add([incumbent])
    for step in range(1, steps + 1):
        with METER.scope() as scope:
            current = [p.value for p in parameters]
            parent = pool.parent() if pool.members else incumbent
            for p, v in zip(parameters, parent.values, strict=True):
                p.value = v
            batch = rng.sample(train, min(batch_size, len(train))) if train else None
            optimizer.zero_grad()
            loss = objective.loss(batch)
            loss.backward(optimizer.engine)
            score = loss.score
            gradients = [[g.text for g in p.gradients] for p in parameters]
            proposed, failures = propose(parameters, optimizer, k, rng, tidy)
            for p, v in zip(parameters, current, strict=True):
                p.value = v
            score_all(parameters, proposed, objective.validate_each, objective.validate)
            pool.add(proposed)
            scored = [c for c in proposed if c.score is not None]
            best = max(scored, key=lambda c: c.score or 0.0, default=None)
            if not scored and proposed:
                best = proposed[0]  # no validation: plain TGD's proposal, as without candidates
            # Strictly better only: among equals the incumbent stays (the pool keeps the others,
            # so a later step can still grow from them).
            keep = best is not None and (
                incumbent.score is None or (best.score is not None and best.score > incumbent.score)
            )
            val_before = incumbent.score
            if keep and best is not None:
                best.chosen = True
                incumbent = best
                for p, old, new in zip(parameters, current, best.values, strict=True):
                    if new != old:
                        p.past_values.append(old)
                        p.value = new
            proposals = [
                Proposal(p, old, best.values[i] if best is not None else old, gradients[i], keep)
                for i, (p, old) in enumerate(zip(parameters, current, strict=True))
            ]
            result = StepResult(
                step,
                score,
                val_before,
                incumbent.score,
                proposals,
                Usage(),
                skipped(loss) + failures,
                proposed,
            )
        result.usage = scope.usage
        if step < steps:
            result.finished = objective.done(incumbent.score)
        yield result
        if result.finished:
            return
