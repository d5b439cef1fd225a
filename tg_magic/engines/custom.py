"""Engines written for TextGrad: an `EngineLM` subclass overrides `generate` (def or async def).

The graph calls every engine through `Engine.agenerate` (cache, budget, usage, concurrency), which
ends in `_complete`. For such a subclass `_complete` calls the user's `generate`: an async one is
awaited on the engine loop (so a batch runs concurrently), a plain one runs in a worker thread
(so it does not block the others). A subclass's cache key names its class, so two custom
engines never share replies.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .base import Engine, Reply, Request
from .usage import Usage


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
    return Reply(text, Usage(calls=1))
