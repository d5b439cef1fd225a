"""Message Batches: big non-interactive work (a class's feedback, a benchmark's evaluation) at
half the price of ordinary requests.

While batch mode is on (`tg.configure(batch=True, batch_record=PATH)`, or `tg-magic feedback
--batch`), the Anthropic engine hands each request to a collector here instead of streaming it.
The requests in flight together (a level of the scheduler, the hints of several notebooks) go
out as one Message Batch once no new one joined for QUIET seconds (or the batch is full); the
batch is polled until it ends, and each waiting call gets its answer, priced at the batch rate
(usage.BATCH_RATE). An answer that errored, expired or was canceled is that call's unusable
reply: retried in a new batch, then its one-line failure.

A request's `custom_id` is its reply-cache key, and each batch is written to the record
(engines/batch_record.py) as soon as it is created: a run interrupted while a batch runs finds,
when it starts again, the batch holding each of its requests, waits for it and reads the answer
instead of paying twice. A server without the batches endpoint (a proxy, an OpenAI-compatible
server) is said in one line, and requests go the ordinary way from then on.
"""

from __future__ import annotations

import asyncio
import json
import sys
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EngineError, UnusableReply, redact
from .base import Engine, Reply, Request, counted
from .batch_record import Record, open_record
from .usage import Usage, at_batch_rate

QUIET = 0.2  # seconds without a new request before a batch is sent
MAX_WAIT = 2.0  # seconds the first request of a batch waits at most for others
MAX_REQUESTS = 10_000  # a batch may hold 100,000 requests and 256 MB: well within both
MAX_BYTES = 64_000_000
POLL_FIRST = 0.25  # seconds between the first polls of a batch; 1.5 times longer each time
POLL_MAX = 30.0
RECORD_NAME = "batches.json"  # the record's name in a command's output folder
# Calls in flight at once in batch mode, unless the concurrency setting is set: a call waiting
# in a batch costs the server nothing, and a level of the scheduler should be one batch.
CONCURRENCY = 256


@dataclass(frozen=True)
class BatchStatus:
    """A batch's request counts, as the server reports them while it runs."""

    id: str
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired

    @property
    def ended(self) -> int:
        return self.total - self.processing

    def __str__(self) -> str:
        text = f"{self.processing} processing, {self.succeeded} succeeded, {self.errored} errored"
        for name in ("canceled", "expired"):
            if getattr(self, name):
                text += f", {getattr(self, name)} {name}"
        return text


@dataclass
class Tally:
    """What batch mode did in this process: the summary line of a command."""

    batches: int = 0
    requests: int = 0
    reused: int = 0  # answers read from a batch an earlier run sent
    usage: Usage = field(default_factory=Usage)
    no_endpoint: bool = False


_tally = Tally()
_report: Callable[[BatchStatus], None] | None = None
_sent_here: set[str] = set()  # batches this process created
_delivered: set[tuple[str, str]] = set()  # (batch, custom_id) answers handed to a call


def wanted() -> bool:
    """Whether batch mode is on (the `batch` setting)."""
    from ..config import settings

    return bool(settings.batch)


def batchable(engine: Engine | None) -> bool:
    """Whether `engine` (None: the default engine) can send Message Batches: Claude's API."""
    from . import default_spec
    from .anthropic import AnthropicEngine

    if engine is None:
        return default_spec().startswith("anthropic:")
    return isinstance(engine, AnthropicEngine)


def start(
    record: Path, engine: Engine | None, report: Callable[[BatchStatus], None] | None = None
) -> bool:
    """Batch mode for a command's whole run (feedback, a benchmark), its record in `record`,
    read now (an unreadable one is a one-line error before any call); `report` is shown each
    batch's counts while it runs. Another engine than Claude's API says so in one line and is
    called the ordinary way (False)."""
    from ..config import configure, settings

    global _report, _tally
    if not batchable(engine):
        from . import default_spec

        spec = engine.spec if engine is not None else default_spec()
        print(
            f"tg_magic: {spec} has no Message Batches (only Claude's API has them): "
            "sending ordinary requests",
            file=sys.stderr,
        )
        return False
    open_record(record)
    changes: dict[str, Any] = {"batch": True, "batch_record": str(record)}
    if not settings.is_set("concurrency"):
        changes["concurrency"] = CONCURRENCY
    configure(**changes)
    _report, _tally = report, Tally()
    return True


def summary() -> str:
    """One line: the batches sent, the answers reused, the usage at the batch rate."""
    t = _tally
    if t.no_endpoint and not t.batches:
        return "Message Batches: none (the server has none): ordinary requests, at the full price"
    reused = f" ({t.reused} answers read from batches sent before)" if t.reused else ""
    return (
        f"Message Batches: {t.batches} sent with {t.requests} requests{reused}; {t.usage} "
        "at the batch rate (half price)"
    )


async def complete(
    engine: Engine, request: Request, params: dict[str, Any], client: Any
) -> Reply | None:
    """The reply through a Message Batch (`params`: the Messages request, `client`: the SDK's
    AsyncAnthropic), or None when the server has no batches endpoint: send it the usual way."""
    return await _collector(engine, client).ask(request.key(engine.spec), params)


@dataclass
class _Waiting:
    """A request about to be sent, and the calls waiting for its batch's id."""

    params: dict[str, Any]
    futures: list[asyncio.Future[str | None]] = field(default_factory=list)


class Collector:
    """The batches of one engine on one event loop: gathers, sends, polls, hands out answers."""

    def __init__(self, engine: Engine, client: Any) -> None:
        self.engine = engine
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.no_endpoint = False
        self.pending: dict[str, _Waiting] = {}
        self.size = 0  # bytes of the pending requests
        self.first = 0.0  # when the first pending request joined
        self.timer: asyncio.TimerHandle | None = None
        self.watches: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    async def ask(self, custom_id: str, params: dict[str, Any]) -> Reply | None:
        """The answer from the batch already holding this request (an earlier run's, or one in
        flight), else from the next batch; None: the server has no batches endpoint."""
        if self.no_endpoint:
            return None
        known = _record().where(custom_id)
        if known is not None and (known, custom_id) not in _delivered:
            result = (await self._results(known)).get(custom_id)
            if _kind(result) == "succeeded":  # paid before: read, not asked again
                return self._deliver(known, custom_id, result)
        batch_id = await self._join(custom_id, params)
        if batch_id is None:
            return None
        return self._deliver(batch_id, custom_id, (await self._results(batch_id)).get(custom_id))

    def _deliver(self, batch_id: str, custom_id: str, result: Any) -> Reply:
        """One call's answer; a second call with the same request shares it (not billed)."""
        if _kind(result) != "succeeded":
            raise _failure(self.engine.spec, batch_id, result)
        reply = _reply_of(self.engine.model, result.message)
        if (batch_id, custom_id) in _delivered:
            return Reply(reply.text, Usage(calls=1, cached_calls=1))
        _delivered.add((batch_id, custom_id))
        _tally.reused += batch_id not in _sent_here
        _tally.usage = _tally.usage + reply.usage
        return reply

    async def _join(self, custom_id: str, params: dict[str, Any]) -> str | None:
        """Wait in the next batch; its id once it is created (None: no batches endpoint)."""
        future: asyncio.Future[str | None] = self.loop.create_future()
        waiting = self.pending.get(custom_id)
        if waiting is None:
            waiting = self.pending[custom_id] = _Waiting(params)
            self.size += len(json.dumps(params))
        waiting.futures.append(future)
        self._schedule()
        try:
            return await future
        except asyncio.CancelledError:
            if future in waiting.futures:
                waiting.futures.remove(future)
            if not waiting.futures and self.pending.get(custom_id) is waiting:
                del self.pending[custom_id]  # nobody waits for it: not sent
            raise

    def _schedule(self) -> None:
        """Send when no request joined for QUIET seconds, MAX_WAIT after the first, or full."""
        now = self.loop.time()
        if self.timer is not None:
            self.timer.cancel()
        else:
            self.first = now
        wait = min(QUIET, self.first + MAX_WAIT - now)
        if wait <= 0 or len(self.pending) >= MAX_REQUESTS or self.size >= MAX_BYTES:
            self._flush()
        else:
            self.timer = self.loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending, self.size = self.pending, {}, 0
        if batch:
            self._spawn(self._send(batch))

    async def _send(self, batch: dict[str, _Waiting]) -> None:
        requests = [{"custom_id": cid, "params": w.params} for cid, w in batch.items()]
        try:
            created = await self.client.messages.batches.create(requests=requests)
        except Exception as exc:
            if _status(exc) in (404, 405):
                self._say_no_endpoint()
                _settle(batch, None)
            else:
                _settle(batch, exc)
            return
        _sent_here.add(created.id)
        _tally.batches += 1
        _tally.requests += len(batch)
        _record().add(created.id, list(batch))  # before the first poll: a rerun finds it
        self._watch_task(created.id)  # polled from now on: its progress shows
        _settle(batch, created.id)

    def _say_no_endpoint(self) -> None:
        self.no_endpoint = True
        if not _tally.no_endpoint:
            _tally.no_endpoint = True
            print(
                "tg_magic: the server has no Message Batches endpoint: sending ordinary requests",
                file=sys.stderr,
            )

    async def _results(self, batch_id: str) -> dict[str, Any]:
        """The batch's answers by custom_id, once it has ended ({}: the server knows no such
        batch, or no longer has its answers)."""
        return await asyncio.shield(self._watch_task(batch_id))

    def _watch_task(self, batch_id: str) -> asyncio.Task[dict[str, Any]]:
        task = self.watches.get(batch_id)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self.watches[batch_id] = self.loop.create_task(self._watch(batch_id))
        return task

    async def _watch(self, batch_id: str) -> dict[str, Any]:
        batches = self.client.messages.batches
        delay, shown = POLL_FIRST, None
        try:
            while True:
                batch = await batches.retrieve(batch_id)
                status = _status_of(batch)
                if status != shown and _report is not None:
                    _report(status)
                shown = status
                if batch.processing_status == "ended":
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, POLL_MAX)
            return {item.custom_id: item.result async for item in await batches.results(batch_id)}
        except Exception as exc:
            if _status(exc) == 404:
                return {}
            raise

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


_collectors: weakref.WeakKeyDictionary[Engine, dict[int, Collector]] = weakref.WeakKeyDictionary()


def _collector(engine: Engine, client: Any) -> Collector:
    loop = asyncio.get_running_loop()
    per_loop = _collectors.setdefault(engine, {})
    found = per_loop.get(id(loop))
    if found is None or found.loop is not loop:
        found = per_loop[id(loop)] = Collector(engine, client)
    return found


def _record() -> Record:
    from ..config import settings

    return open_record(settings.batch_record)


def _settle(batch: dict[str, _Waiting], outcome: str | Exception | None) -> None:
    for waiting in batch.values():
        for future in waiting.futures:
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _kind(result: Any) -> str | None:
    return getattr(result, "type", None)


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


def _status_of(batch: Any) -> BatchStatus:
    c = batch.request_counts
    return BatchStatus(batch.id, c.processing, c.succeeded, c.errored, c.canceled, c.expired)


def _reply_of(model: str, message: Any) -> Reply:
    """A succeeded answer as a Reply: its text, its counts priced at the batch rate."""
    text = "".join(
        str(getattr(b, "text", "")) for b in message.content if getattr(b, "type", "") == "text"
    )
    u = message.usage
    cache = (u.cache_read_input_tokens or 0, getattr(u, "cache_creation_input_tokens", 0) or 0)
    return Reply(text, at_batch_rate(counted(model, u.input_tokens, u.output_tokens, *cache)))


def _failure(spec: str, batch_id: str, result: Any) -> EngineError:
    """An answer that did not succeed: a refused request fails in one line; an errored,
    expired or canceled one is an unusable reply (retried in a new batch)."""
    kind = _kind(result)
    if kind is None:
        return UnusableReply(f"no answer to the request in Message Batch {batch_id}")
    if kind != "errored":
        return UnusableReply(f"a request of Message Batch {batch_id} that {kind}")
    error = getattr(getattr(result, "error", None), "error", None)
    what = str(getattr(error, "type", "error"))
    message = redact(str(getattr(error, "message", "")))[:160]
    if what == "invalid_request_error":
        return EngineError(
            f"{spec}: the request was refused in Message Batch {batch_id}: {message}; run "
            "without batch mode to see it refused at once"
        )
    return UnusableReply(f"a batch answer that errored ({what}: {message})")
