"""Backward runs alongside the forward pass (autograd/scheduler.py): an example's gradients are
asked for as soon as its own answer and loss exist, not when the slowest example's do, and the
gradients are the same as when everything runs in turn. Through the real SDK against the fake."""

from __future__ import annotations

import threading

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tests.test_core import batch_loss, make_model

SYSTEM = "You answer questions."  # make_model's prompt: the forward calls' system prompt
QUESTIONS = [(f"How many objects are {n} apples?", str(n)) for n in (2, 3, 4, 5)]


def forward_answers(fake: FakeMessagesAPI) -> int:
    return sum(
        1
        for r in fake.requests
        if r["status"] == 200 and isinstance(r["body"], dict) and r["body"].get("system") == SYSTEM
    )


def test_gradients_start_while_the_slowest_answer_is_still_coming(
    fake_api: FakeMessagesAPI,
) -> None:
    tg.configure(idle_timeout=300, request_timeout=300)  # the held call is never retried
    fake_api.inject("stall", 1)  # the first forward call is held until released
    model = make_model()
    loss = batch_loss(model, QUESTIONS)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loss.backward()
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        # Three answers and a gradient request answered, all while one answer is held.
        assert fake_api.wait_requests(4, timeout=120)
        assert forward_answers(fake_api) == 3  # the held one is not answered yet
    finally:
        fake_api.release()
        worker.join(timeout=120)
    assert not failure and not worker.is_alive()
    assert all(q.gradients for q in model.parameters())


def test_the_gradients_are_the_same_as_when_backward_waits_for_every_answer(
    fake_api: FakeMessagesAPI,
) -> None:
    def gradients(wait_first: bool) -> list[str]:
        model = make_model()
        loss = batch_loss(model, QUESTIONS)
        if wait_first:
            assert loss.value  # the whole forward pass first, as before
        loss.backward()
        return [g.text for p in model.parameters() for g in p.gradients]

    fake_api.latency = 0.01
    pipelined = gradients(wait_first=False)
    tg.set_cache(None)  # ask the model again, not the cache
    assert pipelined == gradients(wait_first=True) and pipelined
