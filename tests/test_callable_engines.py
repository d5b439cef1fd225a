"""A plain callable is an engine, as TextGrad programs pass one: `f(prompt, system_prompt=None)`,
a def or an async def, a function or an object (an Ollama wrapper found in the wild)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import tg_magic as tg
from tests.fake_api import default_reply
from tests.test_core import QUESTIONS, batch_loss


def scripted(prompt: Any, system_prompt: str | None) -> str:
    """What the fake Messages API would answer: enough to drive backward and a step."""
    body = {"system": system_prompt} if system_prompt else {}
    text = "\n".join(p for p in (system_prompt, str(prompt)) if p)
    return default_reply(body, text)


class OllamaWrapper:
    """As a TextGrad user writes one: a model name, a blocking __call__, no base class."""

    def __init__(self, model: str = "llama3.2") -> None:
        self.model = model
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, prompt: str, system_prompt: str | None = None) -> str:
        with self.lock:
            self.calls += 1
        return scripted(prompt, system_prompt)


class AsyncWrapper:
    def __init__(self) -> None:
        self.calls = 0
        self.inside = 0
        self.peak = 0

    async def __call__(self, prompt: str, system_prompt: str | None = None) -> str:
        self.calls += 1
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        await asyncio.sleep(0.01)
        self.inside -= 1
        return scripted(prompt, system_prompt)


def one_iteration(engine: object) -> tg.Variable:
    """Forward over a batch, backward, one step: the engine everywhere is the callable."""
    prompt = tg.Variable("You answer questions.", role_description="system prompt")
    model = tg.BlackboxLLM(engine, prompt)
    loss = batch_loss(model, QUESTIONS)
    loss.backward(engine)
    tg.TGD([prompt], engine=engine).step()
    return prompt


def test_a_sync_callable_runs_backward_and_a_step_and_a_rerun_comes_from_the_cache() -> None:
    wrapper = OllamaWrapper()
    tg.set_backward_engine(wrapper)  # TextGrad's call; it raised before
    assert tg.get_backward_engine() is tg.get_engine(wrapper)
    with tg.track_usage() as first:
        prompt = one_iteration(wrapper)
    assert prompt.value.startswith("You answer questions. Think step by step")
    assert wrapper.calls == first.usage.calls > len(QUESTIONS)
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0  # estimated
    paid = wrapper.calls
    with tg.track_usage() as again:
        assert one_iteration(wrapper).value == prompt.value
    assert wrapper.calls == paid  # every reply came from the cache
    assert again.usage.cached_calls == again.usage.calls == first.usage.calls


def test_an_async_callable_is_awaited_concurrently_through_configure() -> None:
    wrapper = AsyncWrapper()
    tg.configure(engine=wrapper)
    assert tg.get_engine(None) is tg.get_engine(wrapper)
    prompt = tg.Variable("You answer questions.", role_description="system prompt")
    model = tg.BlackboxLLM(system_prompt=prompt)  # the `engine` setting: the callable
    loss = batch_loss(model, QUESTIONS)
    loss.backward()
    tg.TGD([prompt]).step()
    assert "Think step by step" in prompt.value
    assert wrapper.peak > 1  # a batch's calls were in flight together


async def async_function(prompt: str, system_prompt: str | None = None) -> str:
    return scripted(prompt, system_prompt)


def test_a_plain_function_and_an_async_function_are_engines() -> None:
    def sync_function(prompt: str, system_prompt: str | None = None) -> str:
        return scripted(prompt, system_prompt)

    for function in (sync_function, async_function):
        prompt = one_iteration(function)
        assert "Think step by step" in prompt.value


def test_each_callable_has_its_own_cache_identity() -> None:
    question = tg.Variable("Say who you are.", role_description="question")
    llama, qwen = OllamaWrapper("llama3.2"), OllamaWrapper("qwen2.5")
    answers = {}
    for name, engine in {
        "llama": llama,
        "qwen": qwen,
        "first lambda": lambda prompt, system_prompt=None: "first",
        "second lambda": lambda prompt, system_prompt=None: "second",
    }.items():
        answers[name] = tg.BlackboxLLM(engine)(question).value
    assert answers["first lambda"] == "first" and answers["second lambda"] == "second"
    assert llama.calls == 1 and qwen.calls == 1  # same class, other model: asked again
    specs = {tg.get_engine(e).spec for e in (llama, qwen)}
    assert specs == {
        f"custom:{__name__}.OllamaWrapper:llama3.2",
        f"custom:{__name__}.OllamaWrapper:qwen2.5",
    }
    assert tg.get_engine(llama) is tg.get_engine(llama)  # one engine per object


def test_a_budget_counts_a_callables_calls() -> None:
    wrapper = OllamaWrapper()
    engine = tg.get_engine(wrapper)
    tg.set_budget(tokens=3000)
    with tg.track_usage() as used:
        asked = 0
        with pytest.raises(tg.BudgetExceeded, match="budget reached"):
            for i in range(100):
                engine.generate(f"Question {i}: explain it in a paragraph of some length.")
                asked += 1
    assert wrapper.calls == asked == used.usage.calls and 0 < asked < 100
    assert tg.engines.METER.spent.calls == asked
    assert 3000 - 200 < tg.engines.METER.spent.tokens <= 3000 + 2048  # at most one call over
    tg.set_budget(None)


def test_a_dollar_budget_asks_for_the_callables_price_by_its_model_name() -> None:
    wrapper = OllamaWrapper("llama3.2")
    tg.set_budget(dollars=1.0)
    with pytest.raises(tg.EngineError, match=r"tg.set_price\('llama3.2'"):
        tg.get_engine(wrapper).generate("hello")
    tg.set_price("llama3.2", input=0.0, output=0.0)
    try:
        assert tg.get_engine(wrapper).generate("hello")
    finally:
        del tg.engines.PRICES["llama3.2"]
        tg.set_budget(None)


@pytest.mark.parametrize(
    ("engine", "said"),
    [
        (42, "42 (an int) is not an engine: pass a spec string"),
        (object(), "(an object) is not an engine"),
        (OllamaWrapper, "OllamaWrapper is a class: pass an instance of it"),
        (lambda prompt: prompt, "cannot be called as an engine, f(prompt, system_prompt=None)"),
    ],
    ids=["number", "object", "class", "no-system-prompt"],
)
def test_what_is_not_an_engine_is_refused_in_one_line(engine: object, said: str) -> None:
    for route in (
        tg.set_backward_engine,
        tg.get_engine,
        lambda e: tg.BlackboxLLM(e),
        lambda e: tg.TGD([tg.Variable("x", role_description="p")], engine=e),
    ):
        with pytest.raises(tg.InputError) as info:
            route(engine)
        assert said in str(info.value) and "\n" not in str(info.value)


def test_a_callable_that_returns_no_text_fails_in_one_line() -> None:
    def chat(prompt: str, system_prompt: str | None = None) -> dict[str, Any]:
        return {"message": {"content": "hi"}}  # Ollama's chat() reply, not its text

    with pytest.raises(tg.EngineError, match="returned dict, not str: return the reply text"):
        tg.get_engine(chat).generate("hello")
