"""Textual Gradient Descent: a model rewrites each variable given its gradients.

A step is all or nothing: every parameter's new value is proposed first, and only when all of
them are usable are they set, together; otherwise none changes and the proposals are kept in
`optimizer.failures`."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from . import prompts, runtime
from .config import get_backward_engine, settings
from .engines import Engine, get_engine
from .engines.base import IMPROVED_VARIABLE
from .errors import InputError
from .variable import Variable, ensure_variable

CONTEXT_CHARS = 300  # how much of the output a gradient was about is shown to the optimizer


@dataclass(frozen=True)
class FailedUpdate:
    """A step whose reply could not be used: the variable kept its value; the reply is here."""

    variable: Variable
    reply: str
    reason: str


class TGD:
    """`TGD(parameters).step()` proposes and sets a new value for every parameter with gradients.

    momentum: how many past values to show the optimizer (so it does not go back);
    constraints: rules every new value must follow (in words);
    in_context_examples: good values of this kind of variable.
    """

    def __init__(
        self,
        parameters: Iterable[Variable],
        engine: Engine | str | None = None,
        *,
        momentum: int = 0,
        constraints: Iterable[str] | None = (),
        in_context_examples: Iterable[str] | None = (),
        verbose: int = 0,
    ) -> None:
        self.parameters = [ensure_variable(p, "each parameter") for p in parameters]
        if not self.parameters:
            raise InputError(
                "TGD got no parameters: pass the variables to optimize (created with "
                "requires_grad=True), e.g. TGD(model.parameters())"
            )
        for p in self.parameters:
            if not p.requires_grad and p.grad_fn is not None:
                p.requires_grad = True  # a model's output, optimized itself (as in TextGrad)
            if not p.requires_grad:
                raise InputError(
                    f"the {p.role_description} has requires_grad=False: an optimizer can only "
                    "update variables created with requires_grad=True"
                )
        self.engine = get_engine(engine) if engine is not None else None
        self.momentum = momentum
        self.constraints = list(constraints or ())
        self.in_context_examples = list(in_context_examples or ())
        self.verbose = verbose
        self.failures: list[FailedUpdate] = []

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.gradients = []

    def step(self) -> None:
        runtime.run(self.astep())

    async def astep(self) -> None:
        """Propose new values for all parameters concurrently; set all of them, or none."""
        if settings.feedback_only:
            raise InputError(
                "feedback-only mode is on: steps are disabled; read the hint with "
                "get_gradient_text() (turn the mode off with TG_MAGIC_FEEDBACK_ONLY=0)"
            )
        todo = [p for p in self.parameters if p.gradients]
        if not todo:
            warnings.warn(
                "TGD.step(): no parameter has gradients; call loss.backward() first", stacklevel=2
            )
            return
        engine = self.engine or get_backward_engine()
        tasks = [asyncio.ensure_future(self._propose(p, engine)) for p in todo]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # a failure, or a cancellation (Ctrl-C): nothing may finish later
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        done = [(p, t.result()) for p, t in zip(todo, tasks, strict=True) if _succeeded(t)]
        error = next((t.exception() for t in tasks if _failed(t)), None)
        unusable = [p.role_description for p, (_, new) in done if new is None]
        if error is None and not unusable:
            for var, (_, new) in done:
                assert new is not None
                var.past_values.append(var.value)
                var.value = new
                if self.verbose:
                    print(f"{var.role_description} updated:\n{new}")
            return
        for var, (reply, new) in done:
            if new is None:
                reason = (
                    f"the optimizer's reply has no {prompts.OPEN}...{prompts.CLOSE} value; "
                    "the variable keeps its value (the reply is in optimizer.failures)"
                )
                warnings.warn(f"{var.role_description}: {reason}", stacklevel=2)
            else:
                why = f"the update of {unusable[0]} was unusable" if unusable else "the step failed"
                reason = (
                    f"not applied: {why}, and a step changes all its parameters or none "
                    "(the proposal is in optimizer.failures)"
                )
            self.failures.append(FailedUpdate(var, reply, reason))
        if error is not None:
            raise error

    async def _propose(self, var: Variable, engine: Engine) -> tuple[str, str | None]:
        """The optimizer's reply for one variable, and the new value in it (None: unusable)."""
        prompt = prompts.update_prompt(
            role=var.role_description,
            value=var.value,
            feedback=[(g.text, g.context.get("output", "")[:CONTEXT_CHARS]) for g in var.gradients],
            past_values=var.past_values[-self.momentum :] if self.momentum else [],
            constraints=self.constraints,
            examples=self.in_context_examples,
            small=engine.small,
        )
        system = prompts.OPTIMIZER_SYSTEM_SMALL if engine.small else prompts.OPTIMIZER_SYSTEM
        # Small models ramble rather than stop: bound the new value to about twice the old one.
        budget = len(var.value) // 2 + 64 if engine.small else 4096
        reply = await engine.agenerate(
            prompt, system, max_tokens=budget, structured=IMPROVED_VARIABLE
        )
        return reply, prompts.parse_update(reply)


def _succeeded(task: asyncio.Future[tuple[str, str | None]]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def _failed(task: asyncio.Future[tuple[str, str | None]]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None
