"""A loopback fake of the Anthropic Messages API, so tests and benchmarks never reach the network.

The fake speaks real HTTP on 127.0.0.1, so the real SDK (its headers, retries, connection pool)
is exercised end to end. It validates requests as strictly as the real API for the things our
client must get right (notably: no ``temperature``/``top_p``), can inject rate-limit and overload
errors and faults (a request held until the test releases it, a stream that stops sending
halfway without closing, a 200 with an HTML or broken JSON body, an empty content list, usage
counts larger than the text suggests), answers ``/v1/messages/count_tokens``, caches marked
prompt prefixes as the provider does (see `FakeMessagesAPI._usage`), records every request,
measures peak concurrency, and answers from user-defined rules or a deterministic default
responder good enough to drive a small optimization loop.

A request with ``"stream": true`` is answered with the Messages API's server-sent events
(message_start, content_block_start, ping, content_block_delta text_delta..., content_block_stop,
message_delta with the output usage, message_stop), the same reply cut into pieces; every rule,
fault, usage knob, record and the latency apply to it as to a plain request.

`set_limits` makes it enforce per-minute rate limits as the provider documents them (token
buckets for requests, input and output tokens, per model; over a limit, 429 `rate_limit_error`
with `retry-after`) and announce them on every reply (`anthropic-ratelimit-*`); see RateLimits.

Typical use::

    with FakeMessagesAPI() as fake:
        fake.add_rule("capital of France", "Paris")
        client = anthropic.Anthropic(api_key="k", base_url=fake.base_url)
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FAULTS", "FakeMessagesAPI", "Reply", "serve"]

FAULTS = ("stall", "stall_stream", "html", "bad_json", "empty")
"""What `inject` can do to a Messages request: hold it until `release()` (before any byte of
the reply); for a streamed request, send the first events (message_start, content_block_start,
the first text delta) then hold the rest until `release()` without closing (a plain request is
held whole); answer 200 with an HTML page, with a truncated JSON body (streamed: an event whose
data is cut off), or with a message whose content list is empty (streamed: no content block)."""

STREAM_STALL_AFTER = 4
"""Events a `stall_stream` fault sends before it stops sending: message_start,
content_block_start, a ping and the first text delta."""

Reply = str | Callable[[dict[str, Any], str], str]
"""A rule's answer: fixed text, or ``(body, text) -> str`` computed from the request."""

# Top-level fields the SDK 2.x may put in a Messages body. Anything else (notably `temperature`
# and `top_p`, which our client must never send) is rejected like the real API does.
ALLOWED_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "thinking",
        "tool_choice",
        "tools",
        "service_tier",
        "output_config",
        "cache_control",
        "container",
        # Also accepted by `messages.create` in SDK 2.13; harmless to allow.
        "diagnostics",
        "inference_geo",
        "speed",
    }
)

# Prompt caching: the fewest tokens a marked prefix needs before it is cached, per model (as
# tg_magic's CACHE_MINIMUM), and how many blocks one request may mark.
CACHE_MINIMUM: dict[str, int] = {
    "claude-haiku-5-5": 2048,
    "claude-sonnet-5-5": 1024,
    "claude-opus-5-5": 1024,
}
DEFAULT_CACHE_MINIMUM = 1024
MAX_CACHE_BREAKPOINTS = 4

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

ERROR_MESSAGES: dict[int, str] = {
    429: "Number of request tokens has exceeded your per-minute rate limit (injected by the fake)",
    500: "Internal server error (injected by the fake)",
    529: "Overloaded (injected by the fake)",
}

IMPROVE_SENTENCE = " Think step by step and answer with a number."
RECHECK_SENTENCE = " Double-check the count."
GENERIC_IMPROVED = (
    "You are a careful assistant. Read the question closely. Think step by step and answer with "
    "a number."
)
FEEDBACK_PREFIX = (
    "The variable could be improved by being more specific about the expected output format."
)
FEEDBACK_HINTS = (
    "State the final answer on its own line.",
    "Ask for the reasoning before the final answer.",
    "Name the unit of the answer explicitly.",
    "Remind the model to count every item, including single ones.",
    "Require the answer as digits rather than words.",
    "Keep the instruction short and unambiguous.",
)

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_TEENS = ("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen")
NUMBER_WORDS: dict[str, int] = {
    word: value for value, word in enumerate((*_WORDS, *_TEENS, "eighteen", "nineteen", "twenty"))
}
NUMBER_WORDS.update({"a": 1, "an": 1})

_QUESTION_RE = re.compile(r"\bhow many\b[^?]*?\bdo i have\s*\?", re.IGNORECASE)
_VARIABLE_RE = re.compile(r"<VARIABLE>(.*?)</VARIABLE>", re.DOTALL)


class _APIError(Exception):
    """Raised inside the handler to answer with the real error JSON shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# --------------------------------------------------------------------------------------------
# Request validation and text extraction
# --------------------------------------------------------------------------------------------


def _bad(message: str) -> _APIError:
    return _APIError(400, message)


def _validate(body: Any) -> None:
    """Reject what the real API rejects (the subset our client could plausibly get wrong)."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    for name in sorted(body):
        if name not in ALLOWED_FIELDS:
            raise _bad(f"{name}: Extra inputs are not permitted")
    if "model" not in body:
        raise _bad("model: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise _bad("model: Input should be a valid non-empty string")
    if "max_tokens" not in body:
        raise _bad("max_tokens: Field required")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise _bad("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise _bad("max_tokens: Input should be greater than or equal to 1")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _bad("stream: Input should be a valid boolean")
    _validate_messages(body.get("messages"), present="messages" in body)
    if "system" in body:
        _validate_system(body["system"])
    marked = len(_cache_points(body))
    if marked > MAX_CACHE_BREAKPOINTS:
        raise _bad(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {marked}."
        )
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops)
    ):
        raise _bad("stop_sequences: Input should be a list of non-empty strings")


def _validate_messages(messages: Any, *, present: bool) -> None:
    if not present:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    previous: str | None = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise _bad('messages: first message must use the "user" role')
        if role == previous:
            raise _bad(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        previous = role
        if "content" not in message:
            raise _bad(f"messages.{i}.content: Field required")
        _validate_content(message["content"], f"messages.{i}.content")


def _validate_content(content: Any, where: str) -> None:
    if isinstance(content, str):
        if not content:
            raise _bad(f"{where}: text content must be non-empty")
        return
    if not isinstance(content, list) or not content:
        raise _bad(f"{where}: Input should be a non-empty string or a non-empty list of blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad(f"{where}.{j}: each content block must be an object with a 'type'")
        _validate_cache_control(block, f"{where}.{j}")
        if block["type"] == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise _bad(f"{where}.{j}.text: Field required")
            if not text:
                raise _bad(f"{where}.{j}: text content blocks must be non-empty")
        elif block["type"] == "image":
            _validate_image(block.get("source"), f"{where}.{j}.source")


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _validate_image(source: Any, where: str) -> None:
    """An image block as the real API takes it: base64 data with a supported media type."""
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        raise _bad(f"{where}: an image source is {{'type': 'base64' | 'url', ...}}")
    if source["type"] == "url":
        if not isinstance(source.get("url"), str):
            raise _bad(f"{where}.url: Field required")
        return
    if source.get("media_type") not in IMAGE_TYPES:
        raise _bad(f"{where}.media_type: Input should be one of {', '.join(IMAGE_TYPES)}")
    data = source.get("data")
    if not isinstance(data, str) or not data:
        raise _bad(f"{where}.data: Field required")
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        raise _bad(f"{where}.data: invalid base64 data") from None


def _validate_system(system: Any) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _bad("system: Input should be a valid string or a list of text blocks")
    for j, block in enumerate(system):
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            raise _bad(f"system.{j}: system blocks must be text blocks with a string 'text'")
        _validate_cache_control(block, f"system.{j}")


def _validate_cache_control(block: dict[str, Any], where: str) -> None:
    """A block's `cache_control`, when it has one: {"type": "ephemeral"} and an optional ttl."""
    if "cache_control" not in block:
        return
    mark = block["cache_control"]
    if not isinstance(mark, dict) or mark.get("type") != "ephemeral":
        raise _bad(f"{where}.cache_control.type: Input should be 'ephemeral'")
    for name in sorted(set(mark) - {"type", "ttl"}):
        raise _bad(f"{where}.cache_control.{name}: Extra inputs are not permitted")
    if "ttl" in mark and mark["ttl"] not in ("5m", "1h"):
        raise _bad(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")


def _blocks_text(content: Any) -> str:
    """The plain text of a string or a list of content blocks (non-text blocks are skipped)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_blocks_text(block.get("content", "")))
    return "\n".join(p for p in parts if p)


def system_text(body: dict[str, Any]) -> str:
    """The system prompt as one string ("" when absent)."""
    return _blocks_text(body.get("system", ""))


def request_text(body: dict[str, Any]) -> str:
    """System prompt and all message text joined by newlines: what rules are matched against."""
    parts = [system_text(body)]
    parts += [_blocks_text(m.get("content", "")) for m in body.get("messages", [])]
    return "\n".join(p for p in parts if p)


def _cache_points(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Each prefix that ends with a block marked `cache_control`, in the order the provider
    reads a request (system, then the messages): (a digest of the model and the blocks up to
    there, their text)."""
    blocks: list[Any] = []
    for part in [body.get("system")] + [m.get("content") for m in body.get("messages") or []]:
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        elif isinstance(part, list):
            blocks += part
    points: list[tuple[str, str]] = []
    texts: list[str] = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            texts.append(block["text"])
        if "cache_control" in block:
            upto = [{k: v for k, v in b.items() if k != "cache_control"} for b in blocks[: i + 1]]
            key = json.dumps([body.get("model"), upto], sort_keys=True)
            digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
            points.append((digest, "\n".join(texts)))
    return points


# --------------------------------------------------------------------------------------------
# Default responder
# --------------------------------------------------------------------------------------------


def count_objects(sentence: str) -> int:
    """Count the items of "I have two apples, a plum and three chairs." (here: 6)."""
    sentence = sentence.strip().rstrip(".!")
    have = re.search(r"\bI\s+have\b(.*)$", sentence, re.IGNORECASE | re.DOTALL)
    if have:
        sentence = have.group(1)
    total = 0
    for item in re.split(r",|\band\b", sentence):
        words = item.split()
        if not words:
            continue
        first = words[0].lower()
        if first.isdigit():
            total += int(first)
        else:
            total += NUMBER_WORDS.get(first, 1)
    return total


def _counting_answer(body: dict[str, Any], text: str) -> str | None:
    """Answer an object-counting question, deliberately wrong on odd counts without CoT."""
    questions = list(_QUESTION_RE.finditer(text))
    if not questions:
        return None
    before = text[: questions[-1].start()].strip()
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n", before) if s.strip()]
    if not sentences:
        return None
    count = count_objects(sentences[-1])
    if count <= 0:
        return None
    if count % 2 == 1 and "step by step" not in system_text(body).lower():
        count += 1  # the "unoptimized" prompt makes a mistake the optimizer can fix
    return f"Answer: {count}"


def _improved_variable(text: str) -> str:
    """Propose an improved value: the last <VARIABLE> block plus a nudge towards CoT."""
    values = _VARIABLE_RE.findall(text)
    if not values:
        improved = GENERIC_IMPROVED
    else:
        current = values[-1].strip()
        suffix = RECHECK_SENTENCE if IMPROVE_SENTENCE.strip() in current else IMPROVE_SENTENCE
        improved = (current + suffix).strip()
    return f"<IMPROVED_VARIABLE>{improved}</IMPROVED_VARIABLE>"


def _feedback(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    hint = FEEDBACK_HINTS[int(digest[:8], 16) % len(FEEDBACK_HINTS)]
    return f"{FEEDBACK_PREFIX} {hint} (ref {digest[:8]})"


def default_reply(body: dict[str, Any], text: str) -> str:
    """Deterministic answer when no rule matches.

    Order: optimizer requests (``<IMPROVED_VARIABLE>``) get an improved variable; object
    counting questions get ``Answer: N`` unless the request is a critique (mentions "feedback",
    as a backward pass quoting the question does); everything else gets feedback-like text.
    """
    if "<IMPROVED_VARIABLE>" in text:
        return _improved_variable(text)
    if "feedback" not in text.lower():
        answer = _counting_answer(body, text)
        if answer is not None:
            return answer
    return _feedback(text)


def _tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4)


class _Raw:
    """A 200 reply whose body is sent as is (the malformed-reply faults)."""

    def __init__(self, content_type: str, data: bytes) -> None:
        self.content_type = content_type
        self.data = data


class _Stream:
    """A 200 reply sent as server-sent events: `message` cut into the Messages API's events;
    with `stall_after`, that many events are sent and the rest held until `release()`."""

    def __init__(self, message: dict[str, Any], stall_after: int | None = None) -> None:
        self.message = message
        self.stall_after = stall_after


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def stream_events(
    message: dict[str, Any], overrides: dict[str, Any] | None = None, chunk: int = 16
) -> list[dict[str, Any]]:
    """The events the Messages API streams for `message`: the input count comes first
    (message_start, whose output count is 1), the cumulative output count last (message_delta),
    as the real API sends them. `overrides` (the fake's `usage_fields`) go out as given in both."""
    overrides = overrides or {}
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1, **overrides}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        empty = {"type": "text", "text": ""}
        events.append({"type": "content_block_start", "index": index, "content_block": empty})
        if index == 0:
            events.append({"type": "ping"})
        text = block.get("text", "")
        for at in range(0, len(text), max(1, chunk)):
            delta = {"type": "text_delta", "text": text[at : at + chunk]}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    delta_usage = {"output_tokens": usage["output_tokens"], **overrides}
    events.append({"type": "message_delta", "delta": stop, "usage": delta_usage})
    events.append({"type": "message_stop"})
    return events


# --------------------------------------------------------------------------------------------
# Rate limits: the provider's token buckets (requests, input tokens, output tokens)
# --------------------------------------------------------------------------------------------


class _Bucket:
    """One documented limit as a token bucket: `limit` at most, refilled continuously at
    limit/window per second, full at the start."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.level, self.at = float(limit), time.monotonic()

    def left(self, now: float) -> float:
        self.level = min(
            self.limit, self.level + max(0.0, now - self.at) * self.limit / self.window
        )
        self.at = max(self.at, now)
        return self.level

    def wait(self, need: float, now: float) -> float:
        """Seconds until `need` fits (0: now); a need over the limit waits for a full bucket."""
        return max(0.0, min(need, self.limit) - self.left(now)) * self.window / self.limit


class RateLimits:
    """Per-window limits enforced as the provider documents them, for each model apart: a
    request is admitted when every bucket of its model holds what it needs now (one request,
    its input tokens, one output token), else refused with 429 `rate_limit_error` and
    `retry-after` (whole seconds, and `retry-after-ms`); its output tokens are charged once the
    reply is sent. `window` is 60 for per-minute limits; a test shortens it (the headers'
    reset times scale with it)."""

    NAMES = ("requests", "input-tokens", "output-tokens")

    def __init__(
        self,
        requests: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        window: float = 60.0,
    ) -> None:
        limits = dict(zip(self.NAMES, (requests, input_tokens, output_tokens), strict=True))
        self.limits = {n: v for n, v in limits.items() if v is not None}
        self.window = window
        self._models: dict[str, dict[str, _Bucket]] = {}
        self.used = dict.fromkeys(self.NAMES, 0)  # what admitted requests were charged
        self.refused = 0

    def buckets(self, model: str) -> dict[str, _Bucket]:
        if model not in self._models:
            self._models[model] = {n: _Bucket(v, self.window) for n, v in self.limits.items()}
        return self._models[model]

    def admit(self, model: str, input_tokens: int) -> _APIError | None:
        """Charge a request arriving now, or the 429 that refuses it."""
        now, buckets = time.monotonic(), self.buckets(model)
        needs = {"requests": 1, "input-tokens": input_tokens, "output-tokens": 1}
        wait, name = max(((b.wait(needs[n], now), n) for n, b in buckets.items()), default=(0, ""))
        if wait > 0:
            self.refused += 1
            per = "minute" if self.window == 60 else f"{self.window:g} s"
            message = (
                f"This request would exceed the rate limit for your organization of "
                f"{buckets[name].limit:,} {name.replace('-', ' ')} per {per} for {model} "
                "(enforced by the fake)"
            )
            after = {"retry-after": str(math.ceil(wait)), "retry-after-ms": f"{wait * 1000:.0f}"}
            return _APIError(429, message, {**after, **self.headers(model)})
        for n in ("requests", "input-tokens"):
            self.used[n] += needs[n]
            if n in buckets:
                buckets[n].level -= needs[n]
        return None

    def charge_output(self, model: str, tokens: int) -> None:
        self.used["output-tokens"] += tokens
        bucket = self.buckets(model).get("output-tokens")
        if bucket is not None:
            bucket.left(time.monotonic())
            bucket.level -= tokens

    def headers(self, model: str, *, style: str = "anthropic") -> dict[str, str]:
        """Anthropic's `anthropic-ratelimit-*` headers (limit, what is left, when the bucket is
        full again, RFC 3339 to the microsecond so that short windows can be read), or with
        style="openai" the `x-ratelimit-*` ones (input tokens as `tokens`; reset a duration)."""
        now, wall = time.monotonic(), time.time()
        out: dict[str, str] = {}
        for name, bucket in self.buckets(model).items():
            left = bucket.left(now)
            full_in = (bucket.limit - left) * self.window / bucket.limit
            values = [str(bucket.limit), str(max(0, math.floor(left)))]
            if style == "openai":
                kind = "requests" if name == "requests" else "tokens"
                values.append(f"{full_in * 1000:.0f}ms")
                pattern = f"x-ratelimit-{{}}-{kind}"
            else:
                stamp = datetime.fromtimestamp(wall + full_in, UTC)
                values.append(stamp.isoformat(timespec="microseconds").replace("+00:00", "Z"))
                pattern = f"anthropic-ratelimit-{name}-{{}}"
            for key, value in zip(("limit", "remaining", "reset"), values, strict=True):
                out[pattern.format(key)] = value
        return out


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    fake: FakeMessagesAPI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    server_version = "FakeMessagesAPI/1.0"
    timeout = 60  # idle keep-alive connections do not pin a thread forever
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid a 40 ms stall
    server: _Server

    def log_message(self, *args: Any) -> None:
        """Silence per-request logging: tests produce hundreds of requests."""

    def setup(self) -> None:
        super().setup()
        self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection)

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")

    def do_PUT(self) -> None:
        self.server.fake._handle(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.fake._handle(self, "DELETE")

    def do_PATCH(self) -> None:
        self.server.fake._handle(self, "PATCH")

    def read_body(self) -> bytes:
        """Read the whole body so the keep-alive stream stays in sync, whatever we answer."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str], raw: _Raw | None = None
    ) -> None:
        data = raw.data if raw is not None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", raw.content_type if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def send_events(self, events: Iterator[bytes], headers: dict[str, str]) -> None:
        """A 200 of server-sent events, each written (and flushed) as one HTTP chunk as soon as
        `events` yields it; the stream stays open while `events` blocks."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        for data in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeMessagesAPI:
    """An in-process HTTP server that imitates ``POST /v1/messages``.

    All knobs and records are safe to use from any thread while requests are in flight.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        self.host = host
        self.port = port  # the bound port once started
        self._requested_port = port
        self.latency = latency
        # Streamed replies: characters per text delta, and seconds between events (a stream
        # that is slow but alive).
        self.stream_chunk = 16
        self.event_delay = 0.0
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._rules: list[tuple[str | re.Pattern[str], Reply]] = []
        self._failures: deque[tuple[int, str | None]] = deque()
        self._faults: deque[str] = deque()
        self._held: list[threading.Event] = []
        self._held_total = 0
        self._held_changed = threading.Condition(self._lock)
        self._recorded = threading.Condition(self._lock)
        self.faults_injected = 0
        # Usage reported (and counted by count_tokens) is this many times the text's chars/4.
        self.usage_scale = 1.0
        # Fields of `usage` reported exactly as given, over the counted ones (a negative count,
        # float("nan"), which goes out as the bare JSON token NaN, a string).
        self.usage_fields: dict[str, Any] = {}
        self.count_tokens_enabled = True
        # Prompt caching: the fewest tokens a marked prefix needs, per model; how long an entry
        # lives after its last use; the entries (digest -> (readable from, last use)).
        self.cache_minimum: dict[str, int] = dict(CACHE_MINIMUM)
        self.cache_ttl = 300.0
        self._prompt_cache: dict[str, tuple[float, float]] = {}
        self._in_flight = 0
        self._max_concurrency = 0
        self._connections = 0
        self._open: set[socket.socket] = set()
        self.rate_limits: RateLimits | None = None  # set_limits(): the provider's rate limits
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind (port 0 lets the OS pick a free port) and serve on a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), _Handler)
        server.fake = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-anthropic-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop keep-alive connections so no handler thread lingers."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping out their latency
        self.release()
        server.shutdown()
        server.server_close()
        with self._lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Root URL for ``anthropic.Anthropic(base_url=...)`` or ``ANTHROPIC_BASE_URL``."""
        if self._server is None:
            raise RuntimeError("FakeMessagesAPI is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    # ---- knobs -------------------------------------------------------------------------------

    def add_rule(self, pattern: str | re.Pattern[str], reply: Reply) -> None:
        """Answer requests whose text contains ``pattern`` (substring or regex search).

        Newer rules win over older ones, so a test can override a broad rule locally.
        """
        with self._lock:
            self._rules.append((pattern, reply))

    def set_limits(
        self,
        requests: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        *,
        window: float = 60.0,
    ) -> RateLimits:
        """Enforce rate limits per `window` seconds (RateLimits), and announce them on every
        reply; no limit given turns them off."""
        limits = RateLimits(requests, input_tokens, output_tokens, window)
        with self._lock:
            self.rate_limits = limits if limits.limits else None
        return limits

    @property
    def rate_limited(self) -> int:
        """Requests refused with 429, by the limits or injected."""
        with self._lock:
            return sum(1 for r in self._records if r["status"] == 429)

    def fail_next(self, status: int, count: int = 1, *, message: str | None = None) -> None:
        """Make the next ``count`` valid-auth requests fail with ``status`` (429, 500, 529, ...).

        Failures carry ``retry-after-ms: 5`` so the SDK's own retries stay fast in tests.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._failures.extend([(status, message)] * count)

    def inject(self, fault: str, count: int = 1) -> None:
        """Make the next ``count`` Messages requests meet ``fault`` (one of FAULTS)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {FAULTS}")
        with self._lock:
            self._faults.extend([fault] * count)

    def wait_held(self, count: int = 1, timeout: float = 30.0) -> bool:
        """Block until ``count`` stalled requests have arrived in all (True), or give up."""
        with self._held_changed:
            return self._held_changed.wait_for(lambda: self._held_total >= count, timeout)

    def wait_requests(self, count: int, timeout: float = 30.0) -> bool:
        """Block until ``count`` requests have been answered in all (True), or give up."""
        with self._recorded:
            return self._recorded.wait_for(lambda: len(self._records) >= count, timeout)

    def release(self) -> None:
        """Let every request held so far go on (it then gets its normal reply)."""
        with self._lock:
            held, self._held = self._held, []
        for event in held:
            event.set()

    def reset(self) -> None:
        """Forget records, rules, pending failures and faults, latency, rate limits and the
        concurrency peak."""
        self.release()
        with self._lock:
            self._records.clear()
            self._rules.clear()
            self._failures.clear()
            self._faults.clear()
            self._held_total = 0
            self.usage_scale = 1.0
            self.usage_fields = {}
            self._prompt_cache.clear()
            self.count_tokens_enabled = True
            self._max_concurrency = self._in_flight
            self._connections = len(self._open)
            self.rate_limits = None
        self.latency = 0.0
        self.stream_chunk = 16
        self.event_delay = 0.0

    # ---- records -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of every request so far, in completion order.

        Each entry: ``{"body": parsed JSON or None, "headers": {lowercase: value},
        "status": int, "path": str}``.
        """
        with self._lock:
            return list(self._records)

    @property
    def calls(self) -> int:
        """Number of successful (200) Messages replies (token counts are not calls)."""
        with self._lock:
            return sum(
                1 for r in self._records if r["status"] == 200 and "count_tokens" not in r["path"]
            )

    @property
    def max_concurrency(self) -> int:
        """Peak number of requests handled at the same time (proves the client is concurrent)."""
        with self._lock:
            return self._max_concurrency

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        with self._lock:
            return self._in_flight

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (fewer than requests means keep-alive works)."""
        with self._lock:
            return self._connections

    # ---- request handling --------------------------------------------------------------------

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(sock)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _handle(self, handler: _Handler, method: str) -> None:
        try:
            raw = handler.read_body()
        except (ValueError, OSError):
            handler.close_connection = True
            self._respond(handler, None, _APIError(400, "malformed request body"))
            return
        headers = {name.lower(): value for name, value in handler.headers.items()}
        try:
            body: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
            parse_error = True
        else:
            parse_error = False

        with self._lock:
            self._in_flight += 1
            self._max_concurrency = max(self._max_concurrency, self._in_flight)
        try:
            refusal = self._admit(handler.path, body)  # the rate limits, as the request arrives
            if refusal is not None:
                self._respond(handler, body, refusal, headers)
                return
            if self.latency > 0:
                self._stopping.wait(self.latency)
            try:
                payload = self._process(method, handler.path, headers, body, parse_error)
            except _APIError as err:
                self._respond(handler, body, err, headers)
            else:
                if isinstance(payload, _Stream):
                    self._respond_stream(handler, body, payload, headers)
                else:
                    self._respond(handler, body, payload, headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _admit(self, path: str, body: Any) -> _APIError | None:
        """A Messages request charged to the rate limits, or the 429 that refuses it."""
        if path.split("?", 1)[0].rstrip("/") != "/v1/messages":
            return None
        try:
            model = str(body["model"])
            tokens = self._scaled(_tokens(len(request_text(body))))
        except (AttributeError, KeyError, TypeError):
            return None  # not a request the API would read: it is refused with a 400 later
        with self._lock:
            return self.rate_limits.admit(model, tokens) if self.rate_limits is not None else None

    def _limit_headers(self, body: Any) -> dict[str, str]:
        """The rate-limit headers every reply carries (none without limits)."""
        model = body.get("model") if isinstance(body, dict) else None
        with self._lock:
            if self.rate_limits is None or not isinstance(model, str):
                return {}
            return self.rate_limits.headers(model)

    def _charge_output(self, body: Any, message: Any) -> None:
        """A reply was sent: its output tokens count against the limits now."""
        usage = message.get("usage") if isinstance(message, dict) else None
        tokens = usage.get("output_tokens") if isinstance(usage, dict) else None
        with self._lock:
            if self.rate_limits is not None and type(tokens) is int:
                self.rate_limits.charge_output(str(body.get("model")), tokens)

    def _process(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        parse_error: bool,
    ) -> dict[str, Any] | _Raw | _Stream:
        route = path.split("?", 1)[0].rstrip("/")
        counting = route == "/v1/messages/count_tokens" and self.count_tokens_enabled
        if route != "/v1/messages" and not counting:
            raise _APIError(404, f"Not found: {method} {path}")
        if method != "POST":
            raise _APIError(405, f"Method {method} not allowed")
        bearer = headers.get("authorization", "")
        has_bearer = bearer.lower().startswith("bearer ") and bearer[7:].strip() != ""
        if not headers.get("x-api-key") and not has_bearer:
            raise _APIError(401, "x-api-key header is required")
        if not headers.get("anthropic-version"):
            raise _APIError(400, "anthropic-version: header is required")
        if counting:
            if parse_error or not isinstance(body, dict):
                raise _bad("There was an error parsing the body of your request as JSON")
            _validate_messages(body.get("messages"), present="messages" in body)
            return {"input_tokens": self._scaled(_tokens(len(request_text(body))))}
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            failure = None if fault else (self._failures.popleft() if self._failures else None)
            self.faults_injected += (fault or failure) is not None
        streamed = isinstance(body, dict) and body.get("stream") is True
        if fault == "stall" or (fault == "stall_stream" and not streamed):
            self._hold()
        elif fault is not None and fault != "stall_stream":
            reply = self._malformed(fault, body, streamed)
            return _Stream(reply) if streamed and isinstance(reply, dict) else reply
        if failure is not None:
            status, message = failure
            raise _APIError(
                status,
                message or ERROR_MESSAGES.get(status, f"Injected failure {status}"),
                {"retry-after-ms": "5", "retry-after": "0"},
            )
        if parse_error:
            raise _bad("There was an error parsing the body of your request as JSON")
        _validate(body)
        if streamed:
            stall_after = STREAM_STALL_AFTER if fault == "stall_stream" else None
            return _Stream(self._reply(body), stall_after)
        return self._reply(body)

    def _scaled(self, tokens: int) -> int:
        return max(1, round(tokens * self.usage_scale))

    def _hold(self) -> None:
        event = threading.Event()
        with self._held_changed:
            self._held.append(event)
            self._held_total += 1
            self._held_changed.notify_all()
        while not event.wait(0.1) and not self._stopping.is_set():
            pass

    def _malformed(self, fault: str, body: Any, streamed: bool = False) -> _Raw | dict[str, Any]:
        if fault == "html":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            return _Raw("text/html", page)
        if fault == "bad_json" and streamed:
            cut = (
                b'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_\n\n'
            )
            return _Raw("text/event-stream", cut)
        if fault == "bad_json":
            return _Raw("application/json", b'{"id": "msg_fake", "type": "message", "cont')
        reply = self._reply(body)
        reply["content"] = []
        return reply

    def _reply(self, body: dict[str, Any]) -> dict[str, Any]:
        text = request_text(body)
        with self._lock:
            rules = list(reversed(self._rules))
        reply: Reply = default_reply
        for pattern, candidate in rules:
            hit = pattern.search(text) if isinstance(pattern, re.Pattern) else pattern in text
            if hit:
                reply = candidate
                break
        if callable(reply):
            try:
                answer = reply(body, text)
            except Exception as exc:  # a broken rule should fail loudly, once, not be retried
                raise _APIError(
                    500, f"fake rule raised {exc!r}", {"x-should-retry": "false"}
                ) from exc
        else:
            answer = reply
        answer = str(answer)

        stop_reason, stop_sequence = "end_turn", None
        hits = [(answer.find(s), s) for s in body.get("stop_sequences") or [] if s in answer]
        if hits:
            at, stop_sequence = min(hits)
            answer, stop_reason = answer[:at], "stop_sequence"
        limit = body["max_tokens"] * 4
        if len(answer) > limit:
            answer, stop_reason, stop_sequence = answer[:limit], "max_tokens", None
        return {
            "id": f"msg_fake{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": answer}],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                **self._usage(body, text),
                "output_tokens": self._scaled(_tokens(len(answer))),
                **self.usage_fields,
            },
        }

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        """The input counts of a reply, prompt caching as the provider does it. Of the marked
        prefixes that reach the model's minimum, the longest one in the cache is read, the
        rest up to the longest is written (cache_creation), `input_tokens` is what remains.
        An entry is readable by requests that arrive after the reply that wrote it began
        (this reply begins now; it arrived `latency` seconds ago), and lives `cache_ttl`
        seconds after its last use."""
        total = self._scaled(_tokens(len(text)))
        minimum = self.cache_minimum.get(body["model"], DEFAULT_CACHE_MINIMUM)
        points = [(d, self._scaled(_tokens(len(t)))) for d, t in _cache_points(body)]
        points = [(d, n) for d, n in points if n >= minimum]
        read = longest = 0
        now = time.monotonic()
        arrived = now - self.latency
        with self._lock:
            entries = self._prompt_cache
            alive = {d: e for d, e in entries.items() if e[1] + self.cache_ttl >= arrived}
            read = max((n for d, n in points if d in alive and alive[d][0] <= arrived), default=0)
            for digest, n in points:
                longest = max(longest, n)
                entries[digest] = (alive[digest][0] if digest in alive else now, now)
        write = longest - read
        return {
            "input_tokens": max(0, total - read - write),
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write,
        }

    def _respond(
        self,
        handler: _Handler,
        body: Any,
        result: dict[str, Any] | _APIError | _Raw,
        headers: dict[str, str] | None = None,
    ) -> None:
        request_id = f"req_fake{uuid.uuid4().hex[:20]}"
        extra = {"request-id": request_id, **self._limit_headers(body)}
        if isinstance(result, _APIError):
            status = result.status
            extra.update(result.headers)
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": result.message},
                "request_id": request_id,
            }
        elif isinstance(result, _Raw):
            status, payload = 200, {}
        else:
            status, payload = 200, result
        with self._lock:
            self._records.append(
                {"body": body, "headers": headers or {}, "status": status, "path": handler.path}
            )
            self._recorded.notify_all()
        try:
            handler.send_json(status, payload, extra, result if isinstance(result, _Raw) else None)
        except OSError:
            handler.close_connection = True  # client went away (e.g. it timed out)
        if status == 200:
            self._charge_output(body, payload)

    def _respond_stream(
        self, handler: _Handler, body: Any, stream: _Stream, headers: dict[str, str]
    ) -> None:
        """Send a reply as events; a `stall_stream` fault stops sending halfway, holding the
        connection open, until `release()` (or `stop()`)."""
        request_id = f"req_fake{uuid.uuid4().hex[:20]}"
        with self._lock:
            overrides = dict(self.usage_fields)
            self._records.append(
                {"body": body, "headers": headers, "status": 200, "path": handler.path}
            )
            self._recorded.notify_all()
        events = stream_events(stream.message, overrides, self.stream_chunk)

        def chunks() -> Iterator[bytes]:
            for sent, event in enumerate(events):
                if sent == stream.stall_after:
                    self._hold()
                if sent and self.event_delay > 0 and self._stopping.wait(self.event_delay):
                    return  # stopping: end the stream where it is
                yield _sse(event)

        try:
            handler.send_events(chunks(), {"request-id": request_id, **self._limit_headers(body)})
        except OSError:
            handler.close_connection = True  # the client went away (e.g. its idle timeout)
        self._charge_output(body, stream.message)


@contextmanager
def serve(**kwargs: Any) -> Iterator[FakeMessagesAPI]:
    """``with serve() as fake:`` — a started fake that is stopped on exit."""
    fake = FakeMessagesAPI(**kwargs)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


if __name__ == "__main__":  # manual poking: python -m tests.fake_api
    with serve() as _fake:
        print(f"Fake Messages API on {_fake.base_url} (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
