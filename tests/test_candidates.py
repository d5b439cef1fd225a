"""k candidates per step (tg_magic.candidates through train.optimize), on the fake Messages API."""

from __future__ import annotations

import importlib.util
import re
import threading
from typing import Any

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tg_magic.candidates import Candidate, ParetoPool, gradient_subsets, python_prefix
from tg_magic.engines import base
from tg_magic.loss import TextLoss
from tg_magic.train import Objective, optimize

ENGINE = "anthropic:claude-haiku-5-5"
UPDATE = "between <IMPROVED_VARIABLE>"  # in every optimizer request (system prompt)


def proposal_from_request(body: dict[str, Any], text: str) -> str:
    """The fake optimizer's answer names what it was shown: 'v<feedbacks>.<past values>'."""
    shown = text.count("<FEEDBACK>"), text.count("<PAST_VALUE>")
    return f"<IMPROVED_VARIABLE>prompt v{shown[0]}.{shown[1]}</IMPROVED_VARIABLE>"


def judged(batch: list[str] | None, prompt: tg.Variable) -> tg.Variable:
    """One judge per training example: the prompt receives one gradient per example."""
    return tg.sum(
        [TextLoss(f"Judge the answer to {x}.", engine=ENGINE)(prompt) for x in batch or []]
    )


def setup_prompt(fake: FakeMessagesAPI) -> tg.Variable:
    fake.add_rule(UPDATE, proposal_from_request)
    tg.set_backward_engine(ENGINE)
    return tg.Variable("prompt v0", role_description="system prompt")


def test_each_candidate_is_recorded_with_its_scores_and_the_best_on_validation_is_kept(
    fake_api: FakeMessagesAPI,
) -> None:
    prompt = setup_prompt(fake_api)
    # The validation set prefers the proposal made from a single piece of feedback.
    wanted = "prompt v1.0"

    def validate_each(values: list[str]) -> list[float]:
        return [1.0, 1.0 if values[0] == wanted else 0.0, 0.5]

    objective: Objective[str] = Objective(
        lambda batch: judged(batch, prompt),
        train=["q1", "q2", "q3"],
        validate_each=validate_each,
    )
    (result,) = optimize([prompt], objective, steps=1, batch_size=3, candidates=4, engine=ENGINE)

    assert [c.values[0] for c in result.candidates] == [
        "prompt v3.0",  # all three gradients: plain TGD's proposal
        "prompt v2.0",  # a leave-one-out subset (the second one gives the same text: once)
        "prompt v1.0",  # a single gradient
        "prompt v3.3",  # a retry, shown the step's three proposals as past values
    ]
    scores = {c.values[0]: c.score for c in result.candidates}
    assert scores[wanted] == pytest.approx(2.5 / 3)
    assert scores["prompt v3.0"] == pytest.approx(1.5 / 3)
    assert [c.values[0] for c in result.candidates if c.chosen] == [wanted]
    assert prompt.value == wanted
    assert prompt.past_values == ["prompt v0"]
    assert result.kept and result.val_before == pytest.approx(1.5 / 3)
    assert result.val_after == pytest.approx(2.5 / 3)
    assert all(len(c.per_example) == 3 for c in result.candidates)


def test_when_every_candidate_is_worse_the_value_stays(fake_api: FakeMessagesAPI) -> None:
    prompt = setup_prompt(fake_api)
    objective: Objective[str] = Objective(
        lambda batch: judged(batch, prompt),
        train=["q1", "q2"],
        validate_each=lambda values: [1.0 if values[0] == "prompt v0" else 0.0],
    )
    (result,) = optimize([prompt], objective, steps=1, batch_size=2, candidates=3, engine=ENGINE)
    assert len(result.candidates) == 3
    assert not result.kept and not any(c.chosen for c in result.candidates)
    assert prompt.value == "prompt v0" and prompt.past_values == []


def test_candidates_are_scored_concurrently_within_the_concurrency_limit(
    fake_api: FakeMessagesAPI,
) -> None:
    prompt = setup_prompt(fake_api)
    fake_api.latency = 0.05
    base.set_concurrency(2)
    engine = tg.get_engine(ENGINE)
    k = 3
    # Every candidate's scoring waits here until all k are being scored at once: scoring one
    # after another would never get past it.
    together = threading.Barrier(k, timeout=60)
    passed: list[bool] = []

    def validate_each(values: list[str]) -> list[float]:
        if values[0] != "prompt v0":  # the incumbent is scored alone, before the step
            together.wait()
            passed.append(True)
        answers = [engine.generate(f"Example {i}: {values[0]}") for i in range(3)]
        return [float(len(a) % 2) for a in answers]

    objective: Objective[str] = Objective(
        lambda batch: judged(batch, prompt), train=["q1", "q2", "q3"], validate_each=validate_each
    )
    (result,) = optimize([prompt], objective, steps=1, batch_size=3, candidates=k, engine=ENGINE)
    assert len(result.candidates) == k and len(passed) == k
    assert fake_api.max_concurrency == 2


def test_without_validate_each_candidates_are_scored_one_by_one(
    fake_api: FakeMessagesAPI,
) -> None:
    prompt = setup_prompt(fake_api)
    seen: list[str] = []

    def validate() -> float:
        seen.append(prompt.value)
        return float(re.sub(r"\D", "", prompt.value.split(".")[0]) == "1")

    objective: Objective[str] = Objective(
        lambda batch: judged(batch, prompt), train=["a", "b", "c"], validate=validate
    )
    (result,) = optimize([prompt], objective, steps=1, batch_size=3, candidates=3, engine=ENGINE)
    assert seen[0] == "prompt v0" and sorted(seen[1:]) == sorted(
        c.values[0] for c in result.candidates
    )
    assert prompt.value == "prompt v1.0"


def test_gradient_subsets_start_with_all_and_never_repeat() -> None:
    import random

    subsets = gradient_subsets(3, 10, random.Random(0))
    assert subsets[0] == [0, 1, 2]
    assert sorted(map(len, subsets)) == [1, 1, 1, 2, 2, 2, 3]
    assert len({tuple(s) for s in subsets}) == len(subsets)
    assert gradient_subsets(1, 4, random.Random(0)) == [[0]]
    assert len(gradient_subsets(2, 9, random.Random(0))) == 3


def test_the_pool_keeps_what_is_best_on_some_example() -> None:
    pool = ParetoPool(size=3, seed=0)
    a = Candidate(["a"], "x", 0.5, [1.0, 0.0])
    b = Candidate(["b"], "x", 0.5, [0.0, 1.0])
    worse = Candidate(["c"], "x", 0.25, [0.5, 0.0])  # beaten by a on every example
    best = Candidate(["d"], "x", 0.75, [1.0, 0.5])
    pool.add([a, b, worse])
    assert [m.values[0] for m in pool.members] == ["a", "b"]
    pool.add([best])  # d dominates a; b is still best on the second example
    assert [m.values[0] for m in pool.members] == ["d", "b"]
    assert {pool.parent().values[0] for _ in range(50)} == {"d", "b"}


def test_candidates_must_be_positive(fake_api: FakeMessagesAPI) -> None:
    prompt = setup_prompt(fake_api)
    with pytest.raises(tg.InputError, match="--candidates must be at least 1"):
        next(optimize([prompt], Objective(lambda _: prompt), candidates=0))


def test_python_prefix_keeps_the_code_of_a_chatty_reply() -> None:
    reply = (
        "Here is the fix:\n```python\ndef last(xs):\n    return xs[-1]\n\nprint(last([1]))\n```\n"
        "This works because..."
    )
    assert python_prefix(reply) == "def last(xs):\n    return xs[-1]\n"
    unfenced = "def f(a, b):\n    return a + b\nf(1, 2)\nThat is all."
    assert python_prefix(unfenced) == "def f(a, b):\n    return a + b\n"
    assert python_prefix("no code at all") == "no code at all"


def test_python_prefix_keeps_only_the_definition_python_keeps_and_no_made_up_tests() -> None:
    # What SmolLM2 wrote for a buggy is_even and average (measured): the old version first,
    # a helper, the fix last; or the fix followed by the tests it was shown.
    reply = (
        "def is_even(n):\n    return n % 2 == 1\n\ndef is_odd(n):\n    return n % 2 == 1\n\n"
        "def is_even(n):\n    return n % 2 == 0\n\nassert is_even(2)\n"
        "def test_two():\n    assert is_even(2)\n"
    )
    assert python_prefix(reply) == (
        "def is_odd(n):\n    return n % 2 == 1\n\ndef is_even(n):\n    return n % 2 == 0\n"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="the local extra is not installed"
)
def test_the_local_model_samples_reproducibly_at_other_temperatures() -> None:
    greedy = tg.get_engine("local")
    hot = greedy.with_temperature(1.0, seed=7)  # type: ignore[attr-defined]
    assert hot is greedy.with_temperature(1.0, seed=7)  # type: ignore[attr-defined]
    assert greedy.with_temperature(0) is greedy  # type: ignore[attr-defined]
    assert hot.spec == "local@temperature=1,seed=7" and hot.model == greedy.model
    tg.set_cache(None)
    prompt = "Name a colour."
    first = hot.generate(prompt, max_tokens=12)
    assert hot.generate(prompt, max_tokens=12) == first  # the fixed seed
