"""Prompt caching of long static prefixes, through the real SDK against the fake Messages API
(which caches marked prefixes as the provider does: an entry is readable once the reply that
wrote it has begun, so requests sent together would all write it)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

import tg_magic as tg
from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tg_magic import runtime
from tg_magic.engines import base
from tg_magic.engines.base import Request
from tg_magic.engines.usage import price

MODEL = "claude-haiku-5-5"
HAIKU = f"anthropic:{MODEL}"
EPHEMERAL = {"type": "ephemeral"}
RULE = "Rule: count each kind of object separately, then add the counts together.\n"
# About 3,000 tokens as the fake counts (4 characters a token), over Haiku's 2,048.
LONG = "You answer questions about counting objects.\n" + RULE * 160
QUESTIONS = [f"I have {n} apples and a plum. How many objects do I have?" for n in range(2, 10)]


def tokens(text: str) -> int:
    """The fake's count of a text (and so the provider's, here)."""
    return max(1, (len(text) + 3) // 4)


async def ask_all(texts: list[str], system: str | None) -> list[str | BaseException]:
    engine = tg.get_engine(HAIKU)
    calls = (engine.agenerate(t, system) for t in texts)
    return await asyncio.gather(*calls, return_exceptions=True)


def test_a_long_system_prompt_is_written_once_and_read_by_the_rest_of_the_batch(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.latency = 0.05  # a reply begins 50 ms after its request: sent together, all write
    with tg.track_usage() as used:
        replies = runtime.run(ask_all(QUESTIONS, LONG))
    assert all(isinstance(r, str) and r.startswith("Answer:") for r in replies)
    for record in fake_api.requests:
        body = record["body"]
        assert body["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
        assert isinstance(body["messages"][0]["content"], str)  # the question: not shared
    assert used.usage.cache_write_tokens == tokens(LONG)  # once
    assert used.usage.cache_read_tokens == tokens(LONG) * (len(QUESTIONS) - 1)


def test_cost_counts_writes_at_125_and_reads_at_10_percent_and_says_what_it_saved(
    fake_api: FakeMessagesAPI,
) -> None:
    with tg.track_usage() as used:
        runtime.run(ask_all(QUESTIONS, LONG))
    u = used.usage
    assert u.cache_write_tokens and u.cache_read_tokens and u.input_tokens
    # Haiku: $1 input, $5 output, $1.25 a cache write, $0.10 a cache read, per million tokens.
    dollars = (u.input_tokens + 5 * u.output_tokens + 1.25 * u.cache_write_tokens) / 1e6
    dollars += 0.1 * u.cache_read_tokens / 1e6
    assert u.cost == pytest.approx(dollars)
    uncached = (u.all_input_tokens + 5 * u.output_tokens) / 1e6
    assert u.saved == pytest.approx(uncached - dollars) and u.saved > 0
    shown = str(u)
    assert f"{u.all_input_tokens:,} input" in shown and f"${u.cost:.4f}" in shown
    assert f"{u.cache_read_tokens:,} tokens read" in shown
    assert f"{u.cache_write_tokens:,} written" in shown and f"saved ${u.saved:.4f}" in shown


def test_below_the_minimum_the_request_is_exactly_as_before(fake_api: FakeMessagesAPI) -> None:
    engine = tg.get_engine(HAIKU)
    engine.generate("How many legs has a cat?", "Be brief.")
    under = "x" * (3 * 2048 - 1)  # the engine's estimate: 2,047 tokens, under Haiku's 2,048
    engine.generate("And a dog?", under)
    first, second = (r["body"] for r in fake_api.requests)
    assert first == {
        "model": MODEL,
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "How many legs has a cat?"}],
        "system": "Be brief.",
        "stream": True,
    }
    assert second["system"] == under and "cache_control" not in json.dumps(second)
    engine.generate("And a dog?", under + "x")  # 2,048: marked
    assert fake_api.requests[-1]["body"]["system"][0]["cache_control"] == EPHEMERAL


def test_the_reply_cache_key_does_not_change_with_the_shared_prefix() -> None:
    old = [HAIKU, {"prompt": "p" * 50, "system": "s", "max_tokens": 2048, "structured": None}]
    payload = json.dumps(old, sort_keys=True, ensure_ascii=False).encode()
    before = hashlib.sha256(payload).hexdigest()  # the key as it was computed before the field
    assert Request("p" * 50, "s").key(HAIKU) == before
    assert Request("p" * 50, "s", shared_prefix=20).key(HAIKU) == before


def prompt_iteration(prompt_text: str, batch: int) -> None:
    """Forward, exact-match loss, backward and one step: a W8 iteration on a system prompt."""
    prompt = tg.Variable(prompt_text, role_description="system prompt")
    model = tg.BlackboxLLM(HAIKU, prompt)

    def exact(prediction: tg.Variable, answer: tg.Variable) -> str:
        return "1" if prediction.value.endswith(answer.value) else "0"

    metric = tg.StringBasedFunction(exact, "1 if the prediction is the answer, else 0")
    losses = []
    for n, question in enumerate(QUESTIONS[:batch], 3):
        q = tg.Variable(question, role_description="question", requires_grad=False)
        a = tg.Variable(str(n), role_description="correct answer", requires_grad=False)
        losses.append(metric({"prediction": model(q), "answer": a}))
    tg.sum(losses).backward(HAIKU)
    tg.TGD([prompt], engine=HAIKU).step()


def test_training_a_long_prompt_shares_it_in_forward_and_gradient_requests(
    fake_api: FakeMessagesAPI,
) -> None:
    with tg.track_usage() as used:
        prompt_iteration(LONG, batch=4)
    bodies = [r["body"] for r in fake_api.requests]
    about_prompt = [b for b in bodies if "feedback on is the system prompt" in str(b["messages"])]
    assert len(about_prompt) == 4
    for body in about_prompt:  # the prompt's text and the call's system prompt, then the rest
        shared, rest = body["messages"][0]["content"]
        assert shared["cache_control"] == EPHEMERAL and "cache_control" not in rest
        assert shared["text"].count(LONG) == 2 and shared["text"].endswith("</SYSTEM_PROMPT>\n")
        assert rest["text"].startswith("<INPUT>\nI have ")
    forward = [b for b in bodies if str(b.get("system", "")).startswith("[{'type': 'text'")]
    assert len(forward) == 4  # the forward calls: the prompt itself is the system
    others = [b for b in bodies if b not in about_prompt and b not in forward]
    assert others and all("cache_control" not in json.dumps(b) for b in others)
    # Written once per prefix (the system prompt; the gradient prefix), read by the others.
    gradient_prefix = tokens(about_prompt[0]["system"] + "\n" + shared["text"])
    assert used.usage.cache_write_tokens == tokens(LONG) + gradient_prefix
    assert used.usage.cache_read_tokens == 3 * tokens(LONG) + 3 * gradient_prefix


def test_a_short_prompt_trains_with_no_request_marked(fake_api: FakeMessagesAPI) -> None:
    prompt_iteration("You answer questions about counting.", batch=4)
    assert fake_api.calls == 13
    assert all("cache_control" not in json.dumps(r["body"]) for r in fake_api.requests)


def test_a_dollar_budget_holds_when_every_call_writes_the_cache(
    fake_api: FakeMessagesAPI,
) -> None:
    """Each call writes its own long prefix, a quarter dearer than plain input, and its reply
    is short (max_tokens 16): a claim that priced the prefix as input would let the calls in
    flight together pass the budget by about a quarter, far more than one call."""
    base.set_concurrency(64)
    fake_api.latency = 0.05  # the calls admitted together are in flight together
    texts = [f"Case {i}: how many objects?" for i in range(120)]
    systems = [f"Case {i}.\n{LONG}" for i in range(120)]
    engine = tg.get_engine(HAIKU)
    budget = 0.15

    async def run() -> list[str | BaseException]:
        calls = (engine.agenerate(t, s, max_tokens=16) for t, s in zip(texts, systems, strict=True))
        return await asyncio.gather(*calls, return_exceptions=True)

    tg.set_budget(dollars=budget)
    with tg.track_usage() as used:
        results = runtime.run(run())
    assert any(isinstance(r, tg.BudgetExceeded) for r in results)
    assert all(isinstance(r, str | tg.BudgetExceeded) for r in results)
    assert used.usage.cache_write_tokens and not used.usage.cache_read_tokens
    one_call = price(MODEL, 0, 16, 0, tokens(systems[-1] + "\n" + texts[-1]))
    assert used.usage.cost <= budget + one_call


def test_the_fake_caches_marked_prefixes_in_whole_and_streamed_replies(
    fake_api: FakeMessagesAPI,
) -> None:
    client = anthropic.Anthropic(max_retries=0)
    system = [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]

    def ask(text: str, blocks: list[dict[str, Any]] = system, **kw: Any) -> Any:
        messages = [{"role": "user", "content": text}]
        return client.messages.create(
            model=MODEL, max_tokens=64, system=blocks, messages=messages, **kw
        )

    whole = ask("I have two apples. How many objects do I have?").usage
    assert whole.cache_creation_input_tokens == tokens(LONG) and whole.cache_read_input_tokens == 0
    total = tokens(LONG + "\nI have two apples. How many objects do I have?")
    assert whole.input_tokens == total - tokens(LONG)
    events = list(ask("I have a plum. How many objects do I have?", stream=True))
    start = events[0].message.usage
    assert start.cache_read_input_tokens == tokens(LONG) and start.cache_creation_input_tokens == 0
    short = [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]
    small = ask("Hi", short).usage  # under the minimum: no cache counts
    assert small.cache_creation_input_tokens == 0 and small.cache_read_input_tokens == 0
    five = [{"type": "text", "text": f"part {i}", "cache_control": EPHEMERAL} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
        ask("Hi", five)
    wrong = [{"type": "text", "text": "x", "cache_control": {"type": "forever"}}]
    with pytest.raises(anthropic.BadRequestError, match="ephemeral"):
        ask("Hi", wrong)


def write_data(path: Path, n: int = 8) -> None:
    rows = [{"question": q, "target": str(k)} for k, q in enumerate(QUESTIONS[:n], 3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_the_saving_is_shown_in_the_history_and_the_progress_widget(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    from tests.test_widgets import magics_of, plain
    from tg_magic.notebook.progress import ProgressView

    write_data(tmp_path / "counting.jsonl")
    cells.run(f"%%tgvariable system --kind prompt\n{LONG}")
    cells.run("%tgloss acc --target system --data counting.jsonl --metric number")
    assert cells.error is None
    view = ProgressView(1, can_stop=True)
    for result in magics_of(cells).session.optimize("acc", steps=1, batch=4):
        view.update(result)
    shown = plain(view.usage_label.value)
    assert "prompt cache:" in shown and f"saved ${view.usage.saved:.4f}" in shown
    assert view.usage.saved > 0
    history = cells.run("%tghistory system")
    assert "prompt cache:" in history and "saved $" in history, history
