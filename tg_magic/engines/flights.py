"""Single flight: identical requests in flight at once are sent once and share the reply.

The reply cache catches a repeat only once the first reply is stored; a batch often asks the
same thing several times at once (the same question, the same gradient request), before any
reply is back. The first caller sends it; the others wait for its reply. Per event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

_flights: dict[tuple[int, str], asyncio.Future[str]] = {}


class _Abandoned(Exception):
    """The caller that was sending the request was cancelled: another sends it."""


async def once(key: str, send: Callable[[], Awaitable[str]]) -> tuple[str, bool]:
    """The reply for `key`, and whether it was shared: from the same request already in flight
    on this event loop, else from `send()` (its error, too, is every waiting caller's)."""
    loop = asyncio.get_running_loop()
    slot = (id(loop), key)
    while (flight := _flights.get(slot)) is not None:
        try:
            return await asyncio.shield(flight), True
        except _Abandoned:
            continue
    flight = loop.create_future()
    _flights[slot] = flight
    try:
        text = await send()
    except BaseException as exc:
        flight.set_exception(exc if isinstance(exc, Exception) else _Abandoned())
        flight.exception()  # read, so an error nobody shared is not reported as unretrieved
        raise
    finally:
        del _flights[slot]
    flight.set_result(text)
    return text, False
