"""tg_magic: TextGrad (automatic differentiation via text) as a library and as Jupyter magics.

`import tg_magic as tg` gives the paper's API: Variable, BlackboxLLM, TextLoss, TGD, backward().
Importing it loads no provider SDK, so `%load_ext tg_magic` stays fast.
"""

from __future__ import annotations

from typing import Any

from .config import configure, context, get_backward_engine, set_backward_engine, settings
from .engines import (
    METER,
    PRICES,
    Engine,
    Usage,
    get_engine,
    set_cache,
    set_concurrency,
    set_price,
)
from .errors import BudgetExceeded, EngineError, InputError, MissingAPIKey, TgMagicError
from .functions import (
    BlackboxLLM,
    FormattedLLMCall,
    Function,
    LLMCall,
    StringBasedFunction,
    Sum,
    sum,
)
from .loss import MultiFieldEvaluation, TextLoss
from .optim import TGD, FailedUpdate
from .variable import Gradient, Variable

__version__ = "0.1.0"

__all__ = [
    "PRICES",
    "TGD",
    "BlackboxLLM",
    "BudgetExceeded",
    "Engine",
    "EngineError",
    "FailedUpdate",
    "FormattedLLMCall",
    "Function",
    "Gradient",
    "InputError",
    "LLMCall",
    "MissingAPIKey",
    "MultiFieldEvaluation",
    "StringBasedFunction",
    "Sum",
    "TextLoss",
    "TgMagicError",
    "Usage",
    "Variable",
    "configure",
    "context",
    "get_backward_engine",
    "get_engine",
    "set_backward_engine",
    "set_budget",
    "set_cache",
    "set_concurrency",
    "set_price",
    "settings",
    "sum",
    "track_usage",
    "usage",
]


def usage() -> Usage:
    """Everything this process has used so far (calls, tokens, cost)."""
    return METER.total


def track_usage() -> Any:
    """`with tg.track_usage() as t: ...` then `t.usage`: the usage of the calls in the block."""
    return METER.scope()


def set_budget(dollars: float | None = None, tokens: int | None = None) -> None:
    """Stop before a call could exceed this spend (counted from now); None removes a limit."""
    METER.set_budget(dollars, tokens)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt extension (`jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "tg-magic"}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tg_magic`."""
    from .notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook import unload_ipython_extension as unload

    unload(ipython)
