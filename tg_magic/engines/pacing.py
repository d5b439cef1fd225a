"""The pace of one provider account: how many requests and tokens go out, and when.

An engine that reaches a provider over HTTP sends each attempt through the Pace of its account
(one per provider and base URL, shared by every engine, loss, optimizer and service of the
process, whatever event loop calls it). An attempt waits in the pace's queue until
- fewer than the concurrency cap are in flight: the cap starts at the `concurrency` setting,
  grows while the provider takes more (straight to what the announced limits hold, or to
  `max_concurrency` where none are announced; after a refusal one more a round), never past
  `max_concurrency`, and halves on a 429 or an overload, once a round of requests;
- its model's buckets (requests, input and output tokens per minute, as the replies' headers
  state them: limits.py) hold its expected tokens, and a 429's retry-after has passed.
A 429 is waited out and the request sent again: it uses none of the attempts meant for
transient faults. The SDK is told not to retry 429s itself (`x-should-retry`, which it obeys),
so every refusal and its headers reach the pace.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..errors import EngineError
from . import pace_memory
from .limits import ModelLimits, announced, describe, retry_after

# The endpoints whose replies state the limits of model calls (not count_tokens, not batches).
ENDPOINTS = ("/messages", "/chat/completions", "/completions")
OVERLOADED = (503, 529)
NO_RETRY_AFTER = 1.0  # seconds a 429 without retry-after waits (doubled for each one in a row)


@dataclass(eq=False)
class Ticket:
    """One attempt's place in a pace: admitted, it is in flight until `Pace.done`."""

    pace: Pace
    model: str
    input_tokens: int
    output_tokens: int  # expected; the provider charges the real count after the reply
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    admitted: bool = False
    sent_at: float = 0.0
    charged: dict[str, float] = field(default_factory=dict)  # to each limit, when admitted
    refused: float | None = None  # a 429's wait in seconds, when the provider refused it
    exact: bool = False  # input_tokens is the provider's count, not an estimate
    settled: bool = False  # a reply's headers set the level since it went: no correction
    grew: bool = False  # the cap grew for it


_current: ContextVar[Ticket | None] = ContextVar("tg_magic_ticket", default=None)


@contextmanager
def sending(ticket: Ticket) -> Iterator[None]:
    """Mark the HTTP requests made in this block as `ticket`'s, for `on_response`."""
    token = _current.set(ticket)
    try:
        yield
    finally:
        _current.reset(token)


async def on_response(response: Any) -> None:
    """The response hook of the SDKs' HTTP clients (engines/http.py): a 429 is the pace's to
    wait out (not the SDK's to retry), and every model call's reply tells the pace its limits."""
    if response.status_code == 429:
        response.headers["x-should-retry"] = "false"
    ticket = _current.get()
    if ticket is not None and response.request.url.path.endswith(ENDPOINTS):
        ticket.pace.seen(ticket, response.headers, response.status_code)


class Pace:
    """The concurrency cap, the queue and the models' limits of one provider account."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.cap = 1.0
        self.ceiling = 1
        self._start = 0  # the concurrency setting the cap started from
        self.threshold = math.inf  # past it the cap grows by one a round (a 429 sets it)
        self.in_flight = 0
        self.refused = 0  # 429s received
        self.models: dict[str, ModelLimits] = {}
        self._queues: dict[str, deque[Ticket]] = {}
        self._slowed = -math.inf  # when the cap was last cut
        self._timer_at = math.inf
        self.note = ""  # why requests wait now for the provider ("" when they do not)
        self._told = ""
        self._recalled = pace_memory.recall(name)  # the cap its last process reached

    async def admit(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        *,
        exact: bool = False,
        again: bool = False,
    ) -> Ticket:
        """Wait for the pace to let one request of `model` go (`exact`: its input tokens
        counted by the provider; `again`: a refused request, at the head of the queue); the
        caller must call `done` with the ticket."""
        loop = asyncio.get_running_loop()
        ticket = Ticket(self, model, input_tokens, output_tokens, loop, loop.create_future())
        ticket.exact = exact
        with self._lock:
            self._follow_settings()
            queue = self._queues.setdefault(model, deque())
            queue.appendleft(ticket) if again else queue.append(ticket)
            self._dispatch(time.monotonic())
        self._tell()
        try:
            await ticket.future
        except asyncio.CancelledError:
            if self.note and not ticket.admitted:  # e.g. a run deadline: say what held it back
                global _cut_short
                _cut_short = (time.monotonic(), self.note)
            with self._lock:
                if ticket.admitted:
                    self._finish(ticket, None, time.monotonic())
                else:
                    with suppress(ValueError):
                        self._queues[model].remove(ticket)
                    self._dispatch(time.monotonic())
            self._tell()
            raise
        return ticket

    def done(self, ticket: Ticket, usage: Any = None) -> None:
        """The request of `ticket` ended: with a reply and the Usage it reported, or not."""
        with self._lock:
            now = time.monotonic()
            if ticket.admitted and usage is not None:
                self._grow(ticket, now)  # unless its reply's headers did
            self._finish(ticket, usage, now)
        self._tell()

    def seen(self, ticket: Ticket, headers: Any, status: int) -> None:
        """A reply (or a refusal) to `ticket`'s request arrived, with these headers."""
        told = announced(headers)
        with self._lock:
            now = time.monotonic()
            limits = self.models.setdefault(ticket.model, ModelLimits())
            if status == 429:
                limits.refund(ticket, now)
            limits.seen(told, ticket, now, refused=status == 429)
            if status == 429:
                self._refusal(ticket, limits, headers, now)
            elif status in OVERLOADED:
                self._slow_down(ticket, now)
            elif status < 300:  # taken: a streamed reply begins with these
                self._grow(ticket, now)
            self._dispatch(now)
        self._tell()

    def tight(self, model: str, input_tokens: int) -> bool:
        """Whether an input-token limit holds back `model`'s requests now (ModelLimits)."""
        with self._lock:
            limits = self.models.get(model)
            return limits is not None and limits.tight(input_tokens, time.monotonic())

    def _follow_settings(self) -> None:
        from ..config import settings

        start = max(1, int(settings.concurrency))
        self.ceiling = max(1, int(settings.max_concurrency or start))
        if start != self._start:  # a new setting: start again from it
            first = self._start == 0
            self._start, self.cap, self.threshold = start, float(start), math.inf
            if first:  # or from where the account's last process left it
                self.cap = float(max(start, self._recalled))
        self.cap = min(self.cap, float(self.ceiling))

    def _slots(self) -> int:
        return max(1, int(self.cap))

    def reached(self) -> int:
        """The cap to remember: the highest this account took, unless it refused (429)."""
        return self._slots() if self.refused else max(self._slots(), self._recalled)

    def _dispatch(self, now: float) -> None:
        """Admit every queued request the cap and the limits let go now, in order per model;
        wake again when the first held back may go."""
        first: tuple[float, str, Ticket] | None = None
        for model, queue in self._queues.items():
            limits = self.models.setdefault(model, ModelLimits())
            while queue and self.in_flight < self._slots():
                head = queue[0]
                wait, why = limits.wait(head, now)
                if wait > 0:
                    if first is None or wait < first[0]:
                        first = (wait, f"{model}: {why}", head)
                    break
                queue.popleft()
                limits.take(head, now)
                head.admitted, head.sent_at = True, now
                self.in_flight += 1
                _soon(head.loop, _resolve, head.future)
        self.note = "" if first is None else f"{self.name}, {first[1]}"
        if first is not None and now + first[0] < self._timer_at - 0.001:
            self._timer_at = now + first[0]
            loop, delay = first[2].loop, first[0]
            _soon(loop, lambda: loop.call_later(delay, self._on_timer))

    def _on_timer(self) -> None:
        with self._lock:
            self._timer_at = math.inf
            self._dispatch(time.monotonic())
        self._tell()

    def _finish(self, ticket: Ticket, usage: Any, now: float) -> None:
        if not ticket.admitted:
            return
        ticket.admitted = False
        self.in_flight -= 1
        self.models[ticket.model].done(ticket, usage, now)
        self._dispatch(now)

    def _grow(self, ticket: Ticket, now: float) -> None:
        """The provider took `ticket`'s request: grow the cap if it held requests back (slow
        start, then one a round); while nothing was refused lately, straight to what the
        limits hold now. Once a request."""
        if ticket.grew or self.in_flight < self._slots():
            return
        ticket.grew = True
        limits = self.models.get(ticket.model)
        quiet = max((b.window for b in limits.buckets.values()), default=60.0) if limits else 60.0
        if now - self._slowed > quiet:
            self.threshold = math.inf
        self.cap += 1.0 if self.cap < self.threshold else 1.0 / self.cap
        if self.threshold == math.inf:
            room = limits.room(ticket, now) if limits else math.inf
            self.cap = max(self.cap, min(self.in_flight + room, float(self.ceiling)))
        self.cap = min(self.cap, float(self.ceiling))

    def _slow_down(self, ticket: Ticket, now: float) -> None:
        """Halve the cap, once for the requests sent before the last cut."""
        if ticket.sent_at < self._slowed:
            return
        self._slowed = now
        self.threshold = max(1.0, self.cap / 2)
        self.cap = self.threshold

    def _refusal(self, ticket: Ticket, limits: ModelLimits, headers: Any, now: float) -> None:
        wait = retry_after(headers)
        if wait is None:  # no word from the provider: the buckets, else a growing backoff
            wait = limits.wait(ticket, now)[0] or NO_RETRY_AFTER * 2 ** min(limits.in_a_row, 6)
            limits.in_a_row += 1
        ticket.refused = wait
        self.refused += 1
        if now + wait > limits.blocked_until:
            limits.blocked_until = now + wait
            limits.blocked_for = f"a 429 asked to wait {wait:.3g} s"
        self._slow_down(ticket, now)

    def _tell(self) -> None:
        """Tell the watchers when requests start or stop waiting for the provider."""
        if self.note != self._told:
            self._told = self.note
            note = waiting_note(cut_short=False)
            for listener in list(_listeners):
                with suppress(Exception):  # a broken display must not break a run
                    listener(note)

    def limits_text(self, model: str) -> str:
        """The limits of `model` last seen, in words."""
        with self._lock:
            limits = self.models.get(model)
            now = time.monotonic()
            if limits is None or not limits.buckets:
                return "no limits announced"
            return ", ".join(f"{n} {describe(b, now)}" for n, b in limits.buckets.items())

    def lines(self) -> list[str]:
        """The pace in force and the limits last seen (%tgconfig)."""
        head = (
            f"{self.name}: {self.in_flight} in flight, concurrency cap {self._slots()} "
            f"(ceiling {self.ceiling}), {self.refused} refused (429)"
        )
        details = [f"  {model}: {self.limits_text(model)}" for model in list(self.models)]
        note = [f"  waiting for the provider's rate limit: {self.note}"] if self.note else []
        return [head, *details, *note]


def refusal(spec: str, ticket: Ticket, times: int, waited: float, timeout: float) -> EngineError:
    """The one line of a request the provider kept refusing past the request timeout."""
    return EngineError(
        f"{spec}: the provider's rate limit refused this request (429, {times} in a row); "
        f"waiting as it asks would take {waited:,.1f} s, past the request timeout of "
        f"{timeout:g} s ({ticket.model}: {ticket.pace.limits_text(ticket.model)}). Run again "
        "later, or raise the timeout with tg.configure(request_timeout=SECONDS) (or %tgconfig)"
    )


_paces: dict[str, Pace] = {}
_paces_lock = threading.Lock()
_listeners: list[Callable[[str], None]] = []
_cut_short: tuple[float, str] = (-math.inf, "")  # when a wait was cancelled, and its note


def pace_for(name: str) -> Pace:
    """The pace of the account `name` (provider and base URL), made at its first use."""
    with _paces_lock:
        if name not in _paces:
            _paces[name] = Pace(name)
        return _paces[name]


def forget() -> None:
    """Forget every pace that has nothing in flight or waiting (config.reset); the caps they
    reached are remembered for the next pace of their account (pace_memory.py)."""
    with _paces_lock:
        idle = {n: p for n, p in _paces.items() if not p.in_flight and not any(p._queues.values())}
        for name in idle:
            del _paces[name]
    _remember(list(idle.values()))


@atexit.register
def _remember_at_exit() -> None:
    _remember(paces())


def _remember(used: list[Pace]) -> None:
    pace_memory.remember({p.name: p.reached() for p in used if p._start})


def paces() -> list[Pace]:
    with _paces_lock:
        return list(_paces.values())


def waiting_note(*, cut_short: bool = True) -> str:
    """Why model calls wait for a provider's rate limit now, or (`cut_short`) waited when they
    were cancelled less than a second ago ("" when none does)."""
    now = "; ".join(p.note for p in paces() if p.note)
    at, then = _cut_short
    return now or (then if cut_short and time.monotonic() - at < 1.0 else "")


def watch(listener: Callable[[str], None]) -> None:
    """Call `listener(note)` whenever calls start ("..." why) or stop ("") waiting for a
    provider's rate limit (from the thread of the event loop that noticed)."""
    _listeners.append(listener)


def unwatch(listener: Callable[[str], None]) -> None:
    with suppress(ValueError):
        _listeners.remove(listener)


def _soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Run `callback` on `loop`: now when this thread runs it, else as soon as it can."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback(*args)
    else:
        with suppress(RuntimeError):  # that loop is closed: nobody waits there any more
            loop.call_soon_threadsafe(callback, *args)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
