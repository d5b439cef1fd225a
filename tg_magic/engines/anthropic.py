"""Claude through the official `anthropic` SDK (2.x), imported on first use."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import MissingAPIKey
from .base import Engine, Reply, Request, counted


class AnthropicEngine(Engine):
    """`anthropic:MODEL`; key from ANTHROPIC_API_KEY, server from ANTHROPIC_BASE_URL."""

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

    def _sdk_client(self) -> Any:
        # Made on the engine loop's thread, at the first call: the SDK import costs about 1 s.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._clients:
            import anthropic

            self._clients[loop_id] = anthropic.AsyncAnthropic(max_retries=self.max_retries)
        return self._clients[loop_id]

    async def _complete(self, request: Request) -> Reply:
        args: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": "user", "content": _content(request)}],
        }
        if request.system:
            args["system"] = request.system
        message = await self._sdk_client().messages.create(**args)
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
