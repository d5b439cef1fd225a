"""The library through the real anthropic SDK against the loopback Messages API."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import tg_magic as tg
from tests.conftest import FAKE_KEY
from tests.fake_api import FakeMessagesAPI
from tg_magic.engines.base import Engine, Reply, Request, counted

HAIKU = "anthropic:claude-haiku-5-5"

QUESTIONS = [
    ("I have two apples, a plum and three chairs. How many objects do I have?", "6"),
    ("I have a car, a bed and an oven. How many objects do I have?", "3"),
    ("I have four violins and a flute. How many objects do I have?", "5"),
    ("I have a cat and a dog. How many objects do I have?", "2"),
]


def exact_match(prediction: tg.Variable, ground_truth_answer: tg.Variable) -> str:
    answer = re.findall(r"\d+", prediction.value)
    return "1" if answer and answer[-1] == ground_truth_answer.value else "0"


def batch_loss(model: tg.BlackboxLLM, items: list[tuple[str, str]]) -> tg.Variable:
    metric = tg.StringBasedFunction(exact_match, "1 if the prediction equals the answer, else 0")
    losses = []
    for question, answer in items:
        q = tg.Variable(question, role_description="question", requires_grad=False)
        a = tg.Variable(answer, role_description="correct answer", requires_grad=False)
        prediction = model(q, response_role_description="answer to the question")
        losses.append(metric({"prediction": prediction, "ground_truth_answer": a}))
    return tg.sum(losses)


def make_model(engine: str = HAIKU) -> tg.BlackboxLLM:
    prompt = tg.Variable(
        "You answer questions.", role_description="system prompt", requires_grad=True
    )
    return tg.BlackboxLLM(engine, prompt)


def test_the_papers_example_runs_as_written(fake_api: FakeMessagesAPI) -> None:
    engine = tg.get_engine("anthropic:claude-haiku-5-5")
    tg.set_backward_engine(engine)
    x = tg.Variable("<an article>", role_description="article to summarize", requires_grad=False)
    model = tg.BlackboxLLM(
        engine,
        tg.Variable("You are a summarizer.", requires_grad=True, role_description="system prompt"),
    )
    loss = tg.TextLoss("Rate the summary.")(model(x))
    loss.backward()
    tg.TGD(model.parameters()).step()
    assert model.parameters()[0].value.startswith("You are a summarizer. Think step by step")
    assert model.parameters()[0].past_values == ["You are a summarizer."]


def test_batch_iteration_concurrent_and_every_gradient_reaches_the_optimizer(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.latency = 0.15
    model = make_model()
    loss = batch_loss(model, QUESTIONS)
    loss.backward()
    prompt = model.parameters()[0]
    # One gradient per question: each prediction's feedback was chained into the prompt.
    assert len(prompt.gradients) == len(QUESTIONS)
    assert all(g.context["output_role"] == "answer to the question" for g in prompt.gradients)
    optimizer = tg.TGD(model.parameters())
    optimizer.step()
    step_request = fake_api.requests[-1]["body"]["messages"][0]["content"]
    for gradient in prompt.gradients:
        assert gradient.text in step_request
    assert "Think step by step" in prompt.value
    # 4 forward calls, 4 metric explanations, 4 chained gradients, 1 step; levels ran at once.
    assert fake_api.calls == 13
    assert fake_api.max_concurrency >= len(QUESTIONS)


def test_requests_have_the_shape_the_api_requires(fake_api: FakeMessagesAPI) -> None:
    model = make_model()
    batch_loss(model, QUESTIONS[:2]).backward()
    assert fake_api.requests
    for record in fake_api.requests:
        body, headers = record["body"], record["headers"]
        assert record["status"] == 200
        assert set(body) <= {"model", "max_tokens", "messages", "system", "stream"}
        assert body["stream"] is True  # streamed: a stall ends after the idle timeout
        assert body["model"] == "claude-haiku-5-5"
        assert body["messages"][0]["role"] == "user" and len(body["messages"]) == 1
        # The SDK 2.x sends the key as a bearer token (older versions used x-api-key).
        assert FAKE_KEY in (headers.get("x-api-key", ""), headers.get("authorization", "")[7:])
        assert "anthropic-version" in headers


def test_forward_and_backward_engines_can_differ(fake_api: FakeMessagesAPI) -> None:
    tg.set_backward_engine("anthropic:claude-sonnet-5-5")
    model = make_model(HAIKU)
    batch_loss(model, QUESTIONS[:2]).backward()
    models = [r["body"]["model"] for r in fake_api.requests]
    assert models[:2] == ["claude-haiku-5-5"] * 2
    assert models[2:] == ["claude-sonnet-5-5"] * 4


def test_gradients_from_several_successors_all_arrive(fake_api: FakeMessagesAPI) -> None:
    """One variable feeding three losses gets three gradients, and the step sees all three."""
    draft = tg.Variable("The sky is green.", role_description="answer", requires_grad=True)
    losses = [tg.TextLoss(f"Check criterion {i}.", engine=HAIKU)(draft) for i in range(3)]
    tg.sum(losses).backward(engine=HAIKU)
    assert len(draft.gradients) == 3
    assert len({g.text for g in draft.gradients}) == 3
    tg.TGD([draft], engine=HAIKU).step()
    step_prompt = fake_api.requests[-1]["body"]["messages"][0]["content"]
    assert step_prompt.count("<FEEDBACK>") == 3


def test_rerunning_the_same_graph_makes_no_calls(fake_api: FakeMessagesAPI) -> None:
    batch_loss(make_model(), QUESTIONS).backward()
    first = fake_api.calls
    with tg.track_usage() as run:
        batch_loss(make_model(), QUESTIONS).backward()
    assert fake_api.calls == first
    assert run.usage.calls == run.usage.cached_calls == 12
    assert run.usage.cost == 0


def test_cache_is_safe_under_concurrent_writes(fake_api: FakeMessagesAPI, tmp_path: Path) -> None:
    fake_api.latency = 0.05
    engine = tg.get_engine(HAIKU)

    async def many() -> list[str]:
        return await asyncio.gather(*(engine.agenerate(f"question {i % 10}") for i in range(40)))

    replies = asyncio.run(many())
    assert len(replies) == 40
    assert len(tg.engines.get_cache() or []) == 10
    # Nothing secret in the cache file.
    assert FAKE_KEY.encode() not in (tmp_path / "cache.sqlite").read_bytes()


def test_usage_and_cost_are_counted_per_scope(fake_api: FakeMessagesAPI) -> None:
    before = tg.usage()
    with tg.track_usage() as step:
        tg.get_engine(HAIKU).generate("hello there")
    assert step.usage.calls == 1 and step.usage.input_tokens > 0 and step.usage.output_tokens > 0
    expected = (step.usage.input_tokens * 1.0 + step.usage.output_tokens * 5.0) / 1e6
    assert step.usage.cost == pytest.approx(expected)
    assert (tg.usage() - before).calls == 1
    tg.set_price("claude-haiku-5-5", input=100.0, output=100.0)
    try:
        with tg.track_usage() as pricier:
            tg.get_engine(HAIKU).generate("hello again")
        assert pricier.usage.cost == pytest.approx(pricier.usage.tokens * 100 / 1e6)
    finally:
        tg.set_price("claude-haiku-5-5", input=1.0, output=5.0, cache_read=0.1)


def test_budget_stops_cleanly_before_it_is_exceeded(fake_api: FakeMessagesAPI) -> None:
    model = make_model()
    loss = batch_loss(model, QUESTIONS)
    assert loss.value  # forward: 4 calls, within budget
    spent = tg.usage()
    tg.set_budget(tokens=1200)  # the backward needs about 2,300 tokens
    with pytest.raises(tg.BudgetExceeded, match="budget reached"):
        loss.backward()
    sent = fake_api.calls
    # Everything that was computed is kept: the forward values, and the gradients already made.
    assert not loss.is_pending
    assert (tg.usage() - spent).tokens <= 1200 + 2048 + 1000  # at most one call over
    assert sent < 12
    tg.set_budget(None)
    loss.backward()  # continues, reusing the cache for what was already asked
    assert model.parameters()[0].gradients


def test_dollar_budget(fake_api: FakeMessagesAPI) -> None:
    tg.set_budget(dollars=0.000001)
    with pytest.raises(tg.BudgetExceeded, match=r"\$0\.0000"):
        tg.get_engine(HAIKU).generate("hello")
    assert fake_api.calls == 0


def test_sdk_retries_overload_and_server_errors(fake_api: FakeMessagesAPI) -> None:
    fake_api.fail_next(529, 2)
    fake_api.fail_next(500, 1)
    assert tg.get_engine(HAIKU).generate("What is 2+2?")
    assert [r["status"] for r in fake_api.requests] == [529, 529, 500, 200]


def test_rate_limit_past_the_request_timeout_is_a_clear_error_without_the_key(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.fail_next(429, 10)  # each asks to wait 5 ms (retry-after-ms)
    tg.configure(request_timeout=0.012)
    with pytest.raises(tg.EngineError, match=r"rate limit refused.*timeout of 0.012 s") as info:
        tg.get_engine(HAIKU).generate("hello")
    assert FAKE_KEY not in str(info.value) and "\n" not in str(info.value)
    assert len(fake_api.requests) == 3  # 5 + 5 ms fit in 12 ms, a third wait would not


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(tg.MissingAPIKey, match="ANTHROPIC_API_KEY"):
        tg.get_engine(HAIKU)


class EchoEngine(Engine):
    """A real in-process engine (no HTTP): replies with a fixed pattern, for graph-size tests."""

    spec = model = "echo"

    async def _complete(self, request: Request) -> Reply:
        return Reply(
            f"<IMPROVED_VARIABLE>v{len(request.prompt)}</IMPROVED_VARIABLE>", counted("echo", 1, 1)
        )


def test_a_1000_node_chain_does_not_recurse() -> None:
    engine = EchoEngine()
    x = tg.Variable("start", role_description="text", requires_grad=True)
    step = tg.LLMCall(engine)
    v = x
    for _ in range(1000):
        v = step(v)
    v.backward(engine)
    assert len(x.gradients) == 1


def test_sync_api_works_inside_a_running_event_loop(fake_api: FakeMessagesAPI) -> None:
    """As in a Jupyter kernel, whose main thread runs an event loop."""

    async def notebook_cell() -> str:
        model = make_model()
        loss = batch_loss(model, QUESTIONS[:1])
        loss.backward()
        tg.TGD(model.parameters()).step()
        return model.parameters()[0].value

    assert "Think step by step" in asyncio.run(notebook_cell())


def test_formatted_call_and_multifield_evaluation(fake_api: FakeMessagesAPI) -> None:
    question = tg.Variable("What is 2+2?", role_description="question", requires_grad=False)
    draft = tg.Variable("5", role_description="answer", requires_grad=True)
    call = tg.FormattedLLMCall(
        HAIKU, "Q: {q}\nA: {a}\nIs A right?", {"q": "question", "a": "answer"}
    )
    verdict = call({"q": question, "a": draft})
    assert verdict.value
    assert "Q: What is 2+2?\nA: 5" in fake_api.requests[-1]["body"]["messages"][0]["content"]
    evaluation = tg.MultiFieldEvaluation(
        "Is the answer right?", ["question", "answer"], engine=HAIKU
    )([question, draft])
    evaluation.backward(engine=HAIKU)
    assert draft.gradients and not question.gradients


def test_a_reply_without_tags_keeps_the_value_and_the_reply(fake_api: FakeMessagesAPI) -> None:
    fake_api.add_rule("<IMPROVED_VARIABLE>", "I would rather not say.")
    model = make_model()
    batch_loss(model, QUESTIONS[:1]).backward()
    optimizer = tg.TGD(model.parameters())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer.step()
    assert model.parameters()[0].value == "You answer questions."
    assert optimizer.failures[0].reply == "I would rather not say."
    assert any("keeps its value" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tg.get_engine("nonsense"), "unknown engine"),
        (lambda: tg.get_engine("gemini-1.5-pro"), "Google Gemini is not supported"),
        (lambda: tg.Variable("", role_description="system prompt"), "system prompt is empty"),
        (lambda: tg.Variable(3.5, role_description="n"), "must be text"),
        (lambda: tg.TGD([]), "no parameters"),
        (lambda: tg.TGD(["a prompt"]), "must be a tg.Variable"),
        (lambda: tg.sum([]), "at least one"),
    ],
)
def test_bad_input_gets_one_clear_error(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(tg.TgMagicError, match=re.escape(message)):
        make()


def test_non_variable_input_and_nothing_to_optimize(fake_api: FakeMessagesAPI) -> None:
    model = tg.BlackboxLLM(HAIKU, "You answer.")
    with pytest.raises(tg.InputError, match=r"must be a tg\.Variable"):
        model("a plain string")
    x = tg.Variable("2+2?", role_description="question", requires_grad=False)
    with pytest.raises(tg.InputError, match=r"requires_grad=True"):
        model(x).backward()


def test_replies_are_cached_in_the_user_cache_folder_or_where_tg_magic_cache_says(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TG_MAGIC_CACHE", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path / "home")
    ask_twice = (
        f"import tg_magic as tg\nfor _ in range(2): tg.get_engine({HAIKU!r}).generate('2+2?')"
    )

    def run(**extra: str) -> int:
        before = fake_api.calls
        subprocess.run([sys.executable, "-c", ask_twice], env={**env, **extra}, check=True)
        return fake_api.calls - before

    assert run() == 1 and run() == 0  # a second process re-uses the reply too
    assert (tmp_path / "home" / ".cache" / "tg_magic" / "cache.sqlite").exists()
    assert run(TG_MAGIC_CACHE="off") == 2
    assert run(TG_MAGIC_CACHE=str(tmp_path / "mine.sqlite")) == 1
    assert (tmp_path / "mine.sqlite").exists()
