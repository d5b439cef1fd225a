"""Deadlines and unusable replies, through the real SDK against the fake Messages API."""

from __future__ import annotations

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tg_magic import runtime
from tg_magic.config import settings

HAIKU = "anthropic:claude-haiku-5-5"


@pytest.fixture
def timeout_setting() -> object:
    yield settings
    settings.request_timeout = None
    settings.run_deadline = None


def test_a_stalled_request_is_retried_and_the_reply_arrives(
    fake_api: FakeMessagesAPI, timeout_setting: object
) -> None:
    settings.request_timeout = 0.5
    fake_api.inject("stall")
    assert tg.get_engine(HAIKU).generate("What is 2+2?")
    assert fake_api.wait_held(1, timeout=0)  # the first attempt was held
    assert fake_api.calls >= 1


def test_a_request_that_always_stalls_fails_in_one_line_naming_the_setting(
    fake_api: FakeMessagesAPI, timeout_setting: object
) -> None:
    settings.request_timeout = 0.3
    engine = tg.get_engine(HAIKU)
    engine.max_retries = 1
    fake_api.inject("stall", count=2)
    with pytest.raises(tg.EngineError) as info:
        engine.generate("Is anyone there?")
    message = str(info.value)
    assert "request timeout of 0.3 s" in message and "in 2 attempts" in message
    assert "tg.configure(request_timeout=SECONDS)" in message and "\n" not in message
    assert fake_api.wait_held(2, timeout=0)
    fake_api.release()


def test_the_run_deadline_stops_a_run_with_one_line(
    fake_api: FakeMessagesAPI, timeout_setting: object
) -> None:
    settings.run_deadline = 0.5
    fake_api.inject("stall", count=10)
    with pytest.raises(tg.EngineError, match=r"run deadline of 0\.5 s .*run_deadline"):
        tg.get_engine(HAIKU).generate("This will hang.")
    fake_api.release()
    settings.run_deadline = None
    fake_api.reset()
    assert tg.get_engine(HAIKU).generate("The session still works.")


@pytest.mark.parametrize("fault", ["html", "bad_json", "empty"])
def test_an_unusable_reply_is_retried_like_a_transient_error(
    fake_api: FakeMessagesAPI, fault: str
) -> None:
    fake_api.inject(fault)
    reply = tg.get_engine(HAIKU).generate("What is the capital of France?")
    assert reply.strip()
    assert fake_api.faults_injected == 1
    assert len(fake_api.requests) == 2


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("html", "not a message: '<html>"),
        ("bad_json", "not valid JSON"),
        ("empty", "an empty reply (no text)"),
    ],
)
def test_a_reply_that_stays_unusable_fails_in_one_line_saying_what_came_back(
    fake_api: FakeMessagesAPI, fault: str, said: str
) -> None:
    engine = tg.get_engine(HAIKU)
    fake_api.inject(fault, count=engine.max_retries + 1)
    with pytest.raises(tg.EngineError) as info:
        engine.generate("Anything?")
    message = str(info.value)
    assert said in message and "attempts" in message and "\n" not in message
    assert "test-key" not in message  # never the key
    # an empty reply is never a value: nothing was cached, the next run asks again
    fake_api.reset()
    assert engine.generate("Anything?").strip()
    assert fake_api.calls == 1


def test_concurrent_runs_survive_scattered_faults(fake_api: FakeMessagesAPI) -> None:
    async def many() -> list[str]:
        import asyncio

        engine = tg.get_engine(HAIKU)
        return await asyncio.gather(*(engine.agenerate(f"question {i}") for i in range(20)))

    for fault in ("html", "empty", "bad_json"):
        fake_api.inject(fault)
    fake_api.fail_next(529)
    replies = runtime.run(many())
    assert all(r.strip() for r in replies) and len(replies) == 20
