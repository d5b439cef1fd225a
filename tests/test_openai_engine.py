"""`openai:MODEL@BASE_URL` against a loopback OpenAI-compatible server (as Ollama or vLLM)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

import tg_magic as tg

pytest.importorskip("openai")


class _Chat(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @staticmethod
    def answer(body: dict[str, Any]) -> str:
        """The reply text (a subclass may answer otherwise, e.g. from the fake's rules)."""
        return f"echo: {body['messages'][-1]['content'][:20]}"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _Chat.received.append({"path": self.path, "body": body})
        if body.get("stream"):
            self.send_stream(body)
            return
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": type(self).answer(body)},
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The chat.completion.chunk objects of a streamed reply: the text a few characters at
        a time, the finish reason, then (when asked with stream_options) the usage."""
        text = type(self).answer(body)
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
        base["model"] = body["model"]

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        out = [choice({"role": "assistant", "content": ""})]
        out += [choice({"content": text[i : i + 8]}) for i in range(0, len(text), 8)]
        out.append(choice({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
            out.append({**base, "choices": [], "usage": usage})
        return out

    def send_stream(self, body: dict[str, Any]) -> None:
        """Server-sent events, as OpenAI and Ollama send them; the connection ends the body."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for chunk in self.chunks(body):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def serve_chat(handler: type[_Chat] = _Chat) -> ThreadingHTTPServer:
    """A started loopback chat-completions server (stop it with .shutdown())."""
    _Chat.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def server() -> Iterator[str]:
    httpd = serve_chat()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_openai_compatible_server(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    engine = tg.get_engine(f"openai:llama3.2@{server}")
    with tg.track_usage() as run:
        text = engine.generate("How many legs has a cat?", system_prompt="Answer briefly.")
    assert text == "echo: How many legs has a "
    sent = _Chat.received[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "llama3.2"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert run.usage.input_tokens == 11 and run.usage.output_tokens == 3
    assert run.usage.cost == 0  # no price known for a local server's model
