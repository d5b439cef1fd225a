"""tg_magic: TextGrad (automatic differentiation via text) as a library and as Jupyter magics.

`import tg_magic as tg` gives the paper's API: Variable, BlackboxLLM, TextLoss, TGD, backward().
Importing it loads no provider SDK, so `%load_ext tg_magic` stays fast.
"""

from __future__ import annotations

from typing import Any

from . import autograd, engine, optimizer
from .config import (
    SingletonBackwardEngine,
    configure,
    context,
    get_backward_engine,
    set_backward_engine,
    settings,
)
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
    llm,
    sum,
)
from .images import Image
from .logger import logger
from .loss import MultiFieldEvaluation, TextLoss
from .optim import TGD, FailedUpdate
from .variable import Gradient, Variable

# TextGrad's names for the same objects (`import tg_magic as tg` in a TextGrad program).
EngineLM = Engine
TextualGradientDescent = TGD
aggregate = autograd.aggregate

__version__ = "0.1.0"

__all__ = [
    "PRICES",
    "TGD",
    "BlackboxLLM",
    "BudgetExceeded",
    "Engine",
    "EngineError",
    "EngineLM",
    "FailedUpdate",
    "FormattedLLMCall",
    "Function",
    "Gradient",
    "Image",
    "InputError",
    "LLMCall",
    "MissingAPIKey",
    "MultiFieldEvaluation",
    "SingletonBackwardEngine",
    "StringBasedFunction",
    "Sum",
    "TextLoss",
    "TextualGradientDescent",
    "TgMagicError",
    "Usage",
    "Variable",
    "aggregate",
    "autograd",
    "configure",
    "context",
    "engine",
    "get_backward_engine",
    "get_engine",
    "llm",
    "logger",
    "optimize",
    "optimizer",
    "set_backward_engine",
    "set_budget",
    "set_cache",
    "set_concurrency",
    "set_price",
    "settings",
    "sum",
    "tasks",
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


def __getattr__(name: str) -> Any:
    """`tg.tasks` (TextGrad's data sets) and `tg.optimize` (the training loop) on first use:
    `%load_ext tg_magic` does not pay for them."""
    import importlib

    if name == "tasks":
        return importlib.import_module(".tasks", __name__)
    if name == "optimize":
        return importlib.import_module(".objectives", __name__).optimize
    raise AttributeError(f"module 'tg_magic' has no attribute {name!r}")


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
