"""`Variable.generate_graph()`: the computation graph as Graphviz DOT text.

With the `graphviz` package installed the result renders in a notebook (as TextGrad's does);
without it, it is a `DotGraph` whose `.source` is the DOT text (paste it into any DOT viewer).
"""

from __future__ import annotations

import html
import textwrap
from typing import TYPE_CHECKING, Any

from .scheduler import graph

if TYPE_CHECKING:
    from ..variable import Variable


class DotGraph:
    """DOT source of a graph; shown as text where no renderer is installed."""

    def __init__(self, source: str) -> None:
        self.source = source

    def _repr_markdown_(self) -> str:
        return f"```dot\n{self.source}\n```"

    def __str__(self) -> str:
        return self.source

    __repr__ = __str__


def _label(text: str, width: int = 40, limit: int = 400) -> str:
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    lines = textwrap.wrap(text, width) or [""]
    return "<br/>".join(html.escape(line) for line in lines)


def dot_source(root: Variable, print_gradients: bool = False) -> str:
    """Every variable `root` depends on, inputs first, with its role, value and grad_fn."""
    lines = [
        "digraph {",
        "  rankdir=TB; bgcolor=lightgrey;",
        "  node [shape=rectangle style=filled fillcolor=lavender fontname=Arial fontsize=8];",
    ]
    for var in graph([root]):
        value = var.value if isinstance(var.value, str) else repr(var.value)
        rows = [f"<b>Role:</b> {_label(var.role_description.capitalize())}"]
        rows.append(f"<b>Value:</b> {_label(value)}")
        if var.grad_fn is not None:
            rows.append(f"<b>Grad Fn:</b> {type(var.grad_fn.function).__name__}")
        if print_gradients:
            rows.append(f"<b>Gradients:</b> {_label(var.get_gradient_text())}")
        lines.append(f"  v{id(var)} [label=<{'<br/>'.join(rows)}>];")
        lines.extend(f"  v{id(p)} -> v{id(var)};" for p in var.predecessors)
    lines.append("}")
    return "\n".join(lines)


def graph_picture(root: Variable, print_gradients: bool = False) -> Any:
    source = dot_source(root, print_gradients)
    try:
        import graphviz
    except ImportError:
        return DotGraph(source)
    return graphviz.Source(source)
