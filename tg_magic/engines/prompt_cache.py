"""Prompt caching: which start of a request is marked for the provider's cache (Claude's
`cache_control`), and the first request of each new prefix sent alone.

A prefix is marked only when it reaches the model's minimum cacheable length (CACHE_MINIMUM in
usage.py), estimated at 3 bytes a token as a budget's claim is; below it the request is sent
exactly as before. The provider makes a cache entry readable only once the reply that writes it
has begun, so concurrent requests starting with the same new prefix would each write it (a
quarter dearer than plain input): the first goes alone, the others wait for its first event
and then read it (a tenth of the price).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .usage import cache_minimum

if TYPE_CHECKING:
    from .base import Request

# The provider keeps an entry 5 minutes after its last use. Past 4 minutes without one, the
# next request of that prefix goes alone again: a wait costs less than concurrent writes.
WARM_SECONDS = 240.0


def estimated_tokens(text: str) -> int:
    """About 3 bytes a token (at most: English runs nearer 4)."""
    return len(text.encode("utf-8", "surrogatepass")) // 3


@dataclass(frozen=True)
class Marks:
    """Where a request's cached prefixes end (the provider reads system, then the message)."""

    system: bool = False  # the system prompt ends one
    user: int = 0  # characters of the user prompt that end one (0: none)
    tokens: int = 0  # estimated tokens of the longest marked prefix, system included
    keys: tuple[str, ...] = ()  # a digest per marked prefix, shortest first


def marks(model: str, request: Request) -> Marks:
    """The prefixes of `request` worth marking: the system prompt, and the shared start of the
    user prompt (Request.shared_prefix), each when what it ends reaches the minimum."""
    minimum = cache_minimum(model)
    system = request.system or ""
    system_tokens = estimated_tokens(system)
    on_system = bool(system) and system_tokens >= minimum
    keys = [_digest(model, system)] if on_system else []
    tokens = system_tokens if on_system else 0
    user = 0
    head = request.prompt[: request.shared_prefix]
    if request.shared_prefix > 0 and not request.parts and head.strip():
        head_tokens = system_tokens + estimated_tokens(head)
        if head_tokens >= minimum:
            rest = request.prompt[len(head) :]
            user = len(head) if rest.strip() else len(request.prompt)  # no blank block
            keys.append(_digest(model, system, request.prompt[:user]))
            tokens = head_tokens
    return Marks(on_system, user, tokens, tuple(keys))


def _digest(*texts: str) -> str:
    payload = json.dumps(texts, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.sha256(payload).hexdigest()


class Warmup:
    """One per engine: of the requests that start with the same new prefix, the first goes
    alone and the others wait until its reply has begun (or it failed: then one of them goes
    first)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, str], asyncio.Event] = {}
        self._warm: dict[tuple[int, str], float] = {}  # key -> last use (monotonic seconds)

    @asynccontextmanager
    async def first(self, keys: tuple[str, ...]) -> AsyncIterator[Callable[[], None]]:
        """Wait until a request marking `keys` may go; yields `begun`, to call when its reply
        begins (a reply read whole counts as begun when the block ends without an error)."""
        loop = id(asyncio.get_running_loop())
        mine: list[tuple[int, str]] = []
        for key in keys:
            at = (loop, key)
            while at in self._pending:
                await self._pending[at].wait()
            seen = self._warm.get(at)
            if seen is not None and time.monotonic() - seen < WARM_SECONDS:
                self._warm[at] = time.monotonic()
            else:
                self._pending[at] = asyncio.Event()
                mine.append(at)
        done = False

        def begun() -> None:
            nonlocal done
            if not done:
                done = True
                self._release(mine, warm=True)

        try:
            yield begun
            begun()
        finally:
            if not done:
                self._release(mine, warm=False)

    def _release(self, keys: list[tuple[int, str]], *, warm: bool) -> None:
        now = time.monotonic()
        if len(self._warm) > 4096:  # forget prefixes the provider has dropped too
            self._warm = {k: t for k, t in self._warm.items() if now - t < WARM_SECONDS}
        for key in keys:
            if warm:
                self._warm[key] = now
            self._pending.pop(key).set()


def on_first_event(take: Callable[[Any, Any], None], begun: Callable[[], None]) -> Any:
    """`take` (an engine's reader of stream events) that first says the reply has begun."""

    def taking(event: Any, progress: Any) -> None:
        begun()
        take(event, progress)

    return taking
