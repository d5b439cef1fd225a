"""The engine contract: one async completion method per provider; caching, budget, usage,
retries of unusable replies and concurrency are done once, here, for all of them. Providers
reached over HTTP stream their replies (engines/streaming.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import runtime
from ..errors import EngineError, TgMagicError, UnusableReply, redact, valid_text
from ..images import Image, Part, as_parts, text_of
from . import flights, pacing
from .cache import get_cache, own_cache
from .usage import METER, Claim, Usage, has_price, price

if TYPE_CHECKING:
    from .pacing import Pace

# Before a model has answered, a call is expected to write this many tokens (at most max_tokens).
FIRST_OUTPUT_GUESS = 1024
RETRY_DELAY = 0.25  # seconds before retrying an unusable reply; doubled each time

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
    # How many characters at the start of `prompt` other requests of the run send too (a
    # trained variable's text, fixed instructions): an engine with a prompt cache may cache
    # them. It does not change the reply, so it is not part of the key.
    shared_prefix: int = 0

    @property
    def images(self) -> list[Image]:
        return [p for p in self.parts if isinstance(p, Image)]

    def key(self, engine_spec: str) -> str:
        fields: dict[str, Any] = {  # asdict's deep copy cost more than the hash (large batches)
            "prompt": self.prompt,
            "system": self.system,
            "max_tokens": self.max_tokens,
            "structured": self.structured,
        }
        if self.parts:  # images enter the key by digest; text-only keys stay as they were
            fields["parts"] = [p if isinstance(p, str) else p.digest() for p in self.parts]
        payload = json.dumps([engine_spec, fields], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Reply:
    text: str
    usage: Usage


class Interrupted(UnusableReply):
    """An attempt cut short (a stream that stalled, broke off or ran past the request timeout):
    retried like an unusable reply. `usage` is what the provider reported before the cut (it
    bills that much); `fix` is the advice of the one-line error when every attempt ends so."""

    def __init__(self, what: str, usage: Usage | None = None, fix: str | None = None) -> None:
        super().__init__(what)
        self.usage = usage or Usage()
        self.fix = fix


_semaphores: dict[tuple[int, int], asyncio.Semaphore] = {}


def set_concurrency(limit: int) -> None:
    """At most `limit` model calls in flight at once: the `concurrency` setting, and the
    `max_concurrency` ceiling too, so the pace of a provider does not grow past it."""
    from ..config import configure

    configure(concurrency=limit, max_concurrency=limit)


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

    # A model that costs nothing (in-process): a dollar budget needs no price for it.
    free: bool = False
    # Attempts after the first for an unusable reply (and, in the SDKs, for errors and timeouts).
    max_retries: int = 2
    # Seconds per request when `tg.configure(request_timeout=...)` is not set.
    default_timeout: float = 120.0
    # Seconds a streamed reply may send nothing when `tg.configure(idle_timeout=...)` is not set.
    default_idle_timeout: float = 30.0
    # Learned from the provider's counts: actual input tokens per estimated one, output tokens.
    _input_ratio: float = 1.0
    _outputs: tuple[int, int] = (0, 0)  # (sum, calls)

    async def _complete(self, request: Request) -> Reply:
        from .custom import complete

        return await complete(self, request)

    async def count_input_tokens(self, request: Request) -> int | None:
        """The provider's exact count of the request's input tokens, when it offers one."""
        return None

    def cache_write_tokens(self, request: Request) -> int:
        """About how many input tokens of `request` the provider may write to its prompt cache
        (0: this engine marks none): a budget's claim prices them as a cache write."""
        return 0

    def request_timeout(self) -> float:
        from ..config import settings

        return settings.request_timeout or self.default_timeout

    def idle_timeout(self) -> float:
        from ..config import settings

        return settings.idle_timeout or self.default_idle_timeout

    async def agenerate(
        self,
        prompt: str | list[Any],
        system_prompt: str | None = None,
        *,
        max_tokens: int = 2048,
        structured: str | None = None,
        shared_prefix: int = 0,
    ) -> str:
        """The reply text: from the cache, or from the model within the budget.

        `prompt` is text, or (TextGrad's multimodal content) a list of texts and images;
        `shared_prefix`: how many of its first characters other requests share (Request)."""
        parts = () if isinstance(prompt, str) else as_parts(prompt)
        text = prompt if isinstance(prompt, str) else text_of(parts)
        system = None if system_prompt is None else valid_text(system_prompt)
        request = Request(valid_text(text), system, max_tokens, structured, parts, shared_prefix)
        key = request.key(self.spec)
        cache = get_cache() if self.reply_cache is None else own_cache(self.reply_cache)
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            text, _ = hit
            METER.settle(Usage(calls=1, cached_calls=1))
            return text
        text, shared = await flights.once(key, lambda: self._fresh(request, key, cache))
        if shared:  # the same request was in flight: its reply, as from the cache
            METER.settle(Usage(calls=1, cached_calls=1))
        return text

    def pace(self) -> Pace | None:
        """The pace of the provider account this engine calls (engines/pacing.py); None: the
        engine answers in this process, its calls bounded by the `concurrency` setting."""
        return None

    async def _fresh(self, request: Request, key: str, cache: Any) -> str:
        if self.pace() is None:
            async with _semaphore():
                reply = await self._call(request)
        else:
            reply = await self._call(request)  # each attempt waits for the pace
        if cache is not None:
            cache.put(key, self.spec, reply.text, _usage_dict(reply.usage))
        return reply.text

    async def _call(self, request: Request) -> Reply:
        """One reply with text, retrying unusable ones; errors become one line."""
        delay = RETRY_DELAY
        fix: str | None = None
        for attempt in range(self.max_retries + 1):
            try:
                reply = await self._sent(request)
            except UnusableReply as exc:
                what = str(exc)
                fix = exc.fix if isinstance(exc, Interrupted) else None
            except TgMagicError:
                raise
            except Exception as exc:
                raise self._failure(exc) from None
            else:
                if reply.text.strip():
                    return reply
                what = "an empty reply (no text)"
            if attempt < self.max_retries:
                await asyncio.sleep(delay)
                delay *= 2
        if fix is not None:
            raise EngineError(f"{self.spec}: {what}, in {self.max_retries + 1} attempts; {fix}")
        raise EngineError(
            f"{self.spec}: no usable reply in {self.max_retries + 1} attempts; the last was "
            f"{what}. Check the provider's status page (and ANTHROPIC_BASE_URL or the server "
            "address) and run again"
        )

    async def _sent(self, request: Request) -> Reply:
        """One attempt, through the provider's pace when the engine has one: a 429 is waited
        out as the provider asks and sent again, using none of the attempts."""
        pace = self.pace()
        if pace is None:
            return await self._attempt(request)
        claim, _ = self._claim(request, None)
        need, exact = claim.input_tokens, False
        if pace.tight(self.model, need):  # an input-token limit binds: every token counts
            counted = await self.count_input_tokens(request)
            need, exact = (need, False) if counted is None else (counted, True)
        waited, times = 0.0, 0
        while True:
            ticket = await pace.admit(
                self.model, need, claim.output_tokens, exact=exact, again=times > 0
            )
            usage = None
            try:
                with pacing.sending(ticket):
                    reply = await self._attempt(request)
                usage = reply.usage
                return reply
            except Exception:
                if ticket.refused is None:
                    raise
            finally:
                pace.done(ticket, usage)
            waited, times = waited + ticket.refused, times + 1
            if waited > self.request_timeout():
                raise pacing.refusal(self.spec, ticket, times, waited, self.request_timeout())

    async def _attempt(self, request: Request) -> Reply:
        """One call, admitted by the budget and settled with the tokens the provider reports."""
        counted = await self.count_input_tokens(request) if METER.active else None
        claim, estimate = self._claim(request, counted)
        await METER.reserve(claim)
        usage = Usage()
        try:
            reply = await self._complete(request)
            usage = reply.usage
        except Interrupted as exc:
            usage = exc.usage  # a reply cut off is billed for what it had sent
            raise
        finally:
            METER.settle(usage, claim)
        if counted is None and usage.input_tokens > estimate:
            self._input_ratio = max(self._input_ratio, usage.input_tokens / estimate)
        if usage.output_tokens:
            total, calls = self._outputs
            self._outputs = (total + usage.output_tokens, calls + 1)
        return reply

    def _claim(self, request: Request, counted: int | None) -> tuple[Claim, int]:
        """Expected and worst cost of a request; the worst input without a count is the UTF-8
        size (a token is at least one byte), the worst output `max_tokens`."""
        size = len((request.system or "").encode()) + len(request.prompt.encode()) + 16
        estimate = size // 3 + 1
        if counted is not None:
            expected_in = worst_in = counted
        else:
            expected_in = math.ceil(estimate * self._input_ratio)
            worst_in = max(expected_in, size)
        total, calls = self._outputs
        typical = math.ceil(total / calls * 1.25) if calls else FIRST_OUTPUT_GUESS
        expected_out = min(request.max_tokens, typical)
        # A cached prefix may be written (a quarter dearer than input): the worst prices every
        # input token so, as no split of the input between the cache and the rest costs more.
        write = min(self.cache_write_tokens(request), expected_in)
        worst_write = worst_in if write else 0
        claim = Claim(
            dollars=price(self.model, expected_in - write, expected_out, 0, write),
            tokens=expected_in + expected_out,
            worst_dollars=price(
                self.model, worst_in - worst_write, request.max_tokens, 0, worst_write
            ),
            worst_tokens=worst_in + request.max_tokens,
            input_tokens=expected_in,
            output_tokens=expected_out,
            priced=self.free or has_price(self.model),
            model=self.model,
        )
        return claim, estimate

    def _failure(self, exc: Exception) -> EngineError:
        """A failed call as one line: a timeout names the setting that changes it."""
        if type(exc).__name__ == "APITimeoutError":
            return EngineError(
                f"{self.spec}: nothing received within the idle timeout of "
                f"{self.idle_timeout():g} s, in {self.max_retries + 1} attempts; raise it with "
                "tg.configure(idle_timeout=SECONDS) (or TG_MAGIC_IDLE_TIMEOUT) if the server "
                "is slow to start, or check the network"
            )
        return EngineError(
            f"{self.spec}: the model call failed: {redact(f'{type(exc).__name__}: {exc}')}"
        )

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
        "cache_write_tokens": usage.cache_write_tokens,
    }


def estimated_usage(model: str, request: Request, text: str) -> Usage:
    """The Usage of a call whose engine reports no token counts (a custom engine, a callable):
    estimated from the sizes of the request and the reply, about 3 bytes a token, as a claim's
    expected input is; so a token budget counts these calls too."""
    size = len((request.system or "").encode("utf-8", "surrogatepass"))
    size += len(request.prompt.encode("utf-8", "surrogatepass")) + 16
    input_tokens = size // 3 + 1
    output_tokens = len(text.encode("utf-8", "surrogatepass")) // 3 + 1
    return Usage(
        calls=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=price(model, input_tokens, output_tokens),
    )


def counted(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> Usage:
    """The Usage of one call made to the provider, priced (prompt-cache reads and writes at
    their own prices, and what that saved). A count that is not a whole number of tokens (NaN,
    negative, text) is an unusable reply: summed, it would lift the budget."""
    for count in (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens):
        if type(count) is not int or count < 0:
            raise UnusableReply(f"a reply whose token usage is not a count ({count!r})")
    cost = price(model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
    uncached = price(model, input_tokens + cache_read_tokens + cache_write_tokens, output_tokens)
    return Usage(
        calls=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cost=cost,
        cache_write_tokens=cache_write_tokens,
        saved=uncached - cost,
    )
