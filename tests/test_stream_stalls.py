"""Stalls end fast: replies are streamed, and one that sends nothing for the idle timeout is
asked again, through the real SDKs against loopback servers. No test asserts a duration: each
waits on the servers' events (a request held, a request answered)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import tg_magic as tg
from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tests.test_core import batch_loss, make_model
from tests.test_openai_engine import _Chat, serve_chat
from tg_magic.config import settings
from tg_magic.engines import METER

HAIKU = "anthropic:claude-haiku-5-5"
QUESTION = "I have two apples, a plum and three chairs. How many objects do I have?"


@pytest.fixture
def small_idle_timeout() -> Iterator[None]:
    settings.idle_timeout = 0.3
    yield
    settings.idle_timeout = None
    settings.request_timeout = None


def paid(fake: FakeMessagesAPI) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["path"] == "/v1/messages" and r["status"] == 200]


def test_a_stream_that_stalls_is_asked_again_after_the_idle_timeout(
    fake_api: FakeMessagesAPI, small_idle_timeout: None, tmp_path: Any
) -> None:
    engine = tg.get_engine(HAIKU)
    with tg.track_usage() as clean:
        expected = engine.generate(QUESTION)
    tg.set_cache(tmp_path / "second.sqlite")
    fake_api.reset()
    tg.set_budget(dollars=1.0)
    fake_api.inject("stall_stream")
    with tg.track_usage() as stalled:
        assert engine.generate(QUESTION) == expected == "Answer: 6"
    assert fake_api.wait_held(1, timeout=0)  # the first stream did stall, halfway
    assert len(paid(fake_api)) == 2 and all(r["body"]["stream"] for r in paid(fake_api))
    # Counted from the events: the whole reply, plus what the cut one had reported (its input,
    # and the one output token of its message_start).
    usage = stalled.usage
    assert usage.input_tokens == 2 * clean.usage.input_tokens
    assert usage.output_tokens == clean.usage.output_tokens + 1
    assert METER.spent.cost == pytest.approx(usage.cost) and METER._in_flight == []
    fake_api.release()
    fake_api.reset()
    assert engine.generate(QUESTION) == expected  # the retry's reply was cached, once
    assert fake_api.calls == 0
    tg.set_budget(None)


def test_a_request_that_stalls_before_its_reply_begins_is_retried_too(
    fake_api: FakeMessagesAPI, small_idle_timeout: None
) -> None:
    fake_api.inject("stall")
    assert tg.get_engine(HAIKU).generate(QUESTION) == "Answer: 6"
    assert fake_api.wait_held(1, timeout=0)
    fake_api.release()


def test_a_stream_that_keeps_stalling_fails_in_one_line_naming_the_setting(
    fake_api: FakeMessagesAPI, small_idle_timeout: None
) -> None:
    engine = tg.get_engine(HAIKU)
    engine.max_retries = 1
    fake_api.inject("stall_stream", count=2)
    with pytest.raises(tg.EngineError) as info:
        engine.generate("Is anyone there?")
    message = str(info.value)
    assert "nothing for 0.3 s, the idle timeout" in message and "in 2 attempts" in message
    assert "tg.configure(idle_timeout=SECONDS)" in message and "\n" not in message
    assert fake_api.wait_held(2, timeout=0)
    fake_api.release()


def test_the_request_timeout_still_bounds_a_slow_but_alive_stream(
    fake_api: FakeMessagesAPI, small_idle_timeout: None
) -> None:
    """Every event comes well within the idle timeout, but the whole reply would take longer
    than the request timeout: each attempt is cut there."""
    settings.idle_timeout = 30
    settings.request_timeout = 0.5
    fake_api.add_rule("slowly", "word " * 200)
    fake_api.stream_chunk = 1
    fake_api.event_delay = 0.02  # about 20 s for the whole reply
    engine = tg.get_engine(HAIKU)
    engine.max_retries = 1
    tg.set_budget(dollars=1.0)
    with tg.track_usage() as used, pytest.raises(tg.EngineError) as info:
        engine.generate("Answer slowly, please.")
    message = str(info.value)
    assert "no reply within the request timeout of 0.5 s, in 2 attempts" in message
    assert "tg.configure(request_timeout=SECONDS)" in message
    assert len(paid(fake_api)) == 2
    assert used.usage.input_tokens > 0  # the cut streams' input was billed and counted
    assert METER._in_flight == []  # and the budget released their claims
    tg.set_budget(None)


def counting_batch(n: int = 8) -> list[tuple[str, str]]:
    things = ["apple", "plum", "chair", "violin", "car", "oven", "flute", "lamp"]
    return [
        (f"I have {k + 1} {things[k]}s and a bed. How many objects do I have?", str(k + 2))
        for k in range(n)
    ]


@pytest.mark.parametrize("fault", ["stall_stream", "stall"])
def test_a_w8_iteration_with_one_stalled_request_finishes(
    fake_api: FakeMessagesAPI, small_idle_timeout: None, fault: str
) -> None:
    model = make_model()
    loss = batch_loss(model, counting_batch(8))
    loss.value  # noqa: B018 - the forward first
    fake_api.inject(fault)  # the first gradient request stalls
    loss.backward()
    optimizer = tg.TGD(model.parameters())
    optimizer.step()
    assert fake_api.wait_held(1, timeout=0)
    assert "Think step by step" in model.parameters()[0].value and not optimizer.failures
    fake_api.release()


def test_the_idle_timeout_is_a_setting_with_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings.idle_timeout is None
    assert tg.engines.Engine().idle_timeout() == 30.0
    monkeypatch.setenv("TG_MAGIC_IDLE_TIMEOUT", "12.5")
    assert settings.idle_timeout == 12.5 and tg.engines.Engine().idle_timeout() == 12.5
    with tg.context(idle_timeout=2):
        assert tg.engines.Engine().idle_timeout() == 2
    with pytest.raises(tg.InputError, match="idle_timeout must be a positive number"):
        tg.configure(idle_timeout=0)
    monkeypatch.setenv("TG_MAGIC_IDLE_TIMEOUT", "soon")
    with pytest.raises(tg.InputError, match="TG_MAGIC_IDLE_TIMEOUT"):
        settings.idle_timeout  # noqa: B018


# --------------------------------------------------------------------------------------------
# OpenAI-compatible servers (Ollama, vLLM, LM Studio) stream too
# --------------------------------------------------------------------------------------------


class StallingChat(_Chat):
    """Streams its first chunks, then (the first `stalls` times) sends nothing until released."""

    stalls: ClassVar[int] = 1
    held: ClassVar[threading.Semaphore] = threading.Semaphore(0)
    release: ClassVar[threading.Event] = threading.Event()

    def send_stream(self, body: dict[str, Any]) -> None:
        cls = type(self)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        chunks = self.chunks(body)
        stall = cls.stalls > 0
        cls.stalls -= 1
        try:
            for i, chunk in enumerate(chunks):
                if stall and i == 2:
                    cls.held.release()
                    cls.release.wait(30)
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            pass  # the client gave up on this stream


def test_an_openai_compatible_stream_that_stalls_is_asked_again(
    small_idle_timeout: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    StallingChat.stalls, StallingChat.release = 1, threading.Event()
    httpd = serve_chat(StallingChat)
    try:
        engine = tg.get_engine(f"openai:llama3.2@http://127.0.0.1:{httpd.server_address[1]}/v1")
        with tg.track_usage() as used:
            text = engine.generate("How many legs has a cat?")
        assert text == "echo: How many legs has a "
        assert StallingChat.held.acquire(timeout=0)  # the first stream stalled
        assert len(_Chat.received) == 2 and all(r["body"]["stream"] for r in _Chat.received)
        assert _Chat.received[0]["body"]["stream_options"] == {"include_usage": True}
        assert used.usage.input_tokens == 11 and used.usage.output_tokens == 3
    finally:
        StallingChat.release.set()
        httpd.shutdown()


def test_a_server_that_ignores_stream_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    class Plain(_Chat):
        def send_stream(self, body: dict[str, Any]) -> None:
            body.pop("stream")
            self.do_plain(body)

        def do_plain(self, body: dict[str, Any]) -> None:
            reply = {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "whole"}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = serve_chat(Plain)
    try:
        engine = tg.get_engine(f"openai:m@http://127.0.0.1:{httpd.server_address[1]}/v1")
        with tg.track_usage() as used:
            assert engine.generate("hello") == "whole"
        assert used.usage.input_tokens == 7 and used.usage.output_tokens == 1
    finally:
        httpd.shutdown()


def test_tgconfig_sets_and_shows_the_idle_timeout(cells: Cells) -> None:
    from tg_magic import config as tg_config

    assert "idle timeout:     30 s (the default)" in cells.run("%tgconfig")
    shown = cells.run("%tgconfig --idle-timeout 5")
    assert "idle timeout:     5 s" in shown
    assert tg_config.settings.idle_timeout == 5
