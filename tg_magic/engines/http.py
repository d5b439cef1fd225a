"""The SDKs' HTTP clients: one per engine and event loop, on aiohttp where it is installed.

aiohttp is the SDKs' own choice for many calls at once (`DefaultAioHttpClient`): a batch of 256
calls costs about a third less of the client's CPU than on httpx, whose connection pool looks
at every open connection for each request and each reply (benchmarks/scale.py). Without aiohttp
the SDK's httpx client is used, with the same settings. Either keeps open as many connections as
calls may be in flight (the SDKs keep 100: past that, each round of a large batch would connect
anew) and hands every reply to the pace (pacing.on_response).

An aiohttp client must be closed on its own loop, or it complains when it is collected: a loop
that a runner ends (asyncio.run) closes it through an async generator, as the runner closes
those; a loop still open at the process's exit (ours, a kernel's) closes it then.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

from . import pacing

KEEP_OPEN = 1000  # connections kept open (the most calls in flight, with room)
CLOSE_WITHIN = 2.0  # seconds the exit waits for a client to close

# Every client made, with its loop and the generator that closes it at the loop's shutdown.
_open: list[tuple[asyncio.AbstractEventLoop, Any, AsyncIterator[None]]] = []
_lock = threading.Lock()


def sdk_client(clients: dict[Any, Any], sdk: Any, build: Callable[[Any], Any]) -> Any:
    """The SDK client of the running loop in `clients` (an engine's), made by `build(http)` at
    the loop's first call with an HTTP client of `sdk` (the anthropic or openai module)."""
    loop = asyncio.get_running_loop()
    made = clients.get(loop)
    if made is None:
        for old in [old for old in clients if old.is_closed()]:
            del clients[old]  # its client was closed with it
        made = clients[loop] = build(_http_client(sdk, loop))
    return made


def _http_client(sdk: Any, loop: asyncio.AbstractEventLoop) -> Any:
    try:
        import httpx2 as httpx  # the SDKs' HTTP library (httpx before it)
    except ImportError:  # pragma: no cover - an SDK on httpx
        import httpx  # type: ignore[no-redef]
    limits = httpx.Limits(max_connections=KEEP_OPEN, max_keepalive_connections=KEEP_OPEN)
    hooks = {"response": [pacing.on_response]}
    try:
        client = sdk.DefaultAioHttpClient(limits=limits, event_hooks=hooks)
    except (AttributeError, RuntimeError):  # an SDK without it, or no aiohttp installed
        return sdk.DefaultAsyncHttpxClient(limits=limits, event_hooks=hooks)
    closer = _closing(client)
    with _lock:
        _open[:] = [entry for entry in _open if not entry[0].is_closed()]
        _open.append((loop, client, closer))
    loop.create_task(_start(closer))  # a first step, which makes the loop close it at shutdown
    return client


async def _closing(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with suppress(Exception):
            await client.aclose()


async def _start(closer: AsyncIterator[None]) -> None:
    with suppress(StopAsyncIteration):
        await closer.__anext__()


@atexit.register
def _close_at_exit() -> None:
    """Close the clients of loops still open (ours runs on a thread; a kernel's is stopped)."""
    with _lock:
        still = [(loop, client) for loop, client, _ in _open if not loop.is_closed()]
        _open.clear()
    for loop, client in still:
        with suppress(Exception):
            if loop.is_running():
                done = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                done.result(CLOSE_WITHIN)
            else:
                loop.run_until_complete(client.aclose())
