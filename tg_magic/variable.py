"""Variable: a text in the computation graph, with its predecessors and textual gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import runtime
from .errors import InputError

if TYPE_CHECKING:
    from .engines import Engine
    from .functions import Node


@dataclass(frozen=True)
class Gradient:
    """One piece of feedback, with the context it was computed in (the call, its output...)."""

    text: str
    context: dict[str, str] = field(default_factory=dict)


class Variable:
    """A text (prompt, code, answer...) that functions consume and produce.

    The value of a function's output is computed lazily: reading `.value`, or `backward()`,
    runs every pending call of the graph concurrently.
    """

    def __init__(
        self,
        value: str,
        *,
        role_description: str,
        requires_grad: bool = True,
        predecessors: list[Variable] | None = None,
    ) -> None:
        if not isinstance(value, str):
            raise InputError(
                f"a Variable's value must be text, got {type(value).__name__}: pass str(value)"
            )
        if not value.strip():
            raise InputError(
                f"the {role_description or 'variable'} is empty: give it a starting text"
            )
        self._value: str | None = value
        self.role_description = role_description
        self.requires_grad = requires_grad
        self.predecessors: list[Variable] = list(predecessors or [])
        self.gradients: list[Gradient] = []
        self.grad_fn: Node | None = None
        self.past_values: list[str] = []  # earlier values, oldest first (the optimizer's momentum)

    @classmethod
    def _output(cls, node: Node, role_description: str) -> Variable:
        """A function's output: pending until the graph is run."""
        out = cls.__new__(cls)
        out._value = None
        out.role_description = role_description
        out.requires_grad = any(p.requires_grad for p in node.inputs)
        out.predecessors = list(node.inputs)
        out.gradients = []
        out.grad_fn = node
        out.past_values = []
        return out

    @property
    def value(self) -> str:
        if self._value is None:
            from .autograd import forward

            runtime.run(forward([self]))
        assert self._value is not None
        return self._value

    @value.setter
    def value(self, new: str) -> None:
        if not isinstance(new, str):
            raise InputError(f"a Variable's value must be text, got {type(new).__name__}")
        self._value = new

    @property
    def score(self) -> float | None:
        """A number for losses that have one (a metric, a test pass fraction), else None."""
        if self.grad_fn is None:
            return None
        self.value  # noqa: B018 - the score is computed with the value
        return self.grad_fn.function.score(self.grad_fn)

    @property
    def is_pending(self) -> bool:
        return self._value is None

    def set_value(self, value: str) -> None:
        self.value = value

    def get_value(self) -> str:
        return self.value

    def get_role_description(self) -> str:
        return self.role_description

    def get_gradient_text(self) -> str:
        """All feedback received, one paragraph each."""
        return "\n\n".join(g.text for g in self.gradients)

    def backward(self, engine: Engine | str | None = None, *, hint: bool | None = None) -> None:
        """Send textual gradients from this variable (usually a loss) back through its graph.
        hint=True asks for hints that point at the problem without the fix (None: the
        `feedback_only` setting)."""
        from .autograd import backward
        from .config import settings

        runtime.run(backward(self, engine, hint=settings.feedback_only if hint is None else hint))

    def __repr__(self) -> str:
        text = "<pending>" if self._value is None else self._value
        if len(text) > 60:
            text = text[:57] + "..."
        return f"Variable({text!r}, role={self.role_description!r}, grad={self.requires_grad})"

    def __str__(self) -> str:
        return self.value

    def __add__(self, other: Any) -> Variable:
        from .functions import sum as tg_sum

        return tg_sum([self, other])


def ensure_variable(obj: Any, what: str) -> Variable:
    """Check a function argument, with an error that says what to pass instead."""
    if not isinstance(obj, Variable):
        raise InputError(
            f"{what} must be a tg.Variable, got {type(obj).__name__}: "
            f"wrap it with tg.Variable(value, role_description=...)"
        )
    return obj
