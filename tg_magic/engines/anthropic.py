"""Claude through the official `anthropic` SDK (2.x), imported on first use."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from ..errors import MissingAPIKey, UnusableReply
from .base import Engine, Reply, Request, counted


class AnthropicEngine(Engine):
    """`anthropic:MODEL`; key from ANTHROPIC_API_KEY, server from ANTHROPIC_BASE_URL."""

    # A 4,096-token reply takes about a minute; twice that means the request is stuck.
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
        self._clients: dict[int, Any] = {}  # one per event loop: SDK clients are bound to one
        self._can_count = True

    def _sdk_client(self) -> Any:
        # Made on the engine loop's thread, at the first call: the SDK import costs about 1 s.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._clients:
            import anthropic

            self._clients[loop_id] = anthropic.AsyncAnthropic(max_retries=self.max_retries)
        return self._clients[loop_id]

    def _args(self, request: Request) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": _content(request)}],
        }
        if request.system:
            args["system"] = request.system
        return args

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
        try:
            message = await self._sdk_client().messages.create(
                **self._args(request),
                max_tokens=request.max_tokens,
                timeout=self.request_timeout(),
            )
        except json.JSONDecodeError as exc:
            raise UnusableReply(f"a body that is not valid JSON ({exc})") from None
        if not hasattr(message, "content"):
            raise UnusableReply(f"a body that is not a message: {str(message)[:80]!r}")
        text = "".join(b.text for b in message.content if getattr(b, "type", "") == "text")
        u = message.usage
        return Reply(
            text,
            counted(self.model, u.input_tokens, u.output_tokens, u.cache_read_input_tokens or 0),
        )


def _content(request: Request) -> Any:
    """The user message: text, or text and image blocks in their order."""
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
