"""A budget holds under concurrency, through the real SDK against the fake Messages API."""

from __future__ import annotations

import asyncio

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tg_magic import runtime
from tg_magic.engines import base

HAIKU = "anthropic:claude-haiku-5-5"
CALLS = 120


def prompts(tag: str) -> list[str]:
    return [
        f"{tag} question {i}: explain item {i} of the list in one paragraph." for i in range(CALLS)
    ]


async def run_all(spec: str, texts: list[str]) -> list[str | BaseException]:
    engine = tg.get_engine(spec)
    return await asyncio.gather(*(engine.agenerate(t) for t in texts), return_exceptions=True)


def cost_of_one_call(spec: str) -> float:
    """The most one call of this workload can cost: its input plus a full max_tokens reply."""
    model = spec.split(":", 1)[1]
    longest = max(len(t) for t in prompts("x")) + 20
    return tg.engines.usage.price(model, longest, 2048)


def test_a_budget_far_above_the_cost_never_stops_a_concurrent_run(
    fake_api: FakeMessagesAPI,
) -> None:
    base.set_concurrency(64)
    tg.set_budget(dollars=100.0)
    results = runtime.run(run_all(HAIKU, prompts("far")))
    assert all(isinstance(r, str) and r for r in results)
    assert fake_api.calls == CALLS


def test_twice_the_real_cost_finishes_at_64_concurrent_calls(
    fake_api: FakeMessagesAPI, tmp_path
) -> None:
    base.set_concurrency(64)
    with tg.track_usage() as measured:
        runtime.run(run_all(HAIKU, prompts("measure")))
    real = measured.usage.cost
    tg.set_cache(tmp_path / "second.sqlite")  # the same work again, paid again
    fake_api.reset()
    tg.set_budget(dollars=2 * real)
    results = runtime.run(run_all(HAIKU, prompts("measure")))
    assert [r for r in results if not isinstance(r, str)] == []
    assert fake_api.calls == CALLS
    assert fake_api.max_concurrency > 1  # the budget did not serialize the run


@pytest.mark.parametrize("count_tokens", [True, False])
def test_usage_four_times_the_estimate_is_never_exceeded_by_more_than_one_call(
    fake_api: FakeMessagesAPI, count_tokens: bool
) -> None:
    base.set_concurrency(64)
    fake_api.usage_scale = 4.0  # the API counts 4x what chars/4 suggests
    fake_api.count_tokens_enabled = count_tokens
    budget = 0.03
    tg.set_budget(dollars=budget)
    with tg.track_usage() as used:
        results = runtime.run(run_all(HAIKU, prompts("scaled")))
    stops = [r for r in results if isinstance(r, tg.BudgetExceeded)]
    assert stops, "the run should have reached the budget"
    assert all(isinstance(r, str | tg.BudgetExceeded) for r in results)
    assert used.usage.cost <= budget + cost_of_one_call(HAIKU)
    message = str(stops[0])
    assert "spent $" in message and "the next call would cost about $" in message
    assert "tg.set_budget" in message and "\n" not in message


@pytest.mark.parametrize("spec", [HAIKU, "anthropic:claude-sonnet-4-5"], ids=["priced", "unpriced"])
def test_token_budget_holds_under_concurrency(fake_api: FakeMessagesAPI, spec: str) -> None:
    base.set_concurrency(64)
    fake_api.usage_scale = 3.0
    tg.set_budget(tokens=8_000)
    with tg.track_usage() as used:
        results = runtime.run(run_all(spec, prompts("tokens")))
    assert any(isinstance(r, tg.BudgetExceeded) for r in results)
    assert used.usage.tokens <= 8_000 + 2048 + 200
    assert "tokens" in str(next(r for r in results if isinstance(r, tg.BudgetExceeded)))


def test_an_unpriced_model_under_a_dollar_budget_is_an_error_naming_set_price(
    fake_api: FakeMessagesAPI,
) -> None:
    tg.set_budget(dollars=0.000001)
    with pytest.raises(tg.EngineError, match=r"tg\.set_price\('claude-sonnet-4-5'"):
        tg.get_engine("anthropic:claude-sonnet-4-5").generate("hello")
    assert fake_api.calls == 0
    tg.set_budget(tokens=10_000)  # a token budget needs no price
    assert tg.get_engine("anthropic:claude-sonnet-4-5").generate("hello")
    tg.set_price("claude-sonnet-4-5", input=3.0, output=15.0)
    try:
        tg.set_budget(dollars=1.0)
        assert tg.get_engine("anthropic:claude-sonnet-4-5").generate("hello again")
    finally:
        del tg.engines.PRICES["claude-sonnet-4-5"]


def test_prompt_tokens_are_counted_by_the_api_before_sending(fake_api: FakeMessagesAPI) -> None:
    tg.set_budget(dollars=1.0)
    tg.get_engine(HAIKU).generate("count me first")
    paths = [r["path"] for r in fake_api.requests]
    assert paths == ["/v1/messages/count_tokens", "/v1/messages"]
    tg.set_budget(None)
    fake_api.reset()
    tg.get_engine(HAIKU).generate("no budget, no count")
    assert [r["path"] for r in fake_api.requests] == ["/v1/messages"]


@pytest.mark.parametrize(
    "usage",
    [{"input_tokens": float("nan")}, {"output_tokens": -(10**9)}, {"input_tokens": "twelve"}],
    ids=["nan", "negative", "string"],
)
def test_a_usage_that_is_not_a_count_fails_in_one_line_and_leaves_the_budget_whole(
    fake_api: FakeMessagesAPI, usage: dict[str, object]
) -> None:
    """A broken or hostile server's NaN or negative count would make the spend NaN or negative,
    and no call would ever be refused again."""
    tg.set_budget(dollars=0.02)
    fake_api.usage_fields = usage
    engine = tg.get_engine(HAIKU)
    with pytest.raises(tg.EngineError, match="usage") as refused:
        engine.generate("poisoned")
    assert "\n" not in str(refused.value)
    fake_api.usage_fields = {}
    results = runtime.run(run_all(HAIKU, prompts("after")))
    assert any(isinstance(r, tg.BudgetExceeded) for r in results)
    assert 0 <= tg.engines.usage.METER.spent.cost <= 0.02 + cost_of_one_call(HAIKU)


def test_a_reply_claiming_huge_usage_stops_the_run_and_is_shown_as_billed(
    fake_api: FakeMessagesAPI,
) -> None:
    """A server reporting 1000 times the tokens (more output than max_tokens): no call starts
    after it, and the spend shown is what it billed, not a clamped figure."""
    base.set_concurrency(64)
    fake_api.usage_scale = 1000.0
    fake_api.count_tokens_enabled = False
    tg.set_budget(dollars=0.03)
    with tg.track_usage() as used:
        results = runtime.run(run_all(HAIKU, prompts("huge")))
    stops = [str(r) for r in results if isinstance(r, tg.BudgetExceeded)]
    assert len(stops) + fake_api.calls == CALLS
    assert fake_api.calls * cost_of_one_call(HAIKU) <= 0.03 + cost_of_one_call(HAIKU)
    assert used.usage.cost > 10 * 0.03
    assert all(f"spent ${used.usage.cost:.4f} of $0.0300" in s and "\n" not in s for s in stops)


def test_retried_replies_racing_the_budget_at_64_calls_keep_it(fake_api: FakeMessagesAPI) -> None:
    """Billed empty replies (retried by us) and overload errors (retried by the SDK) mixed into
    64 concurrent calls: every retry is admitted by the budget like a first attempt."""
    base.set_concurrency(64)
    fake_api.inject("empty", 60)
    fake_api.fail_next(529, 60)
    tg.set_budget(dollars=0.03)
    with tg.track_usage() as used:
        results = runtime.run(run_all(HAIKU, prompts("retried")))
    assert any(isinstance(r, tg.BudgetExceeded) for r in results)
    assert all(isinstance(r, str | tg.TgMagicError) and "\n" not in str(r) for r in results)
    assert used.usage.cost <= 0.03 + cost_of_one_call(HAIKU)
