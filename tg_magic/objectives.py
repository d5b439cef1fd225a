"""Loss kinds: from a variable and a kind name to an Objective that `train.optimize` runs.

The notebook's `%%tgloss --tests|--judge|--data` and the classroom's `--tests|--rubric` both
build their objectives here, so adding a kind means one entry in KINDS (plus its parser line and
its label where it is shown).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import prompts
from .data import Example, load_examples, split
from .errors import InputError
from .loss import MetricLoss, TestLoss, TextLoss
from .train import Objective
from .variable import Variable


@dataclass
class LossSpec:
    """What a loss cell (or a teacher's file) says: its kind, its text, its data."""

    kind: str
    body: str = ""
    data: Path | None = None
    metric: Any = "exact"
    model: Any = None  # the engine (or its spec) of the judge, or of the forward model for data
    examples: list[Example] = field(default_factory=list)


@dataclass(frozen=True)
class Kind:
    """A kind of loss: which variables it evaluates, whether it needs a body, how it builds."""

    label: str  # what it is called in the magic line and in tables: --tests, "tests"
    variable_kind: str | None  # the %%tgvariable --kind it needs (None: any)
    needs_body: bool
    build: Callable[[Variable, LossSpec, list[Example]], Objective[Any]]
    why: str = ""  # what it does, said when the variable has the wrong kind


def per_test(report: Any) -> list[float]:
    """A test report as one score per test (1 passed, 0 failed); a run that never reached the
    tests is one 0, so such a candidate loses to any that ran them."""
    return [float(o.passed) for o in report.outcomes] or [0.0]


def tests_on(spec: LossSpec, var: Variable, code: str) -> Any:
    """The sandbox report of a tests loss on `code` (a candidate), leaving `var` untouched."""
    stand_in = Variable(code, role_description=var.role_description)
    return TestLoss.report(TestLoss(spec.body)(stand_in))


def _tests(var: Variable, spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    tests = TestLoss(spec.body)
    return Objective(
        lambda _: tests(var),
        validate=lambda: tests(var).score,
        validate_each=lambda values: per_test(tests_on(spec, var, values[0])),
    )


def _judge(var: Variable, spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    judge = TextLoss(spec.body, engine=spec.model)
    return Objective(lambda _: judge(var))


def _rubric(var: Variable, spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    judge = TextLoss(prompts.rubric_instruction(spec.body), engine=spec.model)
    return Objective(lambda _: judge(var))


def _data(var: Variable, spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    metric_loss = MetricLoss(var, spec.metric, engine=spec.model)
    examples = spec.examples

    def loss(batch: list[Any] | None) -> Variable:
        return metric_loss(batch or examples)

    def each(values: list[str]) -> list[float]:
        """The metric on each held-out example, answered with the candidate prompt `values[0]`."""
        stand_in = Variable(values[0], role_description=var.role_description, requires_grad=False)
        total = MetricLoss(stand_in, spec.metric, engine=spec.model)(held_out)
        total.value  # noqa: B018 - answers every example at once
        assert total.grad_fn is not None  # the sum of the verdicts, one an example
        return [v.score or 0.0 for v in total.grad_fn.inputs]

    if not held_out:
        return Objective(loss, examples)
    return Objective(loss, examples, lambda: metric_loss.evaluate(held_out), each)


KINDS: dict[str, Kind] = {
    "tests": Kind("tests", "code", False, _tests, "--tests needs a code variable"),
    "judge": Kind("judge", None, True, _judge),
    "rubric": Kind("rubric", None, True, _rubric),
    "data": Kind("data", "prompt", False, _data, "--data trains a system prompt"),
}


def check(spec: LossSpec, *, name: str, target: str, variable_kind: str) -> None:
    """Bad input fails when the loss is defined, with the fix: the wrong kind of variable,
    tests that do not parse, a missing data set, an empty instruction."""
    kind = KINDS.get(spec.kind)
    if kind is None:
        raise InputError(f"unknown loss kind {spec.kind!r}: use {', '.join(KINDS)}")
    if kind.variable_kind and variable_kind != kind.variable_kind:
        raise InputError(
            f"{kind.why}, and {target} is a {variable_kind}: declare it with "
            f"%%tgvariable {target} --kind {kind.variable_kind}"
        )
    if spec.kind == "tests":
        TestLoss(spec.body)  # the tests must parse
    if spec.kind == "data":
        if spec.data is None:
            raise InputError("--metric needs a data set: add --data FILE.jsonl")
        spec.examples = load_examples(spec.data)
        if spec.model:
            from .engines import get_engine

            get_engine(spec.model)  # a wrong spec fails now
    if kind.needs_body and not spec.body.strip():
        raise InputError(f"the loss {name} is empty: write the evaluation instruction")


def build(
    spec: LossSpec, variable: Variable, *, val: str | None = None, val_frac: float | None = None
) -> Objective[Any]:
    """The objective of one loss over one variable; `val`/`val_frac` hold data back for the
    validation gate of a data loss."""
    held_out: list[Example] = []
    if spec.kind == "data":
        if val:
            held_out = load_examples(val)
        elif val_frac:
            train, held_out = split(spec.examples, val_frac)
            spec = LossSpec(**{**spec.__dict__, "examples": train})
    return KINDS[spec.kind].build(variable, spec, held_out)


_SCORE = re.compile(
    r"score\W{0,3}\s*(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE
)


def rubric_score(evaluation: str) -> float | None:
    """The judge's last "Score: N/M" as a fraction, or None when it gave none."""
    found = _SCORE.findall(evaluation)
    if not found:
        return None
    got, out_of = (float(x) for x in found[-1])
    return None if out_of <= 0 else max(0.0, min(1.0, got / out_of))


def constraints(variable_kinds: set[str]) -> list[str]:
    """The rules a new value must follow, for the kinds of variables a step changes."""
    return [c for kind in sorted(variable_kinds) for c in prompts.KIND_CONSTRAINTS[kind]]


def test_report(output: Variable) -> Any:
    """The sandbox's report behind a tests loss's value: which test passed, why one failed."""
    return TestLoss.report(output)
