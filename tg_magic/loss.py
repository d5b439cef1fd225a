"""Losses: an evaluation in words by a model (TextLoss), tests run for real (TestLoss), a metric
over a labelled data set (MetricLoss)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

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
        self, code: Variable, response_role_description: str = "test report"
    ) -> Variable:
        ensure_variable(code, "the code under test")
        return super().__call__({"code": code}, response_role_description)

    def _run(self, code: Variable) -> TestReport:
        from .sandbox import run_tests

        return run_tests(
            code.value,
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


class MetricLoss:
    """Prompt optimization over a labelled data set: a forward model answers each input with the
    trained system prompt; a metric scores each answer; the verdicts become feedback."""

    def __init__(
        self, system_prompt: Variable, metric: Metric = "exact", engine: Engine | str | None = None
    ) -> None:
        ensure_variable(system_prompt, "the system prompt")
        if isinstance(metric, str):
            if metric not in METRICS:
                raise InputError(
                    f"unknown metric {metric!r}: use {', '.join(METRICS)} or python:FUNCTION"
                )
            self.purpose = METRIC_PURPOSE[metric]
            self.metric: Callable[[str, str], bool | float] = METRICS[metric]
        elif callable(metric):
            self.purpose = f"the metric {getattr(metric, '__name__', 'metric')}: higher is better"
            self.metric = metric
        else:
            raise InputError("a metric is a name (exact, number, contains) or a function")
        self.model = BlackboxLLM(engine, system_prompt)
        self.scorer = StringBasedFunction(self._score, self.purpose)

    def _score(self, prediction: Variable, target: Variable) -> float:
        return float(self.metric(prediction.value, target.value))

    def __call__(self, examples: list[Example]) -> Variable:
        if not examples:
            raise InputError("MetricLoss needs at least one example")
        verdicts = []
        for example in examples:
            question = Variable(example.input, role_description="question", requires_grad=False)
            target = Variable(
                example.target, role_description="correct answer", requires_grad=False
            )
            prediction = self.model(question, "answer to the question")
            verdicts.append(self.scorer({"prediction": prediction, "target": target}))
        return sum(verdicts)

    def evaluate(self, examples: list[Example]) -> float:
        """The mean metric over examples: forward calls only, all at once."""
        score = self(examples).score
        return 0.0 if score is None else score


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
