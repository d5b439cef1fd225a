"""Tests of the fake Messages API, driven through the real SDK so the fake stays faithful."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.fake_api import FakeMessagesAPI, serve

MODEL = "claude-haiku-4-5"
KEY = "test-key-for-the-fake-server"


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMessagesAPI]:
    """Same fixture the lead puts in conftest.py, to prove it works as written."""
    with FakeMessagesAPI() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        yield fake


@pytest.fixture
def fake() -> Iterator[FakeMessagesAPI]:
    with serve() as server:
        yield server


def client(fake: FakeMessagesAPI, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=KEY, base_url=fake.base_url, max_retries=max_retries, timeout=5.0
    )


def ask(cl: anthropic.Anthropic, text: str, system: str | None = None, **kw: Any) -> Any:
    extra: dict[str, Any] = {} if system is None else {"system": system}
    return cl.messages.create(
        model=MODEL,
        max_tokens=kw.pop("max_tokens", 256),
        messages=[{"role": "user", "content": text}],
        **extra,
        **kw,
    )


def test_normal_message_returns_text_and_usage(fake: FakeMessagesAPI) -> None:
    msg = ask(client(fake), "Hello there, how are you today?", system="Be brief.")
    assert msg.type == "message" and msg.role == "assistant" and msg.model == MODEL
    assert msg.id.startswith("msg_")
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens == len("Be brief.\nHello there, how are you today?") // 4 + 1
    assert msg.usage.output_tokens >= 1
    assert msg.usage.cache_read_input_tokens == 0
    assert fake.calls == 1
    (record,) = fake.requests
    assert record["status"] == 200
    assert record["body"]["messages"][0]["content"] == "Hello there, how are you today?"
    assert record["headers"]["anthropic-version"]


def test_fixture_as_written_configures_sdk_from_env(fake_api: FakeMessagesAPI) -> None:
    fake_api.add_rule("ping", "pong")
    msg = anthropic.Anthropic(max_retries=0).messages.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "ping"}]
    )
    assert msg.content[0].text == "pong"
    assert fake_api.calls == 1


def test_temperature_is_rejected(fake: FakeMessagesAPI) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(client(fake, max_retries=2), "hi", extra_body={"temperature": 0.5})
    assert info.value.status_code == 400
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "temperature" in str(info.value)
    assert [r["status"] for r in fake.requests] == [400]  # 400 is not retried
    assert fake.calls == 0


@pytest.mark.parametrize(
    ("messages", "extra", "fragment"),
    [
        ([{"role": "user", "content": "x"}], {"top_p": 0.9}, "top_p"),
        ([], {}, "at least one message"),
        ([{"role": "assistant", "content": "x"}], {}, "first message"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            {},
            "alternate",
        ),
        ([{"role": "user", "content": ""}], {}, "non-empty"),
        ([{"role": "user", "content": [{"text": "no type"}]}], {}, "type"),
        ([{"role": "user", "content": "x"}], {"system": [{"type": "image"}]}, "system"),
        ([{"role": "user", "content": "x"}], {"system": 3}, "system"),
        ([{"role": "user", "content": "x"}], {"max_tokens": 0}, "max_tokens"),
        ([{"role": "user", "content": "x"}], {"max_tokens": "ten"}, "max_tokens"),
        ([{"role": "user", "content": "x"}], {"stream": "yes"}, "stream: Input should be"),
    ],
)
def test_invalid_requests_get_400(
    fake: FakeMessagesAPI, messages: list[Any], extra: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=re.escape(fragment)):
        client(fake).messages.create(
            model=MODEL, max_tokens=16, messages=messages, extra_body=extra
        )


def test_missing_model_and_max_tokens_get_400(fake: FakeMessagesAPI) -> None:
    http = client(fake)
    with pytest.raises(anthropic.BadRequestError, match="model: Field required"):
        http.post(
            "/v1/messages",
            body={"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            cast_to=object,
        )
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        http.post(
            "/v1/messages",
            body={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            cast_to=object,
        )


def test_missing_auth_gives_401_and_missing_version_400(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    with pytest.raises(anthropic.AuthenticationError) as info:
        ask(cl, "hi", extra_headers={"Authorization": anthropic.omit})
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
        ask(cl, "hi", extra_headers={"anthropic-version": anthropic.omit})
    assert [r["status"] for r in fake.requests] == [401, 400]


def test_injected_529_twice_then_success_is_retried(fake: FakeMessagesAPI) -> None:
    fake.fail_next(529, count=2)
    msg = ask(client(fake, max_retries=2), "hello")
    assert msg.content[0].text
    assert [r["status"] for r in fake.requests] == [529, 529, 200]
    assert fake.calls == 1


def test_429_beyond_max_retries_raises_rate_limit_error(fake: FakeMessagesAPI) -> None:
    fake.fail_next(429, count=3)
    with pytest.raises(anthropic.RateLimitError) as info:
        ask(client(fake, max_retries=2), "hello")
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert [r["status"] for r in fake.requests] == [429, 429, 429]
    fake.fail_next(500)
    with pytest.raises(anthropic.InternalServerError):
        ask(client(fake), "hello")


def test_object_counting_default_responder(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    even = "I have two apples, a plum and three chairs. How many objects do I have?"
    odd = "I have a chair, two ovens, an egg and a piano. How many objects do I have?"
    assert ask(cl, even).content[0].text == "Answer: 6"
    assert ask(cl, odd).content[0].text == "Answer: 6"  # correct is 5: off by one
    cot = "You count objects. Think step by step."
    assert ask(cl, odd, system=cot).content[0].text == "Answer: 5"
    assert ask(cl, even, system=cot).content[0].text == "Answer: 6"
    assert ask(cl, odd).content[0].text == "Answer: 6"  # deterministic


def test_improved_variable_and_feedback_defaults(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    prompt = (
        "Current: <VARIABLE>old</VARIABLE> then <VARIABLE>You are a counter.</VARIABLE>\n"
        "Reply between <IMPROVED_VARIABLE> and </IMPROVED_VARIABLE> tags."
    )
    text = ask(cl, prompt).content[0].text
    assert text == (
        "<IMPROVED_VARIABLE>You are a counter. Think step by step and answer with a number."
        "</IMPROVED_VARIABLE>"
    )
    again = prompt.replace(
        "You are a counter.", "You are a counter. Think step by step and answer with a number."
    )
    assert ask(cl, again).content[0].text.endswith("Double-check the count.</IMPROVED_VARIABLE>")
    feedback_a = ask(cl, "Critique this answer: 42").content[0].text
    feedback_b = ask(cl, "Critique this answer: 43").content[0].text
    assert feedback_a.startswith("The variable could be improved by being more specific")
    assert feedback_a != feedback_b
    assert feedback_a == ask(cl, "Critique this answer: 42").content[0].text


def test_rules_override_newest_first(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    question = "I have two apples. How many objects do I have?"
    fake.add_rule("apples", "old rule")
    fake.add_rule(re.compile(r"two \w+"), "regex rule")
    assert ask(cl, question).content[0].text == "regex rule"
    fake.add_rule("apples", lambda body, text: f"{body['model']}|{len(text)}")
    assert ask(cl, question).content[0].text == f"{MODEL}|{len(question)}"
    assert ask(cl, "unrelated").content[0].text.startswith("The variable could")
    fake.reset()
    assert ask(cl, question).content[0].text == "Answer: 2"
    assert len(fake.requests) == 1


def test_max_tokens_truncation_and_stop_sequences(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    fake.add_rule("long", "x" * 100)
    msg = ask(cl, "long please", max_tokens=5)
    assert msg.content[0].text == "x" * 20 and msg.stop_reason == "max_tokens"
    fake.add_rule("stop", "alpha END beta")
    msg = ask(cl, "stop please", stop_sequences=["END"])
    assert msg.content[0].text == "alpha " and msg.stop_reason == "stop_sequence"
    assert msg.stop_sequence == "END"


def test_concurrent_threads_overlap(fake: FakeMessagesAPI) -> None:
    fake.inject("stall", count=8)  # every request is held until all 8 are in at once
    cl = client(fake)
    errors: list[anthropic.APIError] = []

    def worker(i: int) -> None:
        try:
            ask(cl, f"request {i}")
        except anthropic.APIError as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    assert fake.wait_held(8)
    assert fake.in_flight == 8
    fake.release()
    for t in threads:
        t.join()
    assert not errors
    assert fake.calls == 8
    assert fake.max_concurrency == 8


def test_many_async_requests_at_once_and_keep_alive(fake: FakeMessagesAPI) -> None:
    fake.inject("stall", count=48)  # held until all 48 are in at once
    releaser = threading.Thread(target=lambda: fake.wait_held(48) and fake.release())
    releaser.start()

    async def burst() -> list[str]:
        async with anthropic.AsyncAnthropic(
            api_key=KEY, base_url=fake.base_url, max_retries=0
        ) as acl:
            replies = await asyncio.gather(
                *(
                    acl.messages.create(
                        model=MODEL,
                        max_tokens=64,
                        messages=[{"role": "user", "content": f"q{i}"}],
                    )
                    for i in range(48)
                )
            )
            connections = fake.connections
            for i in range(5):  # sequential calls reuse pooled connections
                await acl.messages.create(
                    model=MODEL, max_tokens=8, messages=[{"role": "user", "content": f"s{i}"}]
                )
            assert fake.connections == connections
            return [r.content[0].text for r in replies]

    texts = asyncio.run(burst())
    releaser.join()
    assert len(texts) == 48 and fake.calls == 53
    assert fake.max_concurrency == 48


def test_stop_is_prompt_and_restartable() -> None:
    fake = FakeMessagesAPI(latency=0.0)
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    fake.start()
    ask(client(fake), "hi")  # leaves a keep-alive connection open
    fake.stop()  # returns although a keep-alive connection was open
    fake.start()
    try:
        assert ask(client(fake), "hi again").content[0].text
    finally:
        fake.stop()


def test_count_tokens_matches_the_reported_usage_and_faults_are_served(
    fake: FakeMessagesAPI,
) -> None:
    cl = client(fake)
    fake.usage_scale = 4.0
    counted = cl.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi!"}])
    msg = ask(cl, "hi!")
    assert counted.input_tokens == msg.usage.input_tokens == 4
    fake.inject("html")
    assert isinstance(ask(cl, "x"), str)  # the SDK hands back the page as text
    fake.inject("empty")
    assert ask(cl, "x").content == []
    assert fake.faults_injected == 2
    fake.count_tokens_enabled = False
    with pytest.raises(anthropic.NotFoundError):
        cl.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])


# --------------------------------------------------------------------------------------------
# Streaming: the same replies as server-sent events, as the SDK reads them
# --------------------------------------------------------------------------------------------


def streamed(cl: anthropic.Anthropic, text: str, **kw: Any) -> Any:
    """The SDK's own accumulation of a streamed reply (messages.stream)."""
    with cl.messages.stream(
        model=MODEL,
        max_tokens=kw.pop("max_tokens", 256),
        messages=[{"role": "user", "content": text}],
        **kw,
    ) as stream:
        return stream.get_final_message()


def test_a_streamed_reply_is_the_plain_reply_in_events(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    fake.usage_scale = 3.0
    question = "I have two apples, a plum and three chairs. How many objects do I have?"
    plain = ask(cl, question, system="Be brief.")
    whole = streamed(cl, question, system="Be brief.")
    assert whole.content[0].text == plain.content[0].text == "Answer: 6"
    assert whole.stop_reason == plain.stop_reason == "end_turn"
    assert whole.usage.input_tokens == plain.usage.input_tokens
    assert whole.usage.output_tokens == plain.usage.output_tokens
    events = [
        e.type
        for e in cl.messages.create(
            model=MODEL,
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": "x" * 40}],
        )
    ]
    assert events[:2] == ["message_start", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events.count("content_block_delta") > 1  # the text comes in pieces
    assert [r["body"].get("stream") for r in fake.requests] == [None, True, True]
    assert fake.calls == 3


def test_rules_truncation_and_stop_sequences_apply_to_streams(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    fake.add_rule("long", "x" * 100)
    msg = streamed(cl, "long please", max_tokens=5)
    assert msg.content[0].text == "x" * 20 and msg.stop_reason == "max_tokens"
    fake.add_rule("stop", "alpha END beta")
    msg = streamed(cl, "stop please", stop_sequences=["END"])
    assert msg.content[0].text == "alpha " and msg.stop_sequence == "END"


def test_a_stream_that_stalls_sends_its_first_events_then_holds_the_rest(
    fake: FakeMessagesAPI,
) -> None:
    fake.inject("stall_stream")
    fake.add_rule("slowly", "one two three four five six seven eight nine ten")
    stream = client(fake).messages.create(
        model=MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": "slowly"}]
    )
    seen = [next(stream).type, next(stream).type, next(stream).type]  # the ping is skipped
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert fake.wait_held(1)  # and nothing more comes, the connection still open
    assert fake.in_flight == 1
    fake.release()
    rest = [e.type for e in stream]
    assert rest[-1] == "message_stop"
    assert fake.faults_injected == 1 and fake.calls == 1


def test_a_held_stream_times_out_at_the_clients_read_timeout(fake: FakeMessagesAPI) -> None:
    fake.inject("stall_stream")
    cl = anthropic.Anthropic(api_key=KEY, base_url=fake.base_url, max_retries=0, timeout=0.3)
    stream = cl.messages.create(
        model=MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    with pytest.raises(anthropic.APITimeoutError):
        for _ in stream:
            pass
    fake.release()


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("html", "no events"),
        ("bad_json", "JSONDecodeError"),
        ("empty", "message_start message_delta message_stop"),
        ("stall", "message_stop"),
    ],
)
def test_faults_are_served_to_streams(fake: FakeMessagesAPI, fault: str, outcome: str) -> None:
    fake.inject(fault)
    if fault == "stall":
        threading.Thread(target=lambda: fake.wait_held(1) and fake.release()).start()
    stream = client(fake).messages.create(
        model=MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    try:
        said = " ".join(e.type for e in stream) or "no events"
    except ValueError as exc:
        said = type(exc).__name__
    assert outcome in said
    assert fake.faults_injected == 1


def test_usage_fields_latency_and_slow_events_apply_to_streams(fake: FakeMessagesAPI) -> None:
    cl = client(fake)
    fake.usage_fields = {"output_tokens": -5}
    assert streamed(cl, "hi").usage.output_tokens == -5  # sent as given, at the end
    fake.usage_fields = {}
    fake.latency = 0.05
    fake.event_delay = 0.01
    fake.stream_chunk = 2
    assert streamed(cl, "I have a cat and a dog. How many objects do I have?").content[0].text
    counted = cl.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens == streamed(cl, "hi").usage.input_tokens
    fake.reset()
    assert (fake.latency, fake.event_delay, fake.stream_chunk) == (0.0, 0.0, 16)
