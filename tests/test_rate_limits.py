"""Requests paced by the provider's rate limits, through the real SDKs against loopback fakes
that enforce them as the providers document (token buckets, 429 with retry-after, the limits in
every reply's headers), with short windows so that a limit binds within about a second."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

import tg_magic as tg
from tests.cells import Cells
from tests.conftest import FAKE_KEY
from tests.fake_api import FakeMessagesAPI, RateLimits
from tests.test_core import batch_loss, make_model
from tests.test_openai_engine import _Chat, serve_chat
from tg_magic import runtime
from tg_magic.engines import pacing
from tg_magic.engines.anthropic import AnthropicEngine

HAIKU = "anthropic:claude-haiku-5-5"
THINGS = ("apple", "plum", "chair", "violin", "car", "oven", "flute", "lamp")


def questions(n: int) -> list[tuple[str, str]]:
    """n counting questions, all different."""
    return [
        (f"I have {i % 7 + 2} {THINGS[i % 8]}s and {i} beds. How many objects do I have?", "0")
        for i in range(n)
    ]


def other_client(fake: FakeMessagesAPI) -> anthropic.Anthropic:
    """Another program on the same account (it uses the same limits)."""
    return anthropic.Anthropic(api_key=FAKE_KEY, base_url=fake.base_url, max_retries=0)


def ask(client: anthropic.Anthropic, text: str) -> None:
    messages = [{"role": "user", "content": text}]
    client.messages.create(model="claude-haiku-5-5", max_tokens=64, messages=messages)  # type: ignore[arg-type]


def statuses(fake: FakeMessagesAPI) -> list[int]:
    return [r["status"] for r in fake.requests if "count_tokens" not in r["path"]]


def test_a_batch_of_64_under_an_input_token_limit_is_all_answered_with_few_429s(
    fake_api: FakeMessagesAPI,
) -> None:
    limits = fake_api.set_limits(input_tokens=12_000, window=1.0)
    model = make_model()
    loss = batch_loss(model, questions(64))
    loss.backward()
    tg.TGD(model.parameters()).step()
    assert limits.used["input-tokens"] > 12_000  # more than the allowance: the limit bound
    sent = statuses(fake_api)
    assert sent.count(200) == fake_api.calls and fake_api.calls >= 64 * 2
    assert fake_api.rate_limited < 0.05 * len(sent), f"{fake_api.rate_limited} of {len(sent)}"


def test_a_burst_from_two_engines_and_two_event_loops_never_exceeds_the_announced_limit(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.set_limits(requests=6, window=1.0)
    engine = tg.get_engine(HAIKU)
    engine.generate("warm up: the limits are announced")  # 6 a second, 5 left
    other = AnthropicEngine("claude-haiku-5-5")  # another engine object on the same account

    async def burst(on: tg.Engine, tag: str) -> list[str]:
        return await asyncio.gather(*(on.agenerate(f"{tag} question {i}") for i in range(8)))

    replies: list[str] = []
    thread = threading.Thread(target=lambda: replies.extend(asyncio.run(burst(other, "b"))))
    thread.start()
    replies += runtime.run(burst(engine, "a"))
    thread.join()
    assert len(replies) == 16 and all(replies)
    assert fake_api.rate_limited == 0  # every request went when the bucket held it
    assert fake_api.calls == 17


def test_a_429_waits_as_told_and_uses_none_of_the_retries_for_transient_faults(
    fake_api: FakeMessagesAPI,
) -> None:
    engine = tg.get_engine(HAIKU)
    engine.max_retries = 2  # the SDK's retries of transient faults, too
    fake_api.fail_next(429, 5)  # each asks to wait 5 ms
    assert engine.generate("hello")
    fake_api.fail_next(429, 3)
    fake_api.fail_next(529, 2)  # then two overloads: the SDK retries them, twice
    assert engine.generate("hello again")
    assert statuses(fake_api) == [429] * 5 + [200] + [429] * 3 + [529] * 2 + [200]
    shown = "\n".join(pacing.paces()[-1].lines())
    assert "8 refused (429)" in shown
    cap = re.search(r"concurrency cap (\d+) \(ceiling 16\)", shown)
    assert cap and int(cap[1]) < 16  # each refusal halved it


def test_a_429_storm_past_the_request_timeout_ends_in_one_line(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.set_limits(requests=1, window=3600.0)
    ask(other_client(fake_api), "another program uses the hour's only request")
    tg.configure(request_timeout=5)
    with pytest.raises(tg.EngineError) as info:
        tg.get_engine(HAIKU).generate("hello")
    line = str(info.value)
    assert "rate limit refused this request (429" in line and "request timeout of 5 s" in line
    assert "requests 1 per" in line and "request_timeout" in line
    assert "\n" not in line and FAKE_KEY not in line
    assert fake_api.rate_limited == 1  # refused once, then not sent again for nothing


def test_a_429_storm_past_the_run_deadline_ends_in_one_line(fake_api: FakeMessagesAPI) -> None:
    fake_api.set_limits(requests=1, window=30.0)
    ask(other_client(fake_api), "another program uses the only request")
    tg.configure(run_deadline=0.5)
    with pytest.raises(tg.EngineError) as info:
        tg.get_engine(HAIKU).generate("hello")
    line = str(info.value)
    assert "run deadline of 0.5 s" in line and "waiting for the provider's rate limit" in line
    assert "claude-haiku-5-5: " in line and "\n" not in line and FAKE_KEY not in line


def test_concurrency_grows_past_the_setting_while_headers_have_room_never_past_the_ceiling(
    fake_api: FakeMessagesAPI,
) -> None:
    tg.configure(concurrency=2, max_concurrency=6)
    fake_api.set_limits(requests=10_000)  # announced on every reply: plenty of room
    fake_api.latency = 0.05
    engine = tg.get_engine(HAIKU)

    async def many() -> list[str]:
        return await asyncio.gather(*(engine.agenerate(f"question {i}") for i in range(40)))

    assert all(runtime.run(many()))
    assert 2 < fake_api.max_concurrency <= 6


def test_a_budget_stays_exact_while_the_concurrency_grows(fake_api: FakeMessagesAPI) -> None:
    tg.configure(concurrency=2, max_concurrency=64)
    fake_api.usage_scale = 4.0  # the API counts 4x what the engine expects
    tg.set_budget(tokens=15_000)  # the worst case of about 7 calls in flight
    fake_api.latency = 0.05  # calls overlap
    engine = tg.get_engine(HAIKU)

    async def many() -> list[str | BaseException]:
        calls = (engine.agenerate(f"question {i}: explain item {i}.") for i in range(120))
        return await asyncio.gather(*calls, return_exceptions=True)

    with tg.track_usage() as used:
        results = runtime.run(many())
    assert any(isinstance(r, tg.BudgetExceeded) for r in results)
    assert used.usage.tokens <= 15_000 + 2048 + 200  # over by at most one call's worst
    assert fake_api.max_concurrency > 2  # the pace grew past its start


def test_identical_requests_in_flight_are_sent_once_and_share_the_reply(
    fake_api: FakeMessagesAPI,
) -> None:
    engine = tg.get_engine(HAIKU)
    fake_api.inject("stall")  # the first request is held until released

    async def same() -> list[str]:
        return await asyncio.gather(*(engine.agenerate("the same question") for _ in range(8)))

    replies: list[str] = []
    with tg.track_usage() as used:
        thread = threading.Thread(target=lambda: replies.extend(runtime.run(same())))
        thread.start()
        assert fake_api.wait_held(1)
        assert fake_api.in_flight == 1
        fake_api.release()
        thread.join()
    assert len(set(replies)) == 1 and len(replies) == 8
    assert fake_api.calls == 1
    assert used.usage.calls == 8 and used.usage.cached_calls == 7


class _LimitedChat(_Chat):
    """The OpenAI-compatible server with a requests limit, stated in `x-ratelimit-*` headers."""

    limits = RateLimits(requests=4, window=0.5)
    lock = threading.Lock()

    def do_POST(self) -> None:
        with self.lock:
            refusal = self.limits.admit("llama3.2", 1)
        if refusal is None:
            super().do_POST()
            return
        self.rfile.read(int(self.headers["content-length"]))
        data = json.dumps({"error": {"message": refusal.message, "type": "requests"}}).encode()
        self.send_response(429)
        for name, value in refusal.headers.items():
            if name.startswith("retry-after"):
                self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def end_headers(self) -> None:
        with self.lock:
            headers = self.limits.headers("llama3.2", style="openai")
        for name, value in headers.items():
            self.send_header(name, value)
        super().end_headers()


@pytest.fixture
def limited_chat() -> Iterator[str]:
    _LimitedChat.limits = RateLimits(requests=4, window=0.5)
    httpd = serve_chat(_LimitedChat)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_openai_style_rate_limit_headers_pace_the_requests(limited_chat: str) -> None:
    engine = tg.get_engine(f"openai:llama3.2@{limited_chat}")
    engine.generate("warm up: the limits are announced")

    async def burst() -> list[str]:
        return await asyncio.gather(*(engine.agenerate(f"question {i}") for i in range(10)))

    assert all(runtime.run(burst()))
    assert _LimitedChat.limits.refused == 0
    assert "requests 4 per" in "\n".join(pacing.paces()[-1].lines())


def test_tgconfig_shows_the_ceiling_and_the_limits_last_seen(
    cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TG_MAGIC_MAX_CONCURRENCY", "48")
    tg.config.reset()  # conftest's set_concurrency(16) set the ceiling too
    assert tg.settings.max_concurrency == 48
    fake_api.set_limits(requests=50, input_tokens=30_000)
    tg.get_engine(HAIKU).generate("hello")
    shown = cells.run("%tgconfig --max-concurrency 32").splitlines()
    assert "max concurrency:  32" in shown and tg.settings.max_concurrency == 32
    assert any(line.startswith("rate limits:      anthropic at http://127.0.0.1") for line in shown)
    limits = [line for line in shown if "claude-haiku-5-5:" in line]
    assert limits and "requests 50 per minute (49 left)" in limits[0]
    assert "input tokens 30,000 per minute" in limits[0]
    with pytest.raises(tg.InputError, match="max_concurrency must be at least 1"):
        tg.configure(max_concurrency=0)


def test_the_progress_widget_says_while_calls_wait_for_the_rate_limit(
    fake_api: FakeMessagesAPI,
) -> None:
    from tg_magic.notebook.progress import ProgressView

    fake_api.set_limits(requests=1, window=30.0)
    engine = tg.get_engine(HAIKU)
    engine.generate("the only request of the window")
    view = ProgressView(1, can_stop=False)
    shown: list[str] = []

    def record(note: str) -> None:  # called after the view's own watcher
        shown.append(view.waiting.value)

    pacing.watch(record)
    tg.configure(run_deadline=0.5)
    try:
        with pytest.raises(tg.EngineError, match="run deadline"):
            engine.generate("a second request: it waits for the window")
    finally:
        pacing.unwatch(record)
    assert "waiting for the provider&#x27;s rate limit" in shown[0]
    assert "requests, 1 per" in shown[0]
    assert shown[-1] == "" and view.waiting.value == ""
    view.finish("done")


def test_the_fake_enforces_and_announces_its_limits_as_documented(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.set_limits(requests=2, output_tokens=1000)
    raw = other_client(fake_api).messages.with_raw_response
    body = {"model": "claude-haiku-5-5", "max_tokens": 64}
    first = raw.create(messages=[{"role": "user", "content": "one"}], **body)  # type: ignore[call-overload]
    output = first.parse().usage.output_tokens
    second = raw.create(messages=[{"role": "user", "content": "two"}], **body)  # type: ignore[call-overload]
    assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert second.headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = second.headers["anthropic-ratelimit-requests-reset"]
    assert reset.endswith("Z") and "T" in reset  # RFC 3339
    # output tokens are charged once a reply is sent: the next reply's headers show them
    assert int(second.headers["anthropic-ratelimit-output-tokens-remaining"]) == 1000 - output
    with pytest.raises(anthropic.RateLimitError) as refused:
        ask(other_client(fake_api), "three")
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    headers = refused.value.response.headers
    assert int(headers["retry-after"]) >= 1 and float(headers["retry-after-ms"]) > 0
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert fake_api.rate_limited == 1 and fake_api.rate_limits is not None
    assert fake_api.rate_limits.used["requests"] == 2


def _headers(**values: Any) -> dict[str, str]:
    return {k.replace("_", "-"): str(v) for k, v in values.items()}


def test_the_limits_are_read_from_either_providers_headers() -> None:
    from tg_magic.engines.limits import announced, retry_after

    told = announced(
        _headers(
            anthropic_ratelimit_input_tokens_limit=30000,
            anthropic_ratelimit_input_tokens_remaining=12000,
            anthropic_ratelimit_input_tokens_reset="2099-01-01T00:00:00Z",
            x_ratelimit_limit_requests=500,
            x_ratelimit_remaining_requests=499,
            x_ratelimit_reset_requests="1m30s",
            x_ratelimit_limit_tokens="not a number",
        )
    )
    assert set(told) == {"input tokens", "requests"}
    assert told["input tokens"].limit == 30000 and told["input tokens"].remaining == 12000
    assert told["requests"].full_in == 90.0
    assert retry_after(_headers(retry_after_ms=250, retry_after=1)) == 0.25
    assert retry_after(_headers(retry_after=3)) == 3.0
    assert retry_after({}) is None
