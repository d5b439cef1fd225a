"""TextGrad's autograd operations that tg-magic's core has no other name for: calls whose input
mixes text and images (MultimodalLLMCall, OrderedFieldsMultimodalLLMCall) and `Module`.

They are LLMCall subclasses: forward sends the parts (text and image blocks, in order) to the
engine; backward is LLMCall's gradient, with the images shown to the gradient engine too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from ..engines import Engine
from ..errors import InputError
from ..functions import LLMCall, Node
from ..images import Image, Part, text_of
from ..variable import Variable, ensure_variable

DEFAULT_ROLE = "response from the language model"


class MultimodalLLMCall(LLMCall):
    """`MultimodalLLMCall(engine)([image, question])`: one call whose message holds every input
    in order, text as text and image variables as image blocks."""

    def __call__(  # type: ignore[override]
        self, inputs: list[Variable], response_role_description: str = DEFAULT_ROLE
    ) -> Variable:
        inputs = list(inputs)
        for i, var in enumerate(inputs):
            ensure_variable(var, f"input {i} of a multimodal call")
        if not inputs:
            raise InputError("MultimodalLLMCall needs at least one input Variable")
        sent = inputs + ([self.system_prompt] if self.system_prompt else [])
        return self._apply(sent, response_role_description, count=len(inputs))

    def _parts(self, node: Node) -> list[Part]:
        return [v.value for v in node.inputs[: node.info["count"]]]

    def _prompt(self, node: Node) -> str:
        return text_of(self._parts(node))


class OrderedFieldsMultimodalLLMCall(MultimodalLLMCall):
    """A multimodal call over named fields, sent in the order of `fields` with their names."""

    def __init__(
        self,
        engine: Engine | str | None,
        fields: list[str],
        system_prompt: Variable | None = None,
    ) -> None:
        super().__init__(engine, system_prompt)
        self.fields = list(fields)

    def __call__(  # type: ignore[override]
        self, inputs: dict[str, Variable], response_role_description: str = DEFAULT_ROLE
    ) -> Variable:
        if not isinstance(inputs, dict) or set(inputs) != set(self.fields):
            raise InputError(f"this call takes a dict with exactly the fields {self.fields}")
        return super().__call__([inputs[f] for f in self.fields], response_role_description)

    def _parts(self, node: Node) -> list[Part]:
        parts: list[Part] = []
        for name, value in zip(self.fields, super()._parts(node), strict=True):
            if isinstance(value, Image):
                parts += [f"<{name}>", value, f"</{name}>"]
            else:
                parts.append(f"<{name}> {value} </{name}>")
        return parts


class Module(ABC):
    """TextGrad's base for a model made of calls: `forward`, `parameters`, `__call__`."""

    @abstractmethod
    def forward(self, *args: Any, **kwargs: Any) -> Variable: ...

    def parameters(self) -> list[Variable]:
        return []

    def named_parameters(self) -> Iterator[tuple[str, Variable]]:
        for p in self.parameters():
            yield p.role_description, p

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.gradients = []

    def __call__(self, *args: Any, **kwargs: Any) -> Variable:
        return self.forward(*args, **kwargs)
