"""Streamed replies, for the engines that reach a provider over HTTP (Claude, OpenAI-compatible).

A stalled request used to cost the whole request timeout (120 s for Claude) before its retry. A
generating server sends bytes continuously when it streams, so each attempt is streamed: the SDK
waits at most `idle_timeout` (30 s by default) for each read, before the reply begins (the SDK
retries those) and between its events (an Interrupted attempt: Engine._call retries it), and
`request_timeout` still bounds the whole attempt. One stalled request so costs the idle timeout
and a retry. The text and the token counts are read from the events; a cut-off attempt is
settled with the counts it had reported (the provider bills them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import redact
from .base import Engine, Interrupted, Reply, counted
from .usage import Usage


@dataclass
class Progress:
    """What a streamed reply has delivered so far: its text and the provider's token counts
    (as sent: `counted` checks them once the reply is complete)."""

    parts: list[str] = field(default_factory=list)
    input_tokens: Any = 0
    output_tokens: Any = 0
    cache_read_tokens: Any = 0
    cache_write_tokens: Any = 0
    started: bool = False  # the provider began the reply (it bills it from here)
    done: bool = False  # the provider said the reply is complete

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def usage(self, model: str) -> Usage:
        """The counts of a complete reply (an unusable count raises UnusableReply)."""
        return counted(model, *self._counts())

    def partial_usage(self, model: str) -> Usage:
        """The counts reported before the reply was cut off; a count that is not one is 0."""
        if not self.started:
            return Usage()
        return counted(model, *(c if type(c) is int and c >= 0 else 0 for c in self._counts()))

    def _counts(self) -> tuple[Any, Any, Any, Any]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
        )


async def streamed(
    engine: Engine,
    open_stream: Callable[[float], Awaitable[Any]],
    take: Callable[[Any, Progress], None],
    whole: Callable[[Any], Awaitable[Reply]],
    *,
    ends_itself: bool = False,
) -> Reply:
    """One streamed attempt: `open_stream(idle_timeout)` sends the request (the SDK waits at
    most the idle timeout for each read, and retries what failed before the reply began);
    `take` reads each event into the progress; a server that answered without streaming
    goes to `whole(response)`. The request timeout bounds the attempt; a stream that stalls
    for the idle timeout, breaks off, or ends without saying it is complete (unless
    `ends_itself`: its end is its completion) is Interrupted, and retried."""
    progress = Progress()
    idle = engine.idle_timeout()
    total = engine.request_timeout()
    bound = asyncio.timeout(total)
    try:
        async with bound:
            stream = await open_stream(idle)
            response = getattr(stream, "response", None)
            kind = str(getattr(response, "headers", {}).get("content-type", ""))
            if response is not None and "event-stream" not in kind:
                return await whole(response)  # a server that does not stream
            try:
                async for event in stream:
                    progress.started = True
                    take(event, progress)
            except json.JSONDecodeError as exc:
                usage = progress.partial_usage(engine.model)
                raise Interrupted(f"a body that is not valid JSON ({exc})", usage) from None
            except Exception as exc:
                cut = _cut(engine, exc, progress, idle)
                if cut is None:
                    raise
                raise cut from None
            finally:
                with contextlib.suppress(Exception):
                    await stream.close()
    except TimeoutError:
        if not bound.expired():
            raise
        raise Interrupted(
            f"no reply within the request timeout of {total:g} s",
            progress.partial_usage(engine.model),
            "raise it with tg.configure(request_timeout=SECONDS) (or %tgconfig), or check "
            "the network",
        ) from None
    if not (progress.done or ends_itself):
        raise Interrupted(
            "a reply that ended before it was complete",
            progress.partial_usage(engine.model),
            "check the provider's status page (and the server address), or the network",
        )
    return Reply(progress.text, progress.usage(engine.model))


def _cut(engine: Engine, exc: Exception, progress: Progress, idle: float) -> Interrupted | None:
    """An error raised while a stream was being read, as the reason of a retry (None: not
    the provider's doing, so not retried)."""
    usage = progress.partial_usage(engine.model)
    name = type(exc).__name__
    if name == "APITimeoutError":
        return Interrupted(
            f"a reply that stopped arriving (nothing for {idle:g} s, the idle timeout)",
            usage,
            "raise it with tg.configure(idle_timeout=SECONDS) (or TG_MAGIC_IDLE_TIMEOUT) "
            "if the server is slow to start, or check the network",
        )
    if "APIConnectionError" in {c.__name__ for c in type(exc).__mro__}:
        return Interrupted(
            "a reply whose connection broke off",
            usage,
            "check the network, and the server address",
        )
    if getattr(exc, "status_code", None) is None:
        return None
    # An error event in the stream (e.g. overloaded): the provider's own words.
    return Interrupted(
        f"an error in the middle of the reply: {redact(str(exc))[:160]}",
        usage,
        "check the provider's status page, or run again later",
    )
