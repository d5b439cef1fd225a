"""A private event loop on a daemon thread: the synchronous API runs the async core there.

Blocking the caller's thread on a loop of our own works the same in a plain script and inside
a Jupyter kernel (whose main thread already runs a loop that we must not re-enter).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new = asyncio.new_event_loop()
            threading.Thread(target=new.run_forever, name="tg_magic-loop", daemon=True).start()
            _loop = new
        return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the background loop and wait for it; Ctrl-C cancels it cleanly."""
    target = loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is target:
        coro.close()
        raise RuntimeError(
            "tg_magic's synchronous API was called from its own event loop: await it"
        )
    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
        _within_deadline(coro), target
    )
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise


async def _within_deadline(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro`, cancelled past `settings.run_deadline` seconds (read when the call starts)."""
    from .config import settings
    from .errors import EngineError

    seconds = settings.run_deadline
    if not seconds:
        return await coro
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await coro
    except TimeoutError:
        if not deadline.expired():
            raise
        from .engines.pacing import waiting_note

        waiting = waiting_note()  # what held the run back, when a provider's rate limit did
        while_ = f" while waiting for the provider's rate limit ({waiting})" if waiting else ""
        raise EngineError(
            f"stopped at the run deadline of {seconds:g} s (the run_deadline setting){while_}; "
            "results so far are kept; raise it with tg.configure(run_deadline=SECONDS) (or "
            "%tgconfig)"
        ) from None
