"""A variable's gradients: an ordered, set-like list whose order is the graph's, not the clock's.

Backward runs the nodes of one level concurrently, so feedback arrives in completion order. The
scheduler tells each node's backward its rank in the graph (`sending_rank`); every gradient is
filed under the rank of the node that sent it, so two runs of the same graph list the same
feedback in the same order, however fast each call was. TextGrad keeps gradients in a `set`;
`add` is its spelling (a gradient already present is not added twice).
"""

from __future__ import annotations

import bisect
import contextvars
import sys
from collections.abc import Iterable
from typing import Any

# The rank, in graph order, of the node whose backward is running (set by the scheduler);
# feedback added outside a backward pass goes last.
LAST = sys.maxsize
sending_rank: contextvars.ContextVar[int] = contextvars.ContextVar("sending_rank", default=LAST)


class Gradients(list[Any]):
    """Feedback received by a variable: tg.Gradient items ordered by the sender's graph rank.

    It is a list (index it, iterate it, compare it with []), and also takes TextGrad's set
    spelling: `add(item)`, where a tg.Variable is accepted as a gradient text.
    """

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__()
        self._rank: dict[int, int] = {}  # id(item) -> rank of the node that sent it
        for item in items:
            self.append(item)

    def append(self, item: Any) -> None:
        """File `item` after every gradient from the same or an earlier node of the graph."""
        item = _as_gradient(item)
        if any(existing is item for existing in self):
            return
        rank = sending_rank.get()
        at = bisect.bisect_right([self._rank.get(id(g), LAST) for g in self], rank)
        self._rank[id(item)] = rank
        super().insert(at, item)

    add = append

    def extend(self, items: Iterable[Any]) -> None:
        for item in list(items):
            self.append(item)

    update = extend

    def __iadd__(self, items: Iterable[Any]) -> Gradients:  # type: ignore[misc]
        self.extend(items)
        return self

    def discard(self, item: Any) -> None:
        for i, existing in enumerate(self):
            if existing is item:
                del self[i]
                return

    def __repr__(self) -> str:
        return f"Gradients({list(self)!r})"


def _as_gradient(item: Any) -> Any:
    from .variable import Gradient, Variable

    if isinstance(item, Variable):
        return Gradient(item.value, {"role_description": item.role_description})
    if not isinstance(item, Gradient):
        raise TypeError(f"a gradient is a tg.Gradient or a tg.Variable, not {type(item).__name__}")
    return item
