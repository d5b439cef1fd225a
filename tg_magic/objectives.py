"""Loss kinds: from a variable and a kind name to an Objective that `train.optimize` runs.

The notebook's `%%tgloss --tests|--judge|--data` and the classroom's `--tests|--rubric` both
build their objectives here, so adding a kind means one entry in KINDS (plus its parser line and
its label where it is shown).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import prompts, train
from .data import Example, load_examples, split
from .errors import InputError
from .loss import MetricLoss, ProgramLoss, TestLoss, TextLoss
from .train import Objective, StepResult
from .variable import Variable, standing_in


@dataclass
class LossSpec:
    """What a loss cell (or a teacher's file) says: its kind, its text, its data."""

    kind: str
    body: str = ""
    data: Path | None = None
    metric: Any = "exact"
    model: Any = None  # the engine (or its spec) of the judge, or of the forward model for data
    examples: list[Example] = field(default_factory=list)
    program: Any = None  # a --program loss: the user's function of one example's input


@dataclass(frozen=True)
class Kind:
    """A kind of loss: which variables it evaluates, whether it needs a body, how it builds."""

    label: str  # what it is called in the magic line and in tables: --tests, "tests"
    variable_kind: str | None  # the %%tgvariable --kind it needs (None: any)
    needs_body: bool
    build: Callable[[list[Variable], LossSpec, list[Example]], Objective[Any]]
    why: str = ""  # what it does, said when the variable has the wrong kind


def per_test(report: Any) -> list[float]:
    """A test report as one score per test (1 passed, 0 failed); a run that never reached the
    tests is one 0, so such a candidate loses to any that ran them."""
    return [float(o.passed) for o in report.outcomes] or [0.0]


def tests_on(spec: LossSpec, variables: list[Variable], codes: list[str]) -> Any:
    """The sandbox report of a tests loss on `codes` (a candidate, one per variable), leaving
    the variables untouched."""
    with standing_in(dict(zip(variables, codes, strict=True))):
        return TestLoss.report(TestLoss(spec.body)(variables))


def _tests(variables: list[Variable], spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    tests = TestLoss(spec.body)
    return Objective(
        lambda _: tests(variables),
        validate=lambda: tests(variables).score,
        validate_each=lambda values: per_test(tests_on(spec, variables, values)),
        maximum=1.0,
        at_maximum="every test passes",
    )


def _judge(variables: list[Variable], spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    judge = TextLoss(spec.body, engine=spec.model)
    return Objective(lambda _: judge(variables[0]))


def _rubric(variables: list[Variable], spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    judge = TextLoss(prompts.rubric_instruction(spec.body), engine=spec.model)
    return Objective(lambda _: judge(variables[0]))


def _data(variables: list[Variable], spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    loss = MetricLoss(variables[0], spec.metric, engine=spec.model)
    return _over_examples(variables, loss, spec, held_out)


def _program(variables: list[Variable], spec: LossSpec, held_out: list[Example]) -> Objective[Any]:
    return _over_examples(variables, ProgramLoss(spec.program, spec.metric), spec, held_out)


def _over_examples(
    variables: list[Variable], loss: ProgramLoss, spec: LossSpec, held_out: list[Example]
) -> Objective[Any]:
    """A loss over labelled examples: a batch of them to train, the held-out ones (if any) to
    validate, each candidate scored per held-out example with its values standing in."""
    examples = spec.examples
    maximum = 1.0 if isinstance(spec.metric, str) else None  # the named metrics give 0 or 1

    def each(values: list[str]) -> list[float]:
        with standing_in(dict(zip(variables, values, strict=True))):
            return loss.scores(held_out)

    if not held_out:
        return Objective(lambda batch: loss(batch or examples), examples)
    return Objective(
        lambda batch: loss(batch or examples),
        examples,
        lambda: loss.evaluate(held_out),
        each,
        maximum=maximum,
        at_maximum="the validation score reached 1.0, the metric's maximum",
    )


KINDS: dict[str, Kind] = {
    "tests": Kind("tests", "code", False, _tests, "--tests needs a code variable"),
    "judge": Kind("judge", None, True, _judge),
    "rubric": Kind("rubric", None, True, _rubric),
    "data": Kind("data", "prompt", False, _data, "--data trains a system prompt"),
    "program": Kind("program", None, False, _program),
}


def check(spec: LossSpec, *, name: str, targets: dict[str, str]) -> None:
    """Bad input fails when the loss is defined, with the fix: the wrong kind or number of
    variables, tests that do not parse, a missing data set, an empty instruction. `targets`
    maps each variable the loss trains to its kind (prompt, code, text)."""
    kind = KINDS.get(spec.kind)
    if kind is None:
        raise InputError(f"unknown loss kind {spec.kind!r}: use {', '.join(KINDS)}")
    for target, variable_kind in targets.items():
        if kind.variable_kind and variable_kind != kind.variable_kind:
            raise InputError(
                f"{kind.why}, and {target} is a {variable_kind}: declare it with "
                f"%%tgvariable {target} --kind {kind.variable_kind}"
            )
    if len(targets) > 1 and spec.kind not in ("tests", "program"):
        raise InputError(
            f"a {kind.label} loss trains one variable, not {len(targets)}: give one --target "
            "(several prompts go through --program FUNC; several code cells through --tests)"
        )
    if spec.kind == "tests":
        TestLoss(spec.body)  # the tests must parse
    if spec.kind in ("data", "program"):
        if spec.data is None:
            raise InputError("--metric needs a data set: add --data FILE.jsonl")
        spec.examples = load_examples(spec.data)
        if spec.model:
            from .engines import get_engine

            get_engine(spec.model)  # a wrong spec fails now
    if kind.needs_body and not spec.body.strip():
        raise InputError(f"the loss {name} is empty: write the evaluation instruction")


def build(
    spec: LossSpec,
    variables: Variable | list[Variable],
    *,
    val: str | None = None,
    val_frac: float | None = None,
) -> Objective[Any]:
    """The objective of one loss over its variables (one, or a program's or a tests loss's
    several); `val`/`val_frac` hold data back for the validation gate of a data loss."""
    held_out: list[Example] = []
    if spec.kind in ("data", "program"):
        if val:
            held_out = load_examples(val)
        elif val_frac:
            train, held_out = split(spec.examples, val_frac)
            spec = LossSpec(**{**spec.__dict__, "examples": train})
    listed = variables if isinstance(variables, list) else [variables]
    return KINDS[spec.kind].build(listed, spec, held_out)


def program_objective(
    program: Any,
    data: str | Path | list[Example],
    metric: Any = "exact",
    *,
    parameters: list[Variable] | None = None,
    val: str | Path | list[Example] | None = None,
    val_frac: float | None = None,
) -> tuple[list[Variable], Objective[Any]]:
    """A program over a data set as (the variables it trains, its objective): the parameters
    are found by running the program on the first example when not given."""
    from .programs import check_program, reach

    check_program(program)
    examples = load_examples(data) if isinstance(data, str | Path) else list(data)
    held_out = load_examples(val) if isinstance(val, str | Path) else list(val or [])
    if val_frac and not held_out:
        examples, held_out = split(examples, val_frac)
    if parameters is None:
        parameters = reach(program, [e.input for e in examples]).trains
    if not parameters:
        raise InputError(
            "the program trains no variable: call a model on a tg.Variable created with "
            "requires_grad=True (e.g. tg.llm(prompt, x)), or pass parameters=[...]"
        )
    spec = LossSpec("program", examples=examples, metric=metric, program=program)
    return parameters, _program(parameters, spec, held_out)


def optimize(
    parameters: list[Variable] | None = None,
    objective: Objective[Any] | None = None,
    *,
    program: Any = None,
    data: str | Path | list[Example] | None = None,
    metric: Any = "exact",
    val: str | Path | list[Example] | None = None,
    val_frac: float | None = None,
    **options: Any,
) -> Iterator[StepResult]:
    """`tg.optimize(program=FUNC, data=..., metric=...)`: steps of TGD over every variable the
    program reaches (or `parameters`); or `tg.optimize(parameters, objective)`. Yields each
    step's result (see tg_magic.train.optimize for the options)."""
    if program is not None:
        if data is None:
            raise InputError("tg.optimize(program=...) needs data=: a JSONL/CSV file or examples")
        parameters, objective = program_objective(
            program, data, metric, parameters=parameters, val=val, val_frac=val_frac
        )
    if parameters is None or objective is None:
        raise InputError("tg.optimize needs program= and data=, or parameters and an objective")
    return train.optimize(parameters, objective, **options)


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
