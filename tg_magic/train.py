"""Mini-batch textual gradient descent with a validation gate (the paper's prompt optimization).

`optimize()` is a generator: it yields one StepResult per step, so a caller can show progress
live, stop between steps, and keep every candidate even when interrupted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .engines import METER, Usage
from .errors import InputError
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

    @property
    def kept(self) -> bool:
        return all(p.kept for p in self.proposals)


@dataclass
class Objective(Generic[T]):
    """What to optimize: `loss(batch)` builds a graph from the current values; `validate()` scores
    the current values on held-out data (or re-runs the tests), None when there is no number."""

    loss: Callable[[list[T] | None], Variable]
    train: Sequence[T] | None = None
    validate: Callable[[], float | None] | None = None


def optimize(
    parameters: list[Variable],
    objective: Objective[Any],
    *,
    steps: int = 3,
    batch_size: int = 4,
    seed: int = 0,
    **tgd_options: Any,
) -> Iterator[StepResult]:
    """Run `steps` steps of TGD; a step that lowers the validation score is undone."""
    if steps < 1:
        raise InputError("--steps must be at least 1")
    if batch_size < 1:
        raise InputError("--batch must be at least 1")
    optimizer = TGD(parameters, **tgd_options)
    rng = random.Random(seed)
    train = list(objective.train) if objective.train is not None else None
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
                [f.reason for f in optimizer.failures[failed:]],
            )
        result.usage = scope.usage
        if result.kept and val_after is not None:
            val_score = val_after
        yield result
