"""OpenAI-compatible servers (Ollama, vLLM, LM Studio): `openai:MODEL@BASE_URL`.

Replies are streamed (`stream=True`, with `stream_options.include_usage` for the token counts
where the server takes it); a server that answers without streaming is read whole. A stream that
stalls is abandoned after the idle timeout and asked again (engines/streaming.py)."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import EngineError, UnusableReply
from . import http, pacing
from .base import Engine, Reply, Request, counted
from .streaming import Progress, streamed


class OpenAIEngine(Engine):
    """Chat completions through the `openai` SDK (the `openai` extra); key from OPENAI_API_KEY."""

    # Local servers (Ollama, LM Studio) on a CPU can take minutes for one long reply.
    default_timeout = 300.0

    def __init__(self, model: str, base_url: str | None = None) -> None:
        self.model = model
        self.base_url = base_url
        self.spec = f"openai:{model}" + (f"@{base_url}" if base_url else "")
        self._clients: dict[Any, Any] = {}  # one per event loop: SDK clients are bound to one
        self._stream_usage = True  # False once the server refused stream_options

    def _sdk_client(self) -> Any:
        try:
            import openai
        except ImportError:
            raise EngineError(
                f"{self.spec} needs the openai package: pip install 'tg-magic[openai]'"
            ) from None

        def build(http_client: Any) -> Any:
            # Local servers accept any key; the SDK insists on having one. The SDK retries
            # transient faults; a 429 goes to the pace (engines/pacing.py).
            return openai.AsyncOpenAI(
                api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
                base_url=self.base_url,
                max_retries=self.max_retries,
                http_client=http_client,
            )

        return http.sdk_client(self._clients, openai, build)

    def pace(self) -> pacing.Pace:
        """One pace per account: this server (its base URL)."""
        return pacing.pace_for(f"openai at {self._sdk_client().base_url}")

    async def _complete(self, request: Request) -> Reply:
        messages: list[dict[str, Any]] = [{"role": "user", "content": _content(request)}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        client = self._sdk_client()

        async def open_stream(idle: float) -> Any:
            args: dict[str, Any] = {
                "model": self.model,
                "messages": messages,
                "max_tokens": request.max_tokens,
                "stream": True,
                "timeout": idle,
            }
            if self._stream_usage:
                try:
                    return await client.chat.completions.create(
                        **args, stream_options={"include_usage": True}
                    )
                except Exception as exc:
                    if getattr(exc, "status_code", None) != 400 or "stream_options" not in str(exc):
                        raise
                    self._stream_usage = False  # an older server: no counts, but a reply
            return await client.chat.completions.create(**args)

        return await streamed(self, open_stream, _take, self._whole, ends_itself=True)

    async def _whole(self, response: Any) -> Reply:
        """A reply that was not streamed (a server that ignores `stream`)."""
        data = await response.aread()
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise UnusableReply(f"a body that is not valid JSON ({exc})") from None
        choices = body.get("choices") if isinstance(body, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise UnusableReply(f"a body with no choices: {data[:80].decode('utf-8', 'replace')!r}")
        text = str((choices[0].get("message") or {}).get("content") or "")
        u = body.get("usage") or {}
        return Reply(
            text, counted(self.model, u.get("prompt_tokens", 0), u.get("completion_tokens", 0))
        )


def _take(chunk: Any, progress: Progress) -> None:
    """One chunk of a chat-completions stream into the reply so far; the usage comes in the
    last chunk (with no choices) when the server was asked for it."""
    for choice in getattr(chunk, "choices", None) or []:
        if getattr(choice, "index", 0) != 0:
            continue
        content = getattr(choice.delta, "content", None) if choice.delta else None
        if content:
            progress.parts.append(content)
        if getattr(choice, "finish_reason", None):
            progress.done = True
    u = getattr(chunk, "usage", None)
    if u is not None:
        progress.input_tokens = u.prompt_tokens or 0
        progress.output_tokens = u.completion_tokens or 0


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
