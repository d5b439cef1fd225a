"""Variable: a text in the computation graph, with its predecessors and textual gradients."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import runtime
from .errors import InputError
from .gradients import Gradients

if TYPE_CHECKING:
    from .engines import Engine
    from .functions import Node


@dataclass(frozen=True)
class Gradient:
    """One piece of feedback, with the context it was computed in (the call, its output...)."""

    text: str
    context: dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> str:
        """TextGrad's name: its gradients are variables whose value is the feedback."""
        return self.text


class BadValue(InputError, AssertionError):
    """A value that is neither text nor an image (TextGrad asserts here, hence AssertionError)."""


class NotAVariable(InputError, AttributeError):
    """A plain value where a tg.Variable is needed (TextGrad fails on `.value`: AttributeError)."""


# Values that stand in for some variables' own in this context (candidates scored at once, each
# in its own thread), and the variables whose text a program read (to see where it cut a chain).
_STAND_INS: ContextVar[Mapping[int, str] | None] = ContextVar("tg_magic_stand_ins", default=None)
_READS: ContextVar[list[Variable] | None] = ContextVar("tg_magic_reads", default=None)


@contextmanager
def standing_in(values: Mapping[Variable, str]) -> Iterator[None]:
    """Within the block (this thread and the calls it starts), each variable reads as the value
    given, its own untouched: k candidates are scored concurrently through the same program."""
    token = _STAND_INS.set({**(_STAND_INS.get() or {}), **{id(v): t for v, t in values.items()}})
    try:
        yield
    finally:
        _STAND_INS.reset(token)


@contextmanager
def reading() -> Iterator[list[Variable]]:
    """The variables whose text is read within the block (`.value`, `str()`, an f-string)."""
    seen: list[Variable] = []
    token = _READS.set(seen)
    try:
        yield seen
    finally:
        _READS.reset(token)


class Variable:
    """A text (prompt, code, answer...) that functions consume and produce.

    The value of a function's output is computed lazily: reading `.value`, or `backward()`,
    runs every pending call of the graph concurrently.

    As in TextGrad, the value may also be an int (kept as text) or an image: its bytes, or
    `image_path=` a local file or a URL (fetched then, because the user asked for it). Image
    variables hold a tg_magic.images.Image and take no gradients.
    """

    def __init__(
        self,
        value: Any = "",
        image_path: str = "",
        *,
        role_description: str,
        requires_grad: bool = True,
        predecessors: list[Variable] | None = None,
    ) -> None:
        from . import images

        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if image_path:
            if value != "":
                raise InputError("give a Variable a value or an image_path, not both")
            value = images.load(image_path)
        elif isinstance(value, bytes):
            value = images.Image(value)
        if isinstance(value, bytes) and requires_grad:
            raise InputError(
                f"the {role_description} is an image: images take no gradients; "
                "create it with requires_grad=False"
            )
        if not isinstance(value, str | bytes):
            raise BadValue(
                f"a Variable's value must be text, got {type(value).__name__}: pass str(value)"
            )
        if isinstance(value, str) and not value.strip():
            raise InputError(
                f"the {role_description or 'variable'} is empty: give it a starting text"
            )
        self._value: str | None = value  # type: ignore[assignment]  # or an images.Image
        self.role_description = role_description
        self.requires_grad = requires_grad
        self.predecessors: list[Variable] = list(predecessors or [])
        self.gradients = Gradients()
        self.grad_fn: Node | None = None
        self.past_values: list[str] = []  # earlier values, oldest first (the optimizer's momentum)
        if self.predecessors:
            from .functions import PlainPython

            for p in self.predecessors:
                ensure_variable(p, "each predecessor")
            self.grad_fn = PlainPython().node(self.predecessors)

    @classmethod
    def _output(cls, node: Node, role_description: str) -> Variable:
        """A function's output: pending until the graph is run."""
        out = cls.__new__(cls)
        out._value = None
        out.role_description = role_description
        out.requires_grad = any(p.requires_grad for p in node.inputs)
        out.predecessors = list(node.inputs)
        out.gradients = Gradients()
        out.grad_fn = node
        out.past_values = []
        return out

    @property
    def value(self) -> str:
        stand_ins = _STAND_INS.get()
        if stand_ins is not None and id(self) in stand_ins:
            return stand_ins[id(self)]
        reads = _READS.get()
        if reads is not None:
            reads.append(self)
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
    def gradients(self) -> Gradients:
        """Feedback received, in graph order; `gradients.add(...)` as in TextGrad."""
        return self._gradients

    @gradients.setter
    def gradients(self, items: list[Gradient]) -> None:
        self._gradients = items if isinstance(items, Gradients) else Gradients(items)

    def set_role_description(self, role_description: str) -> None:
        """Say what this text is (TextGrad's spelling); a function's output included."""
        self.role_description = role_description

    def generate_graph(self, print_gradients: bool = False) -> Any:
        """The graph behind this variable as a picture (Graphviz DOT; rendered when the
        `graphviz` package is installed)."""
        from .autograd.dot import graph_picture

        return graph_picture(self, print_gradients)

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
        raise NotAVariable(
            f"{what} must be a tg.Variable, got {type(obj).__name__}: "
            f"wrap it with tg.Variable(value, role_description=...)"
        )
    return obj
