"""The engine contract: one async completion method per provider; caching, budget, usage and
concurrency are done once, here, for all of them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from .. import runtime
from ..errors import EngineError, TgMagicError, redact
from ..images import Image, Part, as_parts, text_of
from .cache import get_cache, own_cache
from .usage import METER, Usage, price

# A request's `structured` value naming the optimizer's reply format: engines that can constrain
# decoding (the local model's grammar) force `<IMPROVED_VARIABLE>...</IMPROVED_VARIABLE>`.
IMPROVED_VARIABLE = "improved_variable"


@dataclass(frozen=True)
class Request:
    """One single-turn completion: everything that determines the reply, and so the cache key."""

    prompt: str
    system: str | None = None
    max_tokens: int = 2048
    structured: str | None = None
    # A message of several parts (text and images, in order); `prompt` is then their text.
    parts: tuple[Part, ...] = ()

    @property
    def images(self) -> list[Image]:
        return [p for p in self.parts if isinstance(p, Image)]

    def key(self, engine_spec: str) -> str:
        fields: dict[str, Any] = asdict(self)
        del fields["parts"]
        if self.parts:  # images enter the key by digest; text-only keys stay as they were
            fields["parts"] = [p if isinstance(p, str) else p.digest() for p in self.parts]
        payload = json.dumps([engine_spec, fields], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Reply:
    text: str
    usage: Usage


_semaphores: dict[tuple[int, int], asyncio.Semaphore] = {}


def set_concurrency(limit: int) -> None:
    """At most `limit` model calls in flight at once (the `concurrency` setting)."""
    from ..config import configure

    configure(concurrency=limit)


def _semaphore() -> asyncio.Semaphore:
    from ..config import settings

    key = (id(asyncio.get_running_loop()), int(settings.concurrency))
    if key not in _semaphores:
        _semaphores[key] = asyncio.Semaphore(key[1])
    return _semaphores[key]


class Engine:
    """A model. Subclasses implement `_complete`; callers use `agenerate` or `generate`.

    Also TextGrad's `EngineLM`: a subclass that overrides `generate` (a def or an async def)
    instead of `_complete` is called through the same cache, budget and usage (engines/custom.py).
    """

    spec: str = "engine"
    model: str = ""
    # Small models get shorter prompts; the gradient and update logic stay the same.
    small: bool = False
    # A reply cache of this engine only (TextGrad's `cache=`): None uses the shared cache,
    # False none, else a mapping (e.g. a diskcache.Cache).
    reply_cache: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from .custom import adopt

        adopt(cls)

    @property
    def model_string(self) -> str:
        """TextGrad's name for `model`."""
        return self.model

    @model_string.setter
    def model_string(self, value: str) -> None:
        self.model = value

    async def _complete(self, request: Request) -> Reply:
        from .custom import complete

        return await complete(self, request)

    async def agenerate(
        self,
        prompt: str | list[Any],
        system_prompt: str | None = None,
        *,
        max_tokens: int = 2048,
        structured: str | None = None,
    ) -> str:
        """The reply text: from the cache, or from the model within the budget.

        `prompt` is text, or (TextGrad's multimodal content) a list of texts and images."""
        parts = () if isinstance(prompt, str) else as_parts(prompt)
        text = prompt if isinstance(prompt, str) else text_of(parts)
        request = Request(text, system_prompt, max_tokens, structured, parts)
        prompt = text
        key = request.key(self.spec)
        cache = get_cache() if self.reply_cache is None else own_cache(self.reply_cache)
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            text, _ = hit
            METER.settle(Usage(calls=1, cached_calls=1))
            return text
        est_in = (len(prompt) + len(system_prompt or "")) // 4 + 1
        est_dollars = price(self.model, est_in, max_tokens)
        METER.reserve(est_dollars, est_in + max_tokens)
        usage = Usage()
        try:
            async with _semaphore():
                reply = await self._complete(request)
            usage = reply.usage
        except TgMagicError:
            raise
        except Exception as exc:
            raise EngineError(
                f"{self.spec}: the model call failed: {redact(f'{type(exc).__name__}: {exc}')}"
            ) from None
        finally:
            METER.settle(usage, est_dollars, est_in + max_tokens)
        if cache is not None:
            cache.put(key, self.spec, reply.text, _usage_dict(usage))
        return reply.text

    def generate(
        self, content: str | list[Any], system_prompt: str | None = None, **kwargs: object
    ) -> str:
        """Synchronous call (works inside a running Jupyter kernel too)."""
        return runtime.run(self.agenerate(content, system_prompt, **kwargs))  # type: ignore[arg-type]

    __call__ = generate

    def __repr__(self) -> str:
        return f"<engine {self.spec}>"


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
    }


def counted(model: str, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0) -> Usage:
    """The Usage of one call made to the provider, priced."""
    return Usage(
        calls=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cost=price(model, input_tokens, output_tokens, cache_read_tokens),
    )
