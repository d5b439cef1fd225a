"""Engines written for TextGrad: an `EngineLM` subclass overrides `generate` (def or async def),
or any callable `f(prompt, system_prompt=None) -> str` (a function, an Ollama wrapper object)
is passed where an engine goes.

The graph calls every engine through `Engine.agenerate` (cache, budget, usage, concurrency), which
ends in `_complete`. For such a subclass `_complete` calls the user's `generate`, and for a
callable `CallableEngine._complete` calls it: an async one is awaited on the engine loop (so a
batch runs concurrently), a plain one runs in a worker thread (so it does not block the others).
A subclass's cache key names its class, a callable's its class or function (and its model
attribute, if it has one), so two custom engines never share replies. Neither reports token
counts: the usage of a call is estimated from the text (as a budget's claim is), so a token
budget holds for them too.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import threading
import types
from typing import Any

from ..errors import InputError
from .base import Engine, Reply, Request, estimated_usage


def adopt(cls: type[Engine]) -> None:
    """Give each subclass that overrides `generate` its own identity for the cache key."""
    if cls.generate is Engine.generate or _own_complete(cls) or "spec" in cls.__dict__:
        return  # a built-in engine, or one that names itself
    identity = f"custom:{cls.__module__}.{cls.__qualname__}"

    def spec(self: Engine) -> str:
        if "_spec" in self.__dict__:
            return str(self.__dict__["_spec"])
        model = self.__dict__.get("model") or getattr(type(self), "model", "")
        return f"{identity}:{model}" if model else identity

    def set_spec(self: Engine, value: str) -> None:
        self.__dict__["_spec"] = value

    cls.spec = property(spec, set_spec)  # type: ignore[assignment]


def _own_complete(cls: type[Engine]) -> bool:
    return any("_complete" in c.__dict__ for c in cls.__mro__ if c is not Engine)


async def complete(engine: Engine, request: Request) -> Reply:
    """Call a TextGrad-style engine's own `generate` with TextGrad's arguments."""
    generate = type(engine).generate
    if generate is Engine.generate:
        raise NotImplementedError(
            f"{type(engine).__name__} implements neither _complete nor generate: "
            "override generate(self, prompt, system_prompt=None, **kwargs)"
        )
    content: Any = list(request.parts) if request.parts else request.prompt
    if inspect.iscoroutinefunction(generate):
        text = await generate(engine, content, system_prompt=request.system)
    else:
        text = await asyncio.to_thread(generate, engine, content, system_prompt=request.system)
    if not isinstance(text, str):
        raise TypeError(f"{type(engine).__name__}.generate returned {type(text).__name__}, not str")
    return Reply(text, estimated_usage(engine.model, request, text))


# Names a callable's model may go by (TextGrad's EngineLM says model_string).
MODEL_ATTRIBUTES = ("model_string", "model", "model_name")

_adopted: dict[int, tuple[object, CallableEngine]] = {}
_adopted_lock = threading.Lock()


def adopt_callable(target: object) -> CallableEngine:
    """The engine of a callable passed where an engine goes: one per object, so its learned
    reply sizes and its identity stay the same however often it is passed."""
    if isinstance(target, type):
        raise InputError(
            f"{target.__qualname__} is a class: pass an instance of it, "
            f"e.g. {target.__qualname__}(...), as the engine"
        )
    if not callable(target):
        raise InputError(
            f"{_describe(target)} is not an engine: pass a spec string (e.g. "
            "'anthropic:claude-haiku-5-5'), an engine, or a callable f(prompt, system_prompt=None) "
            "that returns the reply text"
        )
    with _adopted_lock:
        known = _adopted.get(id(target))
        if known is None or known[0] is not target:
            known = (target, CallableEngine(target))
            _adopted[id(target)] = known
        return known[1]


class CallableEngine(Engine):
    """A callable `f(prompt, system_prompt=None) -> str` (def or async def, a function or an
    object's `__call__`) as an engine: the same cache, budget, usage and concurrency as any."""

    def __init__(self, target: object) -> None:
        self.target = target
        _check_signature(target)
        model = _model_of(target)
        identity = f"custom:{_identity(target)}"
        self.model = model or identity.removeprefix("custom:")
        self.spec = f"{identity}:{model}" if model else identity
        call = target if inspect.isroutine(target) else type(target).__call__
        self._async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(target)

    async def _complete(self, request: Request) -> Reply:
        content: Any = list(request.parts) if request.parts else request.prompt
        call: Any = self.target
        if self._async:
            text = await call(content, system_prompt=request.system)
        else:
            text = await asyncio.to_thread(call, content, system_prompt=request.system)
            if inspect.isawaitable(text):  # a plain def that returns a coroutine
                text = await text
        if not isinstance(text, str):
            raise TypeError(
                f"{_describe(self.target)} returned {type(text).__name__}, not str: "
                "return the reply text"
            )
        return Reply(text, estimated_usage(self.model, request, text))

    def __repr__(self) -> str:
        return f"<engine {self.spec} calling {_describe(self.target)}>"


def _check_signature(target: object) -> None:
    """Refuse, in one line, a callable that cannot be called as TextGrad calls an engine."""
    try:
        signature = inspect.signature(target)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return  # a builtin or an extension: trust it
    try:
        signature.bind("prompt", system_prompt=None)
    except TypeError:
        raise InputError(
            f"{_describe(target)} cannot be called as an engine, f(prompt, system_prompt=None): "
            f"its signature is {signature}; add a system_prompt=None parameter"
        ) from None


def _identity(target: object) -> str:
    """Module and name of what runs: a function (with a digest of its code, so two lambdas
    differ), a bound method's class and name, else the object's class."""
    if isinstance(target, types.MethodType):
        owner = type(target.__self__)
        return f"{owner.__module__}.{owner.__qualname__}.{target.__func__.__name__}"
    if isinstance(target, types.FunctionType):
        code = target.__code__
        simple = [c for c in code.co_consts if isinstance(c, (str, int, float, bytes))]
        payload = repr((code.co_code, code.co_names, simple)).encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(payload).hexdigest()[:12]
        return f"{target.__module__}.{target.__qualname__}#{digest}"
    cls = type(target)
    return f"{cls.__module__}.{cls.__qualname__}"


def _model_of(target: object) -> str:
    """The model a callable names (its model_string, model or model_name text), or ""."""
    owner = target.__self__ if isinstance(target, types.MethodType) else target
    for name in MODEL_ATTRIBUTES:
        value = getattr(owner, name, None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _describe(target: object) -> str:
    if isinstance(target, (types.FunctionType, types.MethodType)):
        return f"{target.__qualname__}()"
    text = repr(target)
    text = text if len(text) <= 60 else text[:57] + "..."
    kind = type(target).__name__
    return f"{text} ({'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind})"
