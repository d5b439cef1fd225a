"""A provider's rate limits as its replies announce them, kept as the token buckets it enforces.

Anthropic sends `anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,
reset}` (reset: the RFC 3339 time the bucket is full again); OpenAI-compatible servers
send `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset: a duration such as `6m0s`).
A limit is a bucket of `limit` that refills continuously over its window (a minute, as the
providers document, or less where the resets show it). `retry-after-ms`, then `retry-after`
(seconds or an HTTP date), say how long a 429 asks to wait. ModelLimits keeps one model's
buckets as requests go and replies come back; engines/pacing.py decides from them.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pacing import Ticket

PER_MINUTE = 60.0
MARGIN = 1.02  # a wait for a bucket to refill is this much longer: sent just late, not early
# Each limit by the name shown, and its headers ({} is limit, remaining or reset). Anthropic's
# `anthropic-ratelimit-tokens-*` repeat the stricter of its input and output limits: not read.
DIMENSIONS = {
    "requests": ("anthropic-ratelimit-requests-{}", "x-ratelimit-{}-requests"),
    "input tokens": ("anthropic-ratelimit-input-tokens-{}",),
    "output tokens": ("anthropic-ratelimit-output-tokens-{}",),
    "tokens": ("x-ratelimit-{}-tokens",),  # OpenAI's: input and output together
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class Announced:
    """One limit as a reply states it: its size, what is left, seconds until it is full."""

    limit: float
    remaining: float
    full_in: float | None


def announced(headers: Any) -> dict[str, Announced]:
    """The limits a reply's headers state, by dimension (none: the server states none)."""
    found: dict[str, Announced] = {}
    now: float | None = None
    for name, styles in DIMENSIONS.items():
        for style in styles:
            limit = _number(headers.get(style.format("limit")))
            left = _number(headers.get(style.format("remaining")))
            if limit is not None and left is not None and limit > 0:
                now = _server_now(headers) if now is None else now
                full_in = _until(headers.get(style.format("reset")), now)
                found[name] = Announced(limit, max(0.0, left), full_in)
                break
    return found


def retry_after(headers: Any) -> float | None:
    """Seconds a refused request is asked to wait (`retry-after-ms`, then `retry-after`)."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return max(0.0, ms / 1000)
    return _until(headers.get("retry-after"), _server_now(headers))


def _number(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _server_now(headers: Any) -> float:
    """The wall time to read absolute resets against: ours, or the server's `date` when the
    two clocks differ by more than its one-second resolution."""
    now = time.time()
    try:
        server = parsedate_to_datetime(str(headers.get("date"))).timestamp()
    except (TypeError, ValueError, IndexError):
        return now
    return server if abs(server - now) > 2 else now


def _until(raw: Any, now: float) -> float | None:
    """Seconds from now until `raw`: a number of seconds, a duration (`1m30s`, `20ms`), an
    RFC 3339 time, or an HTTP date."""
    if raw is None:
        return None
    text = str(raw).strip()
    plain = _number(text)
    if plain is not None:
        return max(0.0, plain)
    pieces = _DURATION.findall(text)
    if pieces and "".join(a + u for a, u in pieces) == text:
        return sum(float(a) * _UNIT[u] for a, u in pieces)
    for parse in (datetime.fromisoformat, parsedate_to_datetime):
        try:
            return max(0.0, parse(text).timestamp() - now)
        except (TypeError, ValueError, IndexError):
            continue
    return None


class Bucket:
    """One limit as the provider enforces it: at most `limit`, refilled continuously at
    limit/window per second; `level` is what was left at monotonic time `at`."""

    def __init__(self, limit: float, level: float, window: float = PER_MINUTE) -> None:
        self.limit, self.level, self.window = limit, level, window
        self.at = time.monotonic()

    def left(self, now: float) -> float:
        return min(self.limit, self.level + max(0.0, now - self.at) * self.limit / self.window)

    def wait(self, need: float, now: float, held: float = 0.0) -> float:
        """Seconds until `need` more fits beside `held` (charged later, e.g. output tokens in
        flight); a need larger than the whole limit waits for a full bucket only."""
        short = min(need + held, self.limit) - self.left(now)
        return max(0.0, short) * self.window / self.limit * MARGIN

    def take(self, amount: float, now: float) -> None:
        self.level, self.at = self.left(now) - amount, now

    def seen(self, told: Announced, now: float, sent: float, slack: float | None) -> bool:
        """What a reply states corrects the estimate. Without `slack` (output tokens, charged
        after their reply: the headers hold all the provider knows) the level becomes what it
        says was left. With it, only when that is less by more than `slack` (what the
        estimates of requests in flight may be off by, and the rounding down): requests sent
        here may not have reached the provider when it wrote it, and replies arrive out of
        order. True when it set the level. Its reset bounds the window from above: the reply
        was written after its request was sent, `sent` seconds ago, and `remaining` is
        rounded down, so more than limit - remaining - 1 refill in less than sent + reset;
        the tightest bound seen is kept (the documented minute before any)."""
        spent = told.limit - told.remaining - 1
        if told.full_in is not None and spent >= 1:
            bound = (told.full_in + sent) * told.limit / spent
            self.window = min(self.window, max(bound, 0.01))
        self.limit = told.limit
        if slack is not None and told.remaining >= self.left(now) - slack:
            return False
        self.level, self.at = told.remaining, now
        return True


class ModelLimits:
    """One model's limits at one account: its buckets, the requests in flight charged to
    them, and how long a 429 holds it back. A request is charged its estimated tokens when
    it goes (the provider's count, where a limit is tight), and what the provider reported
    once it is done; output tokens only once done, as the provider charges them."""

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}
        self.flying: set[Ticket] = set()
        self.held_out = 0.0  # expected output tokens in flight: the provider charges them later
        self.scale = 0.0  # input tokens the provider counts per expected one (0: none seen)
        self.ratios: deque[float] = deque(maxlen=16)  # that count for the last replies
        self.blocked_until = 0.0
        self.blocked_for = ""  # what the last 429 said
        self.in_a_row = 0  # 429s without retry-after since the last reply

    def charges(self, t: Ticket) -> dict[str, float]:
        tokens = t.input_tokens * (1.0 if t.exact else self.scale or 1.0)
        return {
            "requests": 1.0,
            "input tokens": tokens,
            "output tokens": t.output_tokens,
            "tokens": tokens + t.output_tokens,
        }

    def wait(self, t: Ticket, now: float) -> tuple[float, str]:
        """Seconds until `t` may go, and the limit it waits for."""
        longest = (self.blocked_until - now, self.blocked_for)
        for name, need in self.charges(t).items():
            if name in self.buckets:
                held = self.held_out if name == "output tokens" else 0.0
                wait = self.buckets[name].wait(need, now, held)
                longest = max(longest, (wait, f"{name}, {describe(self.buckets[name], now)}"))
        return longest

    def take(self, t: Ticket, now: float) -> None:
        t.charged = self.charges(t)
        self.held_out += t.charged["output tokens"]
        self.flying.add(t)
        for name, need in t.charged.items():
            if name != "output tokens" and name in self.buckets:
                self.buckets[name].take(need, now)

    def refund(self, t: Ticket, now: float) -> None:
        """The provider refused `t` (a 429): it charged nothing for it."""
        if t in self.flying and t.refused is None:
            for name, need in t.charged.items():
                if name != "output tokens" and name in self.buckets:
                    self.buckets[name].take(-need, now)

    def done(self, t: Ticket, usage: Any, now: float) -> None:
        """`t` ended, with the Usage the provider reported (None: no reply). Its output
        tokens are charged now; its input tokens replace the estimate (unless a header set
        the level since it went), and teach how many the provider counts per expected one."""
        self.flying.discard(t)
        self.held_out = max(0.0, self.held_out - t.charged.get("output tokens", 0.0))
        if usage is None:
            return
        self.in_a_row = 0
        actual = usage.input_tokens + getattr(usage, "cache_write_tokens", 0)  # not cache reads
        if t.input_tokens and not t.exact:
            self.ratios.append(actual / t.input_tokens)
            self.scale = max(self.ratios)  # the highest lately: an estimate low adds up to a 429
        if not t.settled:
            for name, count in (("input tokens", actual), ("tokens", actual + usage.output_tokens)):
                if name in self.buckets:
                    self.buckets[name].take(count - t.charged.get(name, 0.0), now)
        if "output tokens" in self.buckets:
            self.buckets["output tokens"].take(usage.output_tokens, now)

    def tight(self, tokens: int, now: float) -> bool:
        """Whether an input-token limit holds back a request of about `tokens`: then every
        token its estimate is over costs time (limit / window a second), so count them."""
        buckets = [b for n, b in self.buckets.items() if n in ("input tokens", "tokens")]
        need = tokens * (self.scale or 1.0)
        return any(b.left(now) < max(4 * need, b.limit / 10) for b in buckets)

    def room(self, t: Ticket, now: float) -> float:
        """How many more requests like `t` the buckets hold now (inf: no limit announced)."""
        fits = [
            (b.left(now) - (self.held_out if name == "output tokens" else 0)) / max(need, 1)
            for name, need in self.charges(t).items()
            if (b := self.buckets.get(name)) is not None
        ]
        return max(0.0, math.floor(min(fits))) if fits else math.inf

    def seen(self, told: dict[str, Announced], t: Ticket, now: float, *, refused: bool) -> None:
        """The headers of the reply to `t` (`refused`: a 429, so the level here was wrong)."""
        for name, limit in told.items():
            bucket = self.buckets.setdefault(name, Bucket(limit.limit, limit.remaining))
            slack = None
            if name != "output tokens" and not refused:
                guesses = sum(u.charged.get(name, 0.0) for u in self.flying if not u.exact)
                slack = 1.0 + guesses / 2  # estimates may be off by half
            if bucket.seen(limit, now, now - t.sent_at, slack) and name != "output tokens":
                for u in self.flying:  # the provider's count of these is in that level
                    u.settled = True


def describe(bucket: Bucket, now: float) -> str:
    window = "minute" if abs(bucket.window - 60) < 0.5 else f"{bucket.window:.3g} s"
    return f"{bucket.limit:,.0f} per {window} ({max(0.0, bucket.left(now)):,.0f} left)"
