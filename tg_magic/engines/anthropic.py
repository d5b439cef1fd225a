"""Claude through the official `anthropic` SDK (2.x), imported on first use.

Replies are streamed (`stream=True`): the text and the token counts come from the events
(message_start: input; message_delta: output), and a stream that stalls is abandoned after the
idle timeout and asked again (engines/streaming.py)."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import MissingAPIKey, UnusableReply
from . import http, pacing, prompt_cache
from .base import Engine, Reply, Request, counted
from .streaming import Progress, streamed

# The prompt cache's 5-minute entries (refreshed by each read).
EPHEMERAL = {"type": "ephemeral"}


class AnthropicEngine(Engine):
    """`anthropic:MODEL`; key from ANTHROPIC_API_KEY, server from ANTHROPIC_BASE_URL."""

    _warm: prompt_cache.Warmup | None = None  # made at the first call

    # A 4,096-token reply takes about a minute; twice that means the request is stuck. A stream
    # that sends nothing for the idle timeout (30 s) is retried well before that.
    default_timeout = 120.0
    # Counting takes well under a second; past this the estimate is used instead (no retry).
    count_timeout = 5.0

    def __init__(self, model: str, max_retries: int = 3) -> None:
        if not os.environ.get("ANTHROPIC_API_KEY"):
            raise MissingAPIKey(
                f"anthropic:{model} needs an API key: set the ANTHROPIC_API_KEY environment "
                "variable, or use the engine 'local' (the embedded model, no key needed)"
            )
        self.model = model
        self.spec = f"anthropic:{model}"
        self.max_retries = max_retries
        self._clients: dict[Any, Any] = {}  # one per event loop: SDK clients are bound to one
        self._can_count = True

    def _sdk_client(self) -> Any:
        # Made on the engine loop's thread, at the first call: the SDK import costs about 1 s.
        import anthropic

        def build(http_client: Any) -> Any:
            # The SDK retries transient faults; a 429 goes to the pace (engines/pacing.py).
            return anthropic.AsyncAnthropic(max_retries=self.max_retries, http_client=http_client)

        return http.sdk_client(self._clients, anthropic, build)

    def pace(self) -> pacing.Pace:
        """One pace per account: this provider at this base URL (ANTHROPIC_BASE_URL)."""
        return pacing.pace_for(f"anthropic at {self._sdk_client().base_url}")

    def _args(self, request: Request) -> dict[str, Any]:
        """The Messages request. A prefix that reaches the minimum cacheable length is marked
        for the prompt cache (the system prompt as a text block, the shared start of the user
        prompt as its first block); below it the request is as it always was."""
        marked = prompt_cache.marks(self.model, request)
        args: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": _content(request, marked.user)}],
        }
        if request.system:
            args["system"] = (
                [{"type": "text", "text": request.system, "cache_control": EPHEMERAL}]
                if marked.system
                else request.system
            )
        return args

    def cache_write_tokens(self, request: Request) -> int:
        return prompt_cache.marks(self.model, request).tokens

    def _warmup(self) -> prompt_cache.Warmup:
        if self._warm is None:
            self._warm = prompt_cache.Warmup()
        return self._warm

    async def count_input_tokens(self, request: Request) -> int | None:
        """The API's own count (free, no model call); None when the server has no such endpoint."""
        if not self._can_count:
            return None
        try:
            client = self._sdk_client().with_options(max_retries=0)
            result = await client.messages.count_tokens(
                **self._args(request), timeout=min(self.count_timeout, self.request_timeout())
            )
            return int(result.input_tokens)
        except Exception as exc:
            if getattr(exc, "status_code", None) in (400, 403, 404, 405):
                self._can_count = False  # this server cannot count: estimate from now on
            return None

    async def _complete(self, request: Request) -> Reply:
        client = self._sdk_client()
        args = {**self._args(request), "max_tokens": request.max_tokens}
        from . import batches

        if batches.wanted():  # a Message Batch at half price (None: the server has none)
            reply = await batches.complete(self, request, args, client)
            if reply is not None:
                return reply

        async def open_stream(idle: float) -> Any:
            return await client.messages.create(**args, stream=True, timeout=idle)

        # The first request of a new cached prefix goes alone (prompt_cache.py).
        async with self._warmup().first(prompt_cache.marks(self.model, request).keys) as begun:
            take = prompt_cache.on_first_event(_take, begun)
            return await streamed(self, open_stream, take, self._whole)

    async def _whole(self, response: Any) -> Reply:
        """A reply that was not streamed (a proxy that ignores `stream`, an error page)."""
        data = await response.aread()
        try:
            message = json.loads(data)
        except ValueError as exc:
            if "json" in str(response.headers.get("content-type", "")):
                raise UnusableReply(f"a body that is not valid JSON ({exc})") from None
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            text = data.decode("utf-8", "replace")
            raise UnusableReply(f"a body that is not a message: {text[:80]!r}")
        text = "".join(
            str(b.get("text", "")) for b in message["content"] if b.get("type") == "text"
        )
        u = message.get("usage") or {}
        usage = counted(
            self.model,
            u.get("input_tokens", 0),
            u.get("output_tokens", 0),
            u.get("cache_read_input_tokens") or 0,
            u.get("cache_creation_input_tokens") or 0,
        )
        return Reply(text, usage)


def _take(event: Any, progress: Progress) -> None:
    """One event of a Messages stream into the reply so far. Counts are cumulative: the last
    one sent is the reply's (message_delta overwrites message_start's)."""
    kind = getattr(event, "type", "")
    if kind == "message_start":
        u = event.message.usage
        progress.input_tokens = u.input_tokens
        progress.output_tokens = u.output_tokens
        progress.cache_read_tokens = u.cache_read_input_tokens or 0
        progress.cache_write_tokens = u.cache_creation_input_tokens or 0
    elif kind == "content_block_delta":
        if getattr(event.delta, "type", "") == "text_delta":
            progress.parts.append(event.delta.text)
    elif kind == "message_delta":
        u = event.usage
        progress.output_tokens = u.output_tokens
        if getattr(u, "input_tokens", None) is not None:
            progress.input_tokens = u.input_tokens
        if getattr(u, "cache_read_input_tokens", None) is not None:
            progress.cache_read_tokens = u.cache_read_input_tokens
        if getattr(u, "cache_creation_input_tokens", None) is not None:
            progress.cache_write_tokens = u.cache_creation_input_tokens
    elif kind == "message_stop":
        progress.done = True


def _content(request: Request, shared: int = 0) -> Any:
    """The user message: text, or text and image blocks in their order; with `shared`, its
    first `shared` characters as a block marked for the prompt cache, then the rest."""
    if shared:
        head, rest = request.prompt[:shared], request.prompt[shared:]
        first = {"type": "text", "text": head, "cache_control": EPHEMERAL}
        return [first, {"type": "text", "text": rest}] if rest else [first]
    if not request.parts:
        return request.prompt
    return [
        {"type": "text", "text": p}
        if isinstance(p, str)
        else {
            "type": "image",
            "source": {"type": "base64", "media_type": p.media_type, "data": p.base64()},
        }
        for p in request.parts
        if p
    ]
