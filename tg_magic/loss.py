"""Losses: an evaluation in words, written by a model (the LLM judge of the paper)."""

from __future__ import annotations

from . import prompts
from .engines import Engine
from .errors import InputError
from .functions import LLMCall, Node
from .variable import Variable, ensure_variable


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
