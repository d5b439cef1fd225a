"""The engine contract: one async completion method per provider; caching, budget, usage and
concurrency are done once, here, for all of them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass

from .. import runtime
from ..errors import EngineError, TgMagicError, redact
from .cache import get_cache
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

    def key(self, engine_spec: str) -> str:
        payload = json.dumps([engine_spec, asdict(self)], sort_keys=True, ensure_ascii=False)
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
    """A model. Subclasses implement `_complete`; callers use `agenerate` or `generate`."""

    spec: str = "engine"
    model: str = ""
    # Small models get shorter prompts; the gradient and update logic stay the same.
    small: bool = False

    async def _complete(self, request: Request) -> Reply:
        raise NotImplementedError

    async def agenerate(
        self,
        prompt: str,
        system_prompt: str | None = None,
        *,
        max_tokens: int = 2048,
        structured: str | None = None,
    ) -> str:
        """The reply text: from the cache, or from the model within the budget."""
        request = Request(prompt, system_prompt, max_tokens, structured)
        key = request.key(self.spec)
        cache = get_cache()
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

    def generate(self, prompt: str, system_prompt: str | None = None, **kwargs: object) -> str:
        """Synchronous call (works inside a running Jupyter kernel too)."""
        return runtime.run(self.agenerate(prompt, system_prompt, **kwargs))  # type: ignore[arg-type]

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
