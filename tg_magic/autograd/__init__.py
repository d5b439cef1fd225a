"""The graph's execution (scheduler.py: forward, backward, graph) and TextGrad's
`textgrad.autograd` names, each the tg-magic object of the same idea:

    LLMCall, FormattedLLMCall, StringBasedFunction, sum  -> tg_magic.functions (the same objects)
    aggregate                                            -> tg_magic.functions.sum
    MultimodalLLMCall, OrderedFieldsMultimodalLLMCall, Module -> autograd/ops.py
"""

from __future__ import annotations

from ..functions import FormattedLLMCall, LLMCall, StringBasedFunction, sum
from .ops import Module, MultimodalLLMCall, OrderedFieldsMultimodalLLMCall
from .scheduler import backward, forward, graph

# TextGrad's aggregate is a work-in-progress sum whose backward summarizes the feedback;
# tg-magic's sum passes every item's feedback on unchanged, in graph order.
aggregate = sum

__all__ = [
    "FormattedLLMCall",
    "LLMCall",
    "Module",
    "MultimodalLLMCall",
    "OrderedFieldsMultimodalLLMCall",
    "StringBasedFunction",
    "aggregate",
    "backward",
    "forward",
    "graph",
    "sum",
]
