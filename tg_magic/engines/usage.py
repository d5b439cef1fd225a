"""Token usage, cost and budget: counted per call, summed per scope (a step, a run).

The budget holds under any concurrency: a call is admitted only while the spend so far, plus
the expected cost of every call in flight, plus its own, fits the budget; and while the worst
case of everything in flight (full `max_tokens`) stays within the budget plus one call. A call
that does not fit waits for calls in flight to settle; when nothing is in flight it is refused.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields, replace

from ..errors import BudgetExceeded, EngineError, InputError

# US dollars per million tokens: (input, output, cache read, cache write). Extend with
# set_price(). A prompt-cache read costs a tenth of an input token, a write (5-minute cache)
# a quarter more. The 5.5 generation's prices are estimates until published: check and
# override them.
PRICES: dict[str, tuple[float, float, float, float]] = {
    "claude-haiku-5-5": (1.0, 5.0, 0.1, 1.25),
    "claude-sonnet-5-5": (3.0, 15.0, 0.3, 3.75),
    "claude-opus-5-5": (5.0, 25.0, 0.5, 6.25),
}

# Tokens the start of a request must reach before the provider caches it (a shorter one is
# sent as it always was). Estimates for the 5.5 generation, keyed like PRICES: the published
# minimums run from 1,024 to 4,096 tokens by model; a prefix below the provider's real minimum
# is simply not cached (no error, no charge).
CACHE_MINIMUM: dict[str, int] = {
    "claude-haiku-5-5": 2048,
    "claude-sonnet-5-5": 1024,
    "claude-opus-5-5": 1024,
}
DEFAULT_CACHE_MINIMUM = 1024


def set_price(
    model: str,
    input: float,
    output: float,
    cache_read: float | None = None,
    cache_write: float | None = None,
) -> None:
    """Add or change a model's price in dollars per million tokens (cache reads default to a
    tenth of the input price, cache writes to 1.25 times it)."""
    read = input / 10 if cache_read is None else cache_read
    PRICES[model] = (input, output, read, input * 1.25 if cache_write is None else cache_write)


def has_price(model: str) -> bool:
    return model in PRICES


def cache_minimum(model: str) -> int:
    """The fewest tokens a cached prefix of `model` needs."""
    return CACHE_MINIMUM.get(model, DEFAULT_CACHE_MINIMUM)


def price(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    """Cost in dollars; 0 for models without a price (local models, unknown servers): a dollar
    budget refuses calls to those (see Meter.reserve)."""
    p_in, p_out, p_read, p_write = PRICES.get(model, (0.0, 0.0, 0.0, 0.0))
    cached = cache_read_tokens * p_read + cache_write_tokens * p_write
    return (input_tokens * p_in + output_tokens * p_out + cached) / 1e6


# Message Batches bill every token of a batched request (input, output, cache) at half price.
BATCH_RATE = 0.5


def at_batch_rate(usage: Usage) -> Usage:
    """The usage of a call answered through a Message Batch: its dollars at the batch rate."""
    dollars = {
        f.name: getattr(usage, f.name) * BATCH_RATE for f in fields(usage) if f.type == "float"
    }
    return replace(usage, **dollars)


@dataclass
class Usage:
    """What calls consumed: summed with +, shown with str()."""

    calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost: float = 0.0
    # Prompt caching: input tokens written to the provider's cache (input_tokens is the rest,
    # as the provider counts), and the dollars saved against the same calls uncached (less
    # than 0 while only writes were paid).
    cache_write_tokens: int = 0
    saved: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    @property
    def all_input_tokens(self) -> int:
        """Every input token, whether read from the prompt cache, written to it, or neither."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def tokens(self) -> int:
        return self.all_input_tokens + self.output_tokens

    def prompt_cache_text(self) -> str:
        """What the provider's prompt cache did ("" when it was not used)."""
        if not (self.cache_read_tokens or self.cache_write_tokens):
            return ""
        effect = (
            f"saved ${self.saved:.4f}"
            if self.saved >= 0
            else f"${-self.saved:.4f} more than uncached"
        )
        return (
            f"prompt cache: {self.cache_read_tokens:,} tokens read, "
            f"{self.cache_write_tokens:,} written, {effect}"
        )

    def __str__(self) -> str:
        cached = f" ({self.cached_calls} from cache)" if self.cached_calls else ""
        prompt_cache = self.prompt_cache_text()
        return (
            f"{self.calls} calls{cached}, {self.all_input_tokens:,} input + "
            f"{self.output_tokens:,} output tokens, ${self.cost:.4f}"
            + (f" ({prompt_cache})" if prompt_cache else "")
        )


@dataclass(frozen=True)
class Claim:
    """What a call about to be sent is expected to cost, and what it can cost at most."""

    dollars: float
    tokens: int
    worst_dollars: float
    worst_tokens: int
    input_tokens: int
    output_tokens: int  # expected
    priced: bool = True  # False: the model has no price (a dollar budget refuses it)
    model: str = ""


class Meter:
    """Process-wide usage totals, open scopes, and the budget with in-flight reservations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Usage()
        self._scopes: list[UsageScope] = []
        self.budget_dollars: float | None = None
        self.budget_tokens: int | None = None
        self._spent = Usage()  # since the budget was set
        self._in_flight: list[Claim] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def active(self) -> bool:
        return self.budget_dollars is not None or self.budget_tokens is not None

    @property
    def spent(self) -> Usage:
        """Usage since the budget was last set."""
        with self._lock:
            return self._spent

    def set_budget(self, dollars: float | None = None, tokens: int | None = None) -> None:
        for value in (dollars, tokens):
            if value is not None and value < 0:
                raise InputError("a budget cannot be negative: pass a positive number or None")
        with self._lock:
            self.budget_dollars, self.budget_tokens = dollars, tokens
            self._spent = Usage()
        self._wake()

    async def reserve(self, claim: Claim) -> None:
        """Admit a call about to be sent, wait until it fits, or raise BudgetExceeded."""
        if self.budget_dollars is not None and not claim.priced:
            raise EngineError(
                f"the model {claim.model!r} has no price, so a dollar budget cannot be kept: "
                f"add it with tg.set_price({claim.model!r}, input=..., output=...) (dollars per "
                "million tokens), or use a token budget tg.set_budget(tokens=...)"
            )
        while True:
            with self._lock:
                refusal = self._refusal(claim)
                if refusal is None:
                    self._in_flight.append(claim)
                    return
                if not self._in_flight:
                    raise BudgetExceeded(refusal)
                future = asyncio.get_running_loop().create_future()
                self._waiters.append((asyncio.get_running_loop(), future))
            await future

    def _refusal(self, claim: Claim) -> str | None:
        """Why `claim` cannot start now (None: it can). Called with the lock held."""
        flying = [*self._in_flight, claim]
        size = f"{claim.input_tokens:,} input + about {claim.output_tokens:,} output tokens"
        if self.budget_dollars is not None and _over(
            self.budget_dollars, self._spent.cost, flying, "dollars", "worst_dollars"
        ):
            spent = f"${self._spent.cost:.4f} of ${self.budget_dollars:.4f}"
            return _reached(spent, f"cost about ${claim.dollars:.4f} ({size})", "dollars")
        if self.budget_tokens is not None and _over(
            self.budget_tokens, self._spent.tokens, flying, "tokens", "worst_tokens"
        ):
            spent = f"{self._spent.tokens:,} of {self.budget_tokens:,} tokens"
            return _reached(spent, f"use about {claim.tokens:,} ({size})", "tokens")
        return None

    def settle(self, usage: Usage, claim: Claim | None = None) -> None:
        """Record a finished call (and release its reservation)."""
        with self._lock:
            if claim is not None:
                self._in_flight.remove(claim)
            self.total = self.total + usage
            self._spent = self._spent + usage
            for scope in self._scopes:
                scope.usage = scope.usage + usage
        if claim is not None:
            self._wake()

    def _wake(self) -> None:
        """Let every call waiting for room look again."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with suppress(RuntimeError):  # that loop is closed: nobody waits there any more
                loop.call_soon_threadsafe(_resolve, future)

    @contextmanager
    def scope(self) -> Iterator[UsageScope]:
        """Sum the usage of every call made while the block runs (`.usage`, live and after)."""
        handle = UsageScope()
        with self._lock:
            self._scopes.append(handle)
        try:
            yield handle
        finally:
            with self._lock:
                self._scopes.remove(handle)


@dataclass(eq=False)
class UsageScope:
    """A live sum of the calls made inside one `Meter.scope()` block."""

    usage: Usage = field(default_factory=Usage)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


METER = Meter()


def _over(limit: float, spent: float, claims: list[Claim], expected: str, worst: str) -> bool:
    """Whether the calls in flight plus the last claim could break the limit: their expected
    cost must fit, and their worst cost may pass it by at most the last call's worst."""
    expected_total = spent + sum(getattr(c, expected) for c in claims)
    worst_total = spent + sum(getattr(c, worst) for c in claims)
    return expected_total > limit or worst_total > limit + getattr(claims[-1], worst)


def _reached(spent: str, next_call: str, setting: str) -> str:
    """The one-line refusal of a budget: what was spent, what the next call needs, the fix."""
    return (
        f"budget reached: spent {spent}; the next call would {next_call}; results so far are "
        f"kept. Raise it with tg.set_budget({setting}=...) to continue"
    )
