"""Token usage, cost and budget: counted per call, summed per scope (a step, a run)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

from ..errors import BudgetExceeded, InputError

# US dollars per million tokens: (input, output, cache read). Extend with set_price().
# The 5.5 generation's prices are estimates until published: check and override them.
PRICES: dict[str, tuple[float, float, float]] = {
    "claude-haiku-5-5": (1.0, 5.0, 0.1),
    "claude-sonnet-5-5": (3.0, 15.0, 0.3),
    "claude-opus-5-5": (5.0, 25.0, 0.5),
}


def set_price(model: str, input: float, output: float, cache_read: float | None = None) -> None:
    """Add or change a model's price in dollars per million tokens."""
    PRICES[model] = (input, output, input / 10 if cache_read is None else cache_read)


def price(model: str, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0) -> float:
    """Cost in dollars; 0 for models without a price (local models, unknown servers)."""
    p_in, p_out, p_cache = PRICES.get(model, (0.0, 0.0, 0.0))
    return (input_tokens * p_in + output_tokens * p_out + cache_read_tokens * p_cache) / 1e6


@dataclass
class Usage:
    """What calls consumed: summed with +, shown with str()."""

    calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __str__(self) -> str:
        cached = f" ({self.cached_calls} from cache)" if self.cached_calls else ""
        return (
            f"{self.calls} calls{cached}, {self.input_tokens:,} input + "
            f"{self.output_tokens:,} output tokens, ${self.cost:.4f}"
        )


class Meter:
    """Process-wide usage totals, open scopes, and the budget with in-flight reservations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Usage()
        self._scopes: list[UsageScope] = []
        self.budget_dollars: float | None = None
        self.budget_tokens: int | None = None
        self._spent = Usage()  # since the budget was set
        self._reserved_dollars = 0.0
        self._reserved_tokens = 0

    def set_budget(self, dollars: float | None = None, tokens: int | None = None) -> None:
        for value in (dollars, tokens):
            if value is not None and value < 0:
                raise InputError("a budget cannot be negative: pass a positive number or None")
        with self._lock:
            self.budget_dollars, self.budget_tokens = dollars, tokens
            self._spent = Usage()

    def reserve(self, dollars: float, tokens: int) -> None:
        """Claim room for a call about to start, or raise BudgetExceeded before it is sent."""
        with self._lock:
            over = []
            if self.budget_dollars is not None and (
                self._spent.cost + self._reserved_dollars + dollars > self.budget_dollars
            ):
                over.append(f"${self.budget_dollars:.4f} (spent ${self._spent.cost:.4f})")
            if self.budget_tokens is not None and (
                self._spent.tokens + self._reserved_tokens + tokens > self.budget_tokens
            ):
                over.append(f"{self.budget_tokens:,} tokens (spent {self._spent.tokens:,})")
            if over:
                raise BudgetExceeded(
                    f"budget reached: the next call could exceed {' and '.join(over)}; "
                    "results so far are kept. Raise it with tg.set_budget(...) to continue"
                )
            self._reserved_dollars += dollars
            self._reserved_tokens += tokens

    def settle(self, usage: Usage, reserved_dollars: float = 0.0, reserved_tokens: int = 0) -> None:
        """Record a finished call (and release its reservation)."""
        with self._lock:
            self._reserved_dollars -= reserved_dollars
            self._reserved_tokens -= reserved_tokens
            self.total = self.total + usage
            self._spent = self._spent + usage
            for scope in self._scopes:
                scope.usage = scope.usage + usage

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


METER = Meter()
