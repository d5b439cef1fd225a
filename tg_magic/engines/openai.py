"""OpenAI-compatible servers (Ollama, vLLM, LM Studio): `openai:MODEL@BASE_URL`."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from ..errors import EngineError, UnusableReply
from .base import Engine, Reply, Request, counted


class OpenAIEngine(Engine):
    """Chat completions through the `openai` SDK (the `openai` extra); key from OPENAI_API_KEY."""

    # Local servers (Ollama, LM Studio) on a CPU can take minutes for one long reply.
    default_timeout = 300.0

    def __init__(self, model: str, base_url: str | None = None) -> None:
        self.model = model
        self.base_url = base_url
        self.spec = f"openai:{model}" + (f"@{base_url}" if base_url else "")
        self._clients: dict[int, Any] = {}  # one per event loop: SDK clients are bound to one

    def _sdk_client(self) -> Any:
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._clients:
            try:
                import openai
            except ImportError:
                raise EngineError(
                    f"{self.spec} needs the openai package: pip install 'tg-magic[openai]'"
                ) from None
            # Local servers accept any key; the SDK insists on having one.
            key = os.environ.get("OPENAI_API_KEY") or "not-needed"
            self._clients[loop_id] = openai.AsyncOpenAI(
                api_key=key, base_url=self.base_url, max_retries=self.max_retries
            )
        return self._clients[loop_id]

    async def _complete(self, request: Request) -> Reply:
        messages: list[dict[str, Any]] = [{"role": "user", "content": _content(request)}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        try:
            response = await self._sdk_client().chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=request.max_tokens,
                timeout=self.request_timeout(),
            )
        except json.JSONDecodeError as exc:
            raise UnusableReply(f"a body that is not valid JSON ({exc})") from None
        if not getattr(response, "choices", None):
            raise UnusableReply(f"a body with no choices: {str(response)[:80]!r}")
        text = response.choices[0].message.content or ""
        u = response.usage
        return Reply(
            text, counted(self.model, u.prompt_tokens if u else 0, u.completion_tokens if u else 0)
        )


def _content(request: Request) -> Any:
    """The user message: text, or text and image_url parts (data URLs) in their order."""
    if not request.parts:
        return request.prompt
    return [
        {"type": "text", "text": p}
        if isinstance(p, str)
        else {"type": "image_url", "image_url": {"url": f"data:{p.media_type};base64,{p.base64()}"}}
        for p in request.parts
        if p
    ]
