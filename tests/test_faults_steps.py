"""All-or-nothing steps and deterministic prompts, through the real SDK against the fake API."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tests.test_core import QUESTIONS, batch_loss, make_model
from tg_magic import runtime
from tg_magic.variable import Gradient

HAIKU = "anthropic:claude-haiku-5-5"


def two_parameters() -> tuple[tg.Variable, tg.Variable, tg.TGD]:
    first = tg.Variable("Alpha instruction.", role_description="first instruction")
    second = tg.Variable("Beta instruction.", role_description="second instruction")
    for var in (first, second):
        var.gradients = [Gradient("Be more specific.", {"output": "an answer"})]
    return first, second, tg.TGD([first, second], engine=HAIKU)


def flush_engine_loop() -> None:
    """Let the engine's loop run everything it has scheduled (a late update would land here)."""
    runtime.run(runtime.asyncio.sleep(0))


def test_a_failure_cancels_the_other_update_and_nothing_changes_later(
    fake_api: FakeMessagesAPI,
) -> None:
    first, second, optimizer = two_parameters()
    first_in_flight, let_first_answer = threading.Event(), threading.Event()

    def slow_first(body: dict[str, Any], text: str) -> str:
        first_in_flight.set()
        let_first_answer.wait(30)
        return "<IMPROVED_VARIABLE>Alpha, improved.</IMPROVED_VARIABLE>"

    def broken_second(body: dict[str, Any], text: str) -> str:
        first_in_flight.wait(30)  # fails while the first update is under way
        raise RuntimeError("server bug")

    fake_api.add_rule("Alpha instruction.", slow_first)
    fake_api.add_rule("Beta instruction.", broken_second)
    with pytest.raises(tg.EngineError, match="server bug"):
        optimizer.step()
    let_first_answer.set()
    assert fake_api.wait_requests(2)  # the first update's reply came back, to nobody
    flush_engine_loop()
    assert first.value == "Alpha instruction." and second.value == "Beta instruction."
    assert first.past_values == [] and second.past_values == []


def test_an_unusable_update_applies_none_and_keeps_the_proposals_as_failures(
    fake_api: FakeMessagesAPI,
) -> None:
    first, second, optimizer = two_parameters()
    fake_api.add_rule("Alpha instruction.", "<IMPROVED_VARIABLE>Alpha, better.</IMPROVED_VARIABLE>")
    fake_api.add_rule("Beta instruction.", "I would rather not.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer.step()
    assert (first.value, second.value) == ("Alpha instruction.", "Beta instruction.")
    reasons = {f.variable.role_description: f for f in optimizer.failures}
    assert "Alpha, better." in reasons["first instruction"].reply
    assert reasons["first instruction"].reason.startswith("not applied")
    assert reasons["second instruction"].reply == "I would rather not."
    assert any("keeps its value" in str(w.message) for w in caught)


def test_a_step_that_succeeds_updates_every_parameter(fake_api: FakeMessagesAPI) -> None:
    first, second, optimizer = two_parameters()
    optimizer.step()
    assert "Think step by step" in first.value and "Think step by step" in second.value
    assert first.past_values == ["Alpha instruction."] and not optimizer.failures


def one_iteration(fake: FakeMessagesAPI, hold: str) -> str:
    """Forward, backward and step over a batch; the gradient request about `hold` answers last.
    Returns the optimizer's request, as sent."""
    everyone_else = threading.Event()

    def late(body: dict[str, Any], text: str) -> str:
        everyone_else.wait(30)  # set below, once every other backward request has answered
        from tests.fake_api import default_reply

        return default_reply(body, text)

    fake.add_rule(hold + "\n", late)  # only requests that quote the question (backward)
    model = make_model()
    loss = batch_loss(model, QUESTIONS)
    loss.value  # noqa: B018 - forward first, so only the backward is held
    start = len(fake.requests)
    releaser = threading.Thread(
        target=lambda: (fake.wait_requests(start + 7), everyone_else.set()), daemon=True
    )
    releaser.start()
    loss.backward()
    releaser.join()
    tg.TGD(model.parameters()).step()
    (update,) = [r for r in fake.requests if "<IMPROVED_VARIABLE>" in json.dumps(r["body"])]
    return json.dumps(update["body"], sort_keys=True)


def test_the_same_program_sends_byte_identical_requests_whatever_the_completion_order(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    first_question, last_question = QUESTIONS[0][0], QUESTIONS[-1][0]
    tg.set_cache(tmp_path / "run1.sqlite")
    run1 = one_iteration(fake_api, first_question)
    fake_api.reset()
    tg.set_cache(tmp_path / "run2.sqlite")
    run2 = one_iteration(fake_api, last_question)
    assert run1 == run2
    fake_api.reset()
    one_iteration_cached = make_model()
    loss = batch_loss(one_iteration_cached, QUESTIONS)
    loss.backward()
    tg.TGD(one_iteration_cached.parameters()).step()
    assert fake_api.calls == 0  # a re-run of a finished iteration is free
