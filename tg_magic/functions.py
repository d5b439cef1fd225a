"""Functions of the graph. Each call makes a Node (the function and its inputs); forward computes
the output text, backward turns the output's gradients into gradients of the inputs."""

from __future__ import annotations

import asyncio
from builtins import sum as sum_
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import prompts
from .engines import Engine, get_engine
from .errors import InputError
from .variable import Gradient, Variable, ensure_variable


class Node:
    """One application of a function: what backward needs to know about the call."""

    def __init__(self, function: Function, inputs: list[Variable], **info: Any) -> None:
        self.function = function
        self.inputs = inputs
        self.info = info

    async def forward(self) -> str:
        return await self.function.forward(self)

    async def backward(self, output: Variable, engine: Engine, *, hint: bool = False) -> None:
        await self.function.backward(self, output, engine, hint=hint)


class Function:
    """Base class. Subclasses build nodes in `__call__` and implement forward and backward."""

    # Whether backward reads the output's value (so waits for its forward); a sum does not.
    reads_output = True

    def _apply(self, inputs: list[Variable], role: str, **info: Any) -> Variable:
        return Variable._output(Node(self, inputs, **info), role)

    async def forward(self, node: Node) -> str:
        raise NotImplementedError

    async def backward(
        self, node: Node, output: Variable, engine: Engine, *, hint: bool = False
    ) -> None:
        """Give each input its gradient; `hint`: feedback that points at the problem without
        writing the fix (a classroom hint)."""
        raise NotImplementedError

    def score(self, node: Node) -> float | None:
        return node.info.get("score")


async def _gradients_through(
    output: Variable,
    engine: Engine,
    call: str,
    targets: Iterable[Variable],
    hint: bool,
    images: Sequence[Any] = (),
    call_shared: int = 0,
) -> None:
    """Ask the gradient engine, once per input that requires grad, how that input should change.
    The calls for several inputs run concurrently; `images` of the call are shown too.

    `call_shared`: how many first characters of `call` are the same for every input the call
    ran on. A trained variable (a leaf) is the same in every example of a batch, so its
    requests share its text and that part of the call: they are sent first, for the prompt
    cache. An intermediate value (a model's answer) differs per example: nothing is shared."""
    feedback = output.get_gradient_text()
    system = prompts.GRADIENT_SYSTEM_SMALL if engine.small else prompts.GRADIENT_SYSTEM
    if hint:
        system += prompts.HINT_RULE

    async def one(var: Variable) -> None:
        shared, rest = prompts.gradient_prompt_parts(
            role=var.role_description,
            value=var.value,
            call=call,
            output_role=output.role_description,
            output=output.value,
            feedback=feedback,
            small=engine.small,
            call_shared=call_shared,
        )
        prompt = shared + rest
        common = len(shared) if var.grad_fn is None else 0
        content = [*images, prompt] if images else prompt
        text = await engine.agenerate(content, system, shared_prefix=common)
        context = {"output": output.value, "output_role": output.role_description}
        if feedback:
            context["output_feedback"] = feedback
        var.gradients.append(Gradient(text, context))

    unique = {id(v): v for v in targets if v.requires_grad}
    await asyncio.gather(*(one(v) for v in unique.values()))


def _backward_engine() -> Engine:
    from .config import get_backward_engine

    return get_backward_engine()


class LLMCall(Function):
    """Call a model with an optional system prompt (itself a Variable, often the one trained)."""

    def __init__(self, engine: Engine | str | None = None, system_prompt: Variable | None = None):
        # No engine: the one set with tg.set_backward_engine, as in TextGrad (else the default).
        self.engine = get_engine(engine) if engine is not None else _backward_engine()
        if system_prompt is not None:
            ensure_variable(system_prompt, "the system prompt")
        self.system_prompt = system_prompt

    def __call__(
        self, input_variable: Variable, response_role_description: str = "response from the model"
    ) -> Variable:
        ensure_variable(input_variable, "the input of an LLM call")
        if isinstance(input_variable._value, bytes):
            raise InputError("an image goes to tg.autograd.MultimodalLLMCall, not to an LLM call")
        inputs = [input_variable] + ([self.system_prompt] if self.system_prompt else [])
        return self._apply(inputs, response_role_description)

    def _prompt(self, node: Node) -> str:
        return node.inputs[0].value

    def _parts(self, node: Node) -> list[Any]:
        """The message sent: its text, or (a multimodal call) texts and images in order."""
        return [self._prompt(node)]

    async def forward(self, node: Node) -> str:
        system = self.system_prompt.value if self.system_prompt else None
        parts = self._parts(node)
        text_only = len(parts) == 1 and isinstance(parts[0], str)
        return await self.engine.agenerate(parts[0] if text_only else parts, system)

    async def backward(
        self, node: Node, output: Variable, engine: Engine, *, hint: bool = False
    ) -> None:
        from .images import Image

        system = self.system_prompt.value if self.system_prompt else None
        call = prompts.llm_call_description(system, self._prompt(node))
        images = [p for p in self._parts(node) if isinstance(p, Image)]
        shared = len(prompts.llm_call_head(system))
        await _gradients_through(output, engine, call, node.inputs, hint, images, shared)


class FormattedLLMCall(LLMCall):
    """An LLM call whose prompt is a template filled from several named input Variables."""

    def __init__(
        self,
        engine: Engine | str | None,
        format_string: str,
        fields: dict[str, str] | None = None,
        system_prompt: Variable | None = None,
    ) -> None:
        super().__init__(engine, system_prompt)
        self.format_string = format_string
        self.fields = fields or {}

    def __call__(  # type: ignore[override]
        self,
        inputs: dict[str, Variable],
        response_role_description: str = "response from the model",
    ) -> Variable:
        if not isinstance(inputs, dict):
            raise InputError("FormattedLLMCall takes a dict of {field name: tg.Variable}")
        for name, var in inputs.items():
            ensure_variable(var, f"the field {name!r}")
        missing = set(self.fields) - set(inputs)
        if missing:
            raise InputError(f"FormattedLLMCall is missing the fields {sorted(missing)}")
        names = list(inputs)
        nodes_inputs = list(inputs.values()) + ([self.system_prompt] if self.system_prompt else [])
        return self._apply(nodes_inputs, response_role_description, names=names)

    def _prompt(self, node: Node) -> str:
        names: list[str] = node.info["names"]
        values = {n: v.value for n, v in zip(names, node.inputs, strict=False)}
        try:
            return self.format_string.format(**values)
        except (KeyError, IndexError) as exc:
            raise InputError(
                f"the template names {exc} that is not among the inputs {names}"
            ) from None


def llm(
    prompt: Variable | str,
    text: Variable | str,
    engine: Engine | str | None = None,
    role: str = "response from the model",
) -> Variable:
    """`tg.llm(system_prompt, text)`: one model call in a program, its answer a Variable that
    keeps the chain (plain text given as `text` is an input, never trained)."""
    if isinstance(prompt, str):
        prompt = Variable(prompt, role_description="system prompt", requires_grad=False)
    if isinstance(text, str):
        text = Variable(text, role_description="input", requires_grad=False)
    return LLMCall(engine, prompt)(text, role)


class BlackboxLLM:
    """A model as a module: `model(x)` calls it; `parameters()` are what an optimizer trains."""

    def __init__(
        self, engine: Engine | str | None = None, system_prompt: Variable | str | None = None
    ) -> None:
        if isinstance(system_prompt, str):
            system_prompt = Variable(
                system_prompt, role_description="system prompt", requires_grad=False
            )
        self.system_prompt = system_prompt
        self.llm_call = LLMCall(engine, system_prompt)
        self.engine = self.llm_call.engine

    def __call__(self, x: Variable, response_role_description: str = "response from the model"):
        return self.llm_call(x, response_role_description)

    forward = __call__

    def parameters(self) -> list[Variable]:
        sp = self.system_prompt
        return [sp] if sp is not None and sp.requires_grad else []


class StringBasedFunction(Function):
    """A deterministic function of texts (exact match, a metric). Backward asks the gradient
    model to explain the evaluation, so the verdict becomes actionable feedback."""

    def __init__(self, fn: Callable[..., Any], function_purpose: str) -> None:
        if not callable(fn):
            raise InputError("StringBasedFunction needs a callable: pass the function itself")
        self.fn = fn
        self.function_purpose = function_purpose

    def __call__(
        self, inputs: dict[str, Variable], response_role_description: str = "output of the function"
    ) -> Variable:
        if not isinstance(inputs, dict):
            raise InputError("StringBasedFunction takes a dict of {argument name: tg.Variable}")
        for name, var in inputs.items():
            ensure_variable(var, f"the argument {name!r}")
        return self._apply(list(inputs.values()), response_role_description, names=list(inputs))

    def _kwargs(self, node: Node) -> dict[str, Variable]:
        return dict(zip(node.info["names"], node.inputs, strict=False))

    async def forward(self, node: Node) -> str:
        # In a worker thread: a metric or a test run may take seconds; others go on meanwhile.
        result = await asyncio.to_thread(self.fn, **self._kwargs(node))
        text, score = _text_and_score(result)
        node.info["score"] = score
        node.info["result"] = result  # the function's own result (e.g. a full test report)
        return text

    async def backward(
        self, node: Node, output: Variable, engine: Engine, *, hint: bool = False
    ) -> None:
        shown = {name: var.value for name, var in self._kwargs(node).items()}
        call = prompts.function_call_description(self.function_purpose, shown)
        await _gradients_through(output, engine, call, node.inputs, hint)


def _text_and_score(result: Any) -> tuple[str, float | None]:
    """A function's result as text, and as a score when it is a number, a (text, score) pair,
    or a report with `text()` and `score`."""
    if isinstance(result, Variable):
        result = result.value
    if callable(getattr(result, "text", None)) and hasattr(result, "score"):
        return str(result.text()), float(result.score)
    if isinstance(result, tuple) and len(result) == 2:
        return str(result[0]), float(result[1])
    if isinstance(result, bool | int | float):
        return str(int(result) if isinstance(result, bool) else result), float(result)
    text = str(result)
    try:
        return text, float(text.strip())
    except ValueError:
        return text, None


class PlainPython(Function):
    """A text the user's Python made from other variables (`tg.Variable(text,
    predecessors=[...])`): no call to run; its feedback passes on to what it was made from,
    with the text it was about, so the chain through a parse or a reformat is kept."""

    def node(self, inputs: list[Variable]) -> Node:
        return Node(self, inputs)

    async def forward(self, node: Node) -> str:
        raise InputError("a text made by plain Python has its value already")

    async def backward(
        self, node: Node, output: Variable, engine: Engine, *, hint: bool = False
    ) -> None:
        made = output.value
        for var in node.inputs:
            if var.requires_grad:
                var.gradients.extend(
                    Gradient(g.text, {**g.context, "derived": made}) for g in output.gradients
                )


class Sum(Function):
    """Aggregate a batch of losses: the value lists them; gradients pass through unchanged."""

    reads_output = False  # each loss's gradients go back as soon as that loss exists

    def __call__(self, variables: list[Variable]) -> Variable:
        items = list(variables)
        if not items:
            raise InputError("tg.sum needs at least one Variable")
        for i, var in enumerate(items):
            ensure_variable(var, f"item {i} of tg.sum")
        roles = list(dict.fromkeys(v.role_description for v in items))
        return self._apply(items, "a combination of the following: " + ", ".join(roles))

    async def forward(self, node: Node) -> str:
        return "\n".join(v.value for v in node.inputs)

    async def backward(
        self, node: Node, output: Variable, engine: Engine, *, hint: bool = False
    ) -> None:
        for var in node.inputs:
            if var.requires_grad:
                var.gradients.extend(output.gradients)

    def score(self, node: Node) -> float | None:
        """The mean score of the batch, when every item has one."""
        scores = [v.score for v in node.inputs]
        if not scores or any(s is None for s in scores):
            return None
        return float(sum_([s for s in scores if s is not None])) / len(scores)


def sum(variables: Iterable[Variable]) -> Variable:
    """The sum of a batch of losses (`tg.sum`)."""
    return Sum()(list(variables))
