"""Losses: an evaluation in words by a model (TextLoss), tests run for real (TestLoss), a metric
over a labelled data set (MetricLoss)."""

from __future__ import annotations

from builtins import sum as sum_
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import prompts, pysource
from .config import settings
from .data import METRIC_PURPOSE, METRICS, Example
from .engines import Engine
from .errors import InputError
from .functions import BlackboxLLM, LLMCall, Node, StringBasedFunction, sum
from .variable import Variable, ensure_variable

if TYPE_CHECKING:
    from .sandbox import TestReport


def _instruction(value: str | Variable, role: str) -> Variable:
    if isinstance(value, Variable):
        return value
    if not isinstance(value, str):
        raise InputError(f"the {role} must be text or a tg.Variable")
    return Variable(value, role_description=role, requires_grad=False)


class TextLoss(LLMCall):
    """`TextLoss(instruction)(x)`: a model evaluates x following the instruction."""

    def __init__(
        self, eval_system_prompt: str | Variable, engine: Engine | str | None = None
    ) -> None:
        super().__init__(engine, _instruction(eval_system_prompt, "evaluation instruction"))

    def __call__(
        self, instance: Variable, response_role_description: str = "evaluation"
    ) -> Variable:
        return super().__call__(instance, response_role_description)


class MultiFieldEvaluation(LLMCall):
    """Evaluate several named texts together (question, prediction, reference answer...)."""

    def __init__(
        self,
        evaluation_instruction: str | Variable,
        role_descriptions: list[str],
        engine: Engine | str | None = None,
    ) -> None:
        super().__init__(engine, _instruction(evaluation_instruction, "evaluation instruction"))
        self.role_descriptions = list(role_descriptions)

    def __call__(  # type: ignore[override]
        self, inputs: list[Variable], response_role_description: str = "evaluation"
    ) -> Variable:
        inputs = list(inputs)
        if len(inputs) != len(self.role_descriptions):
            raise InputError(
                f"MultiFieldEvaluation got {len(inputs)} inputs for "
                f"{len(self.role_descriptions)} role descriptions: pass one Variable per role"
            )
        for role, var in zip(self.role_descriptions, inputs, strict=True):
            ensure_variable(var, f"the {role}")
        assert self.system_prompt is not None
        return self._apply([*inputs, self.system_prompt], response_role_description)

    def _prompt(self, node: Node) -> str:
        values = [v.value for v in node.inputs[: len(self.role_descriptions)]]
        return prompts.evaluation_prompt(dict(zip(self.role_descriptions, values, strict=True)))


class TestLoss(StringBasedFunction):
    """Code against tests, run for real in the sandbox (tg_magic.sandbox).

    The test report (failures, assertion messages, traceback ends) is the evaluation; the score
    is the fraction of tests that passed (each top-level assert or test_* function is one test),
    0 when the code crashed or hung. Without a working bubblewrap the run raises
    SandboxUnavailable unless `allow_unsandboxed=True` (trusted code only; None: the
    `allow_unsandboxed` setting, read when the tests run).
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        tests: str,
        *,
        timeout: float = 20.0,
        memory_mb: int = 1024,
        allow_unsandboxed: bool | None = None,
    ) -> None:
        if not isinstance(tests, str) or not tests.strip():
            raise InputError("the test cell is empty: write asserts or test_* functions")
        try:
            pysource.parse(tests)
        except SyntaxError as exc:
            raise InputError(
                f"the test cell does not parse: line {exc.lineno}: {exc.msg}; fix the tests"
            ) from None
        self.tests = tests
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.allow_unsandboxed = allow_unsandboxed
        super().__init__(
            self._run,
            "run these tests against the code, in a sandboxed process; the output "
            f"is the test report:\n{tests}",
        )

    def __call__(  # type: ignore[override]
        self, code: Variable | list[Variable], response_role_description: str = "test report"
    ) -> Variable:
        """The tests against one code variable, or several run together as one module in the
        order given (a parser and the function that uses it): each gets its own gradient."""
        codes = code if isinstance(code, list) else [code]
        if not codes:
            raise InputError("TestLoss needs the code under test: a tg.Variable (or a list)")
        for var in codes:
            ensure_variable(var, "the code under test")
        names = {"code" if i == 0 else f"code_{i + 1}": v for i, v in enumerate(codes)}
        return super().__call__(names, response_role_description)

    def _run(self, **codes: Variable) -> TestReport:
        from .sandbox import run_tests

        values = [v.value for v in codes.values()]
        module = values[0] if len(values) == 1 else "\n\n".join(v.strip("\n") for v in values)
        return run_tests(
            module,
            self.tests,
            timeout=self.timeout,
            memory_mb=self.memory_mb,
            allow_unsandboxed=settings.allow_unsandboxed
            if self.allow_unsandboxed is None
            else self.allow_unsandboxed,
        )

    @staticmethod
    def report(output: Variable) -> TestReport:
        """The full sandbox report behind a test loss's value: per-test outcomes, the problem."""
        if output.grad_fn is None or not isinstance(output.grad_fn.function, TestLoss):
            raise InputError("TestLoss.report needs the output of a TestLoss")
        output.value  # noqa: B018 - runs the tests if they have not run yet
        report: TestReport = output.grad_fn.info["result"]
        return report


Metric = str | Callable[[str, str], bool | float]


def _metric(metric: Metric) -> tuple[Callable[[str, str], bool | float], str]:
    """A metric (a name or a function) and what it does, in words for the gradient model."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise InputError(
                f"unknown metric {metric!r}: use {', '.join(METRICS)} or python:FUNCTION"
            )
        return METRICS[metric], METRIC_PURPOSE[metric]
    if callable(metric):
        return metric, f"the metric {getattr(metric, '__name__', 'metric')}: higher is better"
    raise InputError("a metric is a name (exact, number, contains) or a function")


class ProgramLoss:
    """A program over a labelled data set: the program answers each example's input (a thread
    each, all at once; see tg_magic.programs), a metric scores each answer, and the verdicts
    become feedback that flows back through every call the program made.

    An example on which the program fails is left out of the step, in one line (`skipped`);
    when it fails on every example, the loss fails."""

    def __init__(self, program: Callable[[Any], Any], metric: Metric = "exact") -> None:
        from .programs import check_program, name_of

        self.program = check_program(program)
        self.name = name_of(program)
        self.metric, self.purpose = _metric(metric)
        self.scorer = StringBasedFunction(self._score, self.purpose)

    def _score(self, prediction: Variable, target: Variable) -> float:
        return float(self.metric(prediction.value, target.value))

    def _verdicts(self, examples: list[Example]) -> tuple[list[Variable | None], list[str]]:
        """One verdict an example (None where the program failed), and the failures."""
        from .programs import run

        if not examples:
            raise InputError("the loss needs at least one example")
        verdicts: list[Variable | None] = []
        skipped = []
        runs = run(self.program, [e.input for e in examples])
        for example, done in zip(examples, runs, strict=True):
            if done.output is None:
                verdicts.append(None)
                skipped.append(f"example {example.row or done.index + 1}: {done.error}")
                continue
            target = Variable(
                example.target, role_description="correct answer", requires_grad=False
            )
            verdicts.append(self.scorer({"prediction": done.output, "target": target}))
        if not any(v is not None for v in verdicts):
            raise InputError(f"{self.name} failed on every example ({skipped[0]}): fix it first")
        return verdicts, skipped

    def __call__(self, examples: list[Example]) -> Variable:
        verdicts, skipped = self._verdicts(examples)
        loss = sum([v for v in verdicts if v is not None])
        assert loss.grad_fn is not None
        loss.grad_fn.info["skipped"] = skipped
        return loss

    def scores(self, examples: list[Example]) -> list[float]:
        """The metric on each example (0 where the program failed): forward calls only."""
        verdicts, _ = self._verdicts(examples)
        done = [v for v in verdicts if v is not None]
        sum(done).value  # noqa: B018 - answers every example at once
        return [0.0 if v is None else (v.score or 0.0) for v in verdicts]

    def evaluate(self, examples: list[Example]) -> float:
        """The mean metric over examples."""
        scores = self.scores(examples)
        return sum_(scores) / len(scores)


def skipped(loss: Variable) -> list[str]:
    """The examples a program failed on, one line each, anywhere in a loss's graph."""
    from .autograd import graph

    return [s for v in graph([loss]) if v.grad_fn for s in v.grad_fn.info.get("skipped", ())]


class MetricLoss(ProgramLoss):
    """Prompt optimization over a labelled data set: the one-call program. A forward model
    answers each input with the trained system prompt; a metric scores each answer."""

    def __init__(
        self, system_prompt: Variable, metric: Metric = "exact", engine: Engine | str | None = None
    ) -> None:
        ensure_variable(system_prompt, "the system prompt")
        self.model = BlackboxLLM(engine, system_prompt)
        super().__init__(self._answer, metric)

    def _answer(self, given: str | dict[str, str]) -> Variable:
        text = given if isinstance(given, str) else Example(given, "").text
        question = Variable(text, role_description="question", requires_grad=False)
        return self.model(question, "answer to the question")


class ImageQALoss:
    """TextGrad's `ImageQALoss(evaluation_instruction, engine)(image=, question=, response=)`:
    a multimodal judge of an answer about an image (the image is sent as an image block)."""

    def __init__(
        self,
        evaluation_instruction: str,
        engine: Engine | str | None = None,
        system_prompt: Variable | None = None,
    ) -> None:
        from .autograd.ops import OrderedFieldsMultimodalLLMCall

        self.evaluation_instruction = _instruction(evaluation_instruction, "evaluation instruction")
        self.system_prompt = system_prompt or Variable(
            "You are an evaluation system that evaluates image-related questions.",
            role_description="system prompt for the evaluation",
            requires_grad=False,
        )
        self.call = OrderedFieldsMultimodalLLMCall(
            engine,
            ["Evaluation Instruction", "Question", "Image", "Answer"],
            self.system_prompt,
        )
        self.engine = self.call.engine

    def __call__(self, image: Variable, question: Variable, response: Variable) -> Variable:
        inputs = {
            "Evaluation Instruction": self.evaluation_instruction,
            "Question": question,
            "Image": image,
            "Answer": response,
        }
        return self.call(inputs, f"evaluation of the {response.role_description}")

    forward = __call__
