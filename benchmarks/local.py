"""How fast is the embedded model? Load time, time to first token, tokens/s on 1 and 2 threads,
prompt evaluation, what one llama_decode step of 1 and 8 tokens costs (the bound on decoding
requests together), k = 1, 4, 8 requests decoded at once against one after another, peak memory,
one TextGrad optimization iteration (a batch of 8) on the local engine, and the keyless demo.

    python benchmarks/local.py [--repeat N] [--no-iteration] [--demo]

Figures vary with other load on the machine: each timing is the best of --repeat runs, and the
load (other processes' CPU, in cores) is printed beside the figures that depend on it.

llama.cpp's threads here are OpenMP's (libgomp): while a thread that ran llama.cpp on 2 threads
stays alive, another thread's steps on 2 threads wait at libgomp's barriers instead of spinning
(one token: 15 ms instead of 6, measured), so every decoder measured here runs on a thread that
ends before the next starts, and the shared model's decoder (time to first token, the iteration)
comes last.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tg_magic as tg
from tg_magic.engines import METER, Request, local_threads
from tg_magic.engines import local as local_engine
from tg_magic.engines.local_batch import LAYOUTS, Decoder, Job
from tg_magic.engines.local_context import Context

ROOT = Path(__file__).resolve().parents[1]
STORY = "Write a long story about a cat who travels the world, with many details."
TOPICS = ["a cat", "the sea", "a robot", "a city", "a river", "a dragon", "a baker", "a comet"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def others_now(seconds: float = 0.5) -> float | None:
    """Cores' worth of CPU that other processes use, over a short window."""
    probe = local_threads.LoadProbe()
    time.sleep(seconds)
    return probe()


def load(reading: float | None) -> str:
    return "load unknown" if reading is None else f"other processes used {reading:.2f} cores"


@contextmanager
def threads(n: int) -> Iterator[None]:
    """A fixed llama.cpp thread count for the decoders made inside (TG_MAGIC_LOCAL_THREADS)."""
    before = os.environ.get(local_threads.THREADS_ENV)
    os.environ[local_threads.THREADS_ENV] = str(n)
    try:
        yield
    finally:
        if before is None:
            del os.environ[local_threads.THREADS_ENV]
        else:
            os.environ[local_threads.THREADS_ENV] = before


def job(engine: local_engine.LocalEngine, prompt: str, max_tokens: int, **kw: str) -> Job:
    return engine._job(Request(prompt, None, max_tokens, **kw))  # type: ignore[arg-type]


def timed(decoder: Decoder, jobs: list[Job]) -> tuple[float, float, int]:
    """Submit `jobs` at once: (seconds until every prompt is in, seconds from then until every
    reply is done, tokens generated)."""
    start = time.perf_counter()
    futures = [decoder.submit(j) for j in jobs]
    for j in jobs:
        j.started.wait()
    prompts_in = time.perf_counter()
    tokens = sum(len(f.result().tokens) for f in futures)
    return prompts_in - start, time.perf_counter() - prompts_in, tokens


def measure_load() -> tuple[float, float, local_engine.LocalEngine]:
    """Seconds to import llama_cpp, and to load the default model (first use in this process)."""
    start = time.perf_counter()
    import llama_cpp  # noqa: F401

    imported = time.perf_counter() - start
    engine = local_engine.LocalEngine(None)
    return imported, engine.loaded().load_seconds, engine


def time_to_first_token(engine: local_engine.LocalEngine, i: int) -> float:
    """Seconds for a one-token reply to a new short question (prompt evaluation, one token)."""
    start = time.perf_counter()
    engine.generate(f"What is the capital of France? ({i})", max_tokens=1)
    return time.perf_counter() - start


def per_thread_count(engine: local_engine.LocalEngine, repeat: int) -> None:
    """Generation and prompt evaluation speed on 1 and 2 threads, with and without the
    optimizer's grammar (the grammar slows a token by one check of the best candidates)."""
    llama = engine.loaded().llama
    words = random.Random(0).choices(STORY.split(), k=1500)
    for n in (1, 2):
        with threads(n):
            decoder = Decoder(llama)
        try:
            free = constrained = prompt = 0.0
            for i in range(repeat):
                _, seconds, tokens = timed(decoder, [job(engine, f"{STORY} ({i})", 128)])
                free = max(free, tokens / seconds)
                structured = job(engine, f"{STORY} [{i}]", 128, structured="improved_variable")
                _, seconds, tokens = timed(decoder, [structured])
                constrained = max(constrained, tokens / seconds)
                long = job(engine, f"{i} " + " ".join(words), 1)
                seconds, _, _ = timed(decoder, [long])
                prompt = max(prompt, len(long.tokens) / seconds)
            print(
                f"{n} thread{'s' if n > 1 else ''}: generation {free:.0f} tokens/s, "
                f"{constrained:.0f} with the IMPROVED_VARIABLE grammar; prompt evaluation "
                f"{prompt:.0f} tokens/s ({len(long.tokens)} tokens)",
                flush=True,
            )
        finally:
            decoder.close()


Steps = dict[tuple[int, int], list[float]]  # (threads, tokens a step) -> each round's median


def on_own_thread(work: Callable[[], Steps]) -> Steps:
    """Run `work` on a thread that ends with it (see the module's docstring)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def _decode_steps(llama: Any, prompt: list[int], repeat: int) -> Steps:
    """Steps of 1 and 8 tokens after `prompt` in each of 8 streams, in seconds."""
    streams, per_stream = LAYOUTS[0]
    context = Context(llama, streams, per_stream, threads=1)
    times: Steps = {}
    try:
        for seq in range(streams):
            context.decode([(t, i, seq) for i, t in enumerate(prompt)], True)
        for _ in range(max(repeat, 3)):
            for n_threads in (1, 2):
                context.set_threads(n_threads)
                for width in (1, 8):
                    steps = []
                    for step in range(10):
                        entries = [(100 + step, len(prompt) + step, s) for s in range(width)]
                        start = time.perf_counter()
                        context.decode(entries, False)  # logits for every sequence, as a step
                        steps.append(time.perf_counter() - start)
                    times.setdefault((n_threads, width), []).append(statistics.median(steps))
                    for seq in range(width):
                        context.keep(seq, len(prompt))
    finally:
        context.close()
    return times


def decode_step_bound(engine: local_engine.LocalEngine, repeat: int) -> dict[int, float]:
    """llama_decode alone (no Python of ours between steps) for one token and for 8 tokens of 8
    sequences, on a context laid out as the decoder's, on 1 and 2 threads taken in turn so that
    load changes hit every figure alike; each figure is the best round's median step. Returns,
    per thread count, the most that decoding 8 sequences together can give over one:
    8 x (one token's step) / (8 tokens' step)."""
    llama = engine.loaded().llama
    prompt = job(engine, STORY, 1).tokens
    times = on_own_thread(lambda: _decode_steps(llama, prompt, repeat))
    bound = {}
    for n_threads in (1, 2):
        one, eight = (min(times[n_threads, w]) for w in (1, 8))
        bound[n_threads] = 8 * one / eight
        print(
            f"llama_decode alone, {n_threads} thread{'s' if n_threads > 1 else ''}: 1 token "
            f"{one * 1000:.1f} ms, 8 tokens {eight * 1000:.1f} ms ({eight / one:.1f}x): 8 at once "
            f"can give at most {bound[n_threads]:.2f}x the tokens/s of one",
            flush=True,
        )
    return bound


def together_vs_one_by_one(
    engine: local_engine.LocalEngine, repeat: int, bound: dict[int, float]
) -> None:
    """k requests in flight at once against the same k one after another, each on a decoder of
    its own (nothing shared between the two ways, each warmed by a one-token reply so that making
    its llama.cpp context, once per process in use, is not timed), on the thread count chosen for
    the load; beside the ratio, llama_decode's own bound for 8 (decode_step_bound) and its share
    of the decoder's time (the rest is our Python: batches, logits, sampling, bookkeeping)."""
    llama = engine.loaded().llama
    for k in (1, 4, 8):
        best_one = best_all = 0.0
        wall_one = wall_all = float("inf")
        shares: list[float] = []
        used: set[int] = set()
        for r in range(repeat):
            prompts = [f"Write a long story about {TOPICS[i]} ({r})." for i in range(k)]
            one = Decoder(llama)
            try:
                timed(one, [job(engine, "Hello.", 1)])
                results = [timed(one, [job(engine, p, 64)]) for p in prompts]
            finally:
                one.close()
            seconds = sum(s for _, s, _ in results)
            best_one = max(best_one, sum(t for _, _, t in results) / seconds)
            wall_one = min(wall_one, sum(p + s for p, s, _ in results))
            together = Decoder(llama)
            try:
                timed(together, [job(engine, "Hello.", 1)])
                warm = together.stats.decode_seconds
                prompt_s, seconds, tokens = timed(together, [job(engine, p, 64) for p in prompts])
            finally:
                together.close()
            best_all = max(best_all, tokens / seconds)
            wall_all = min(wall_all, prompt_s + seconds)
            shares.append((together.stats.decode_seconds - warm) / (prompt_s + seconds))
            used.update([one.stats.threads, together.stats.threads])
        bounds = ", ".join(f"{bound[n]:.2f} on {n}" for n in sorted(used) if n in bound)
        ceiling = f"; llama_decode's own bound: {bounds} threads" if k == 8 and bounds else ""
        print(
            f"k={k}: at once {best_all:.0f} tokens/s, one after another {best_one:.0f} tokens/s "
            f"(ratio {best_all / best_one:.2f}{ceiling}); wall {wall_all:.1f} s vs "
            f"{wall_one:.1f} s; llama_decode {statistics.median(shares):.0%} of the decoder's time",
            flush=True,
        )


def demo_wall_time() -> None:
    """`tg-magic demo` with no API key and no reply cache, as a user runs it: wall time, and
    the other processes' CPU meanwhile (the machine's busy time less the demo's own)."""
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["TG_MAGIC_CACHE"] = "off"
    before, start = local_threads.cpu_times(), time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", "from tg_magic.cli import main; raise SystemExit(main())", "demo"],
        cwd=ROOT, env=env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = local_threads.cpu_times()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    demo_cpu = (used.ru_utime + used.ru_stime) - (children.ru_utime + children.ru_stime)
    others = None
    if before.machine is not None and after.machine is not None:
        others = max(0.0, (after.machine - before.machine - demo_cpu) / wall)
    total = next((ln for ln in done.stdout.splitlines() if ln.startswith("total:")), "")
    print(f"keyless demo: {wall:.1f} s wall (bound: 60 s), {demo_cpu:.0f} s CPU; {load(others)}")
    print(f"  {total or done.stderr.strip()[-300:]}")


# ---------------------------------------------------------------------------------------------
# One optimization iteration on the local engine (W8: a batch of 8 object-counting questions)
# ---------------------------------------------------------------------------------------------

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
OBJECTS = [
    ("apple", "apples"),
    ("plum", "plums"),
    ("chair", "chairs"),
    ("banana", "bananas"),
    ("table", "tables"),
    ("carrot", "carrots"),
    ("lamp", "lamps"),
    ("orange", "oranges"),
]


def counting_questions(n: int = 8, seed: int = 0) -> list[tuple[str, int]]:
    """Questions like "I have two apples, a plum and three chairs. How many objects do I have?"."""
    rng = random.Random(seed)
    questions = []
    for _ in range(n):
        items = rng.sample(OBJECTS, 3)
        counts = [rng.randint(1, 4) for _ in items]
        parts = [
            f"a {one}" if c == 1 else f"{NUMBER_WORDS[c]} {many}"
            for c, (one, many) in zip(counts, items, strict=True)
        ]
        text = f"I have {parts[0]}, {parts[1]} and {parts[2]}. How many objects do I have?"
        questions.append((text, sum(counts)))
    return questions


def last_number(text: str) -> int | None:
    """The last number in a reply, written in digits or as a word up to nine."""
    words = "|".join(NUMBER_WORDS)
    found = re.findall(rf"\b(\d+|{words})\b", text.lower())
    if not found:
        return None
    last = found[-1]
    return int(last) if last.isdigit() else NUMBER_WORDS.index(last)


def exact_match(answer: tg.Variable, correct: tg.Variable) -> str:
    ok = last_number(answer.value) == int(correct.value)
    return "correct" if ok else f"incorrect: the answer should be {correct.value}"


def iteration_on_local() -> None:
    """Time one TextGrad iteration on the local engine: 8 answers, exact-match losses, tg.sum,
    backward, one TGD step on the system prompt. Prints wall time, calls and tokens."""
    tg.set_backward_engine("local")
    system_prompt = tg.Variable(
        "Answer the question.", role_description="system prompt", requires_grad=True
    )
    model = tg.BlackboxLLM("local", system_prompt)
    loss_fn = tg.StringBasedFunction(
        exact_match, "checks whether the last number of the answer is the correct count"
    )
    optimizer = tg.TGD(model.parameters(), engine="local")
    batch = counting_questions(8)
    start = time.perf_counter()
    with METER.scope() as scope:
        losses = []
        for question, count in batch:
            q = tg.Variable(question, role_description="question", requires_grad=False)
            truth = tg.Variable(str(count), role_description="correct count", requires_grad=False)
            answer = model(q)
            losses.append(loss_fn({"answer": answer, "correct": truth}))
        total = tg.sum(losses)
        correct = sum(loss.value == "correct" for loss in losses)
        forward_seconds = time.perf_counter() - start
        total.backward("local")
        backward_seconds = time.perf_counter() - start - forward_seconds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a failed update warns; it is printed below
            optimizer.step()
    seconds = time.perf_counter() - start
    usage = scope.usage
    updated = not optimizer.failures
    print(f"iteration (W8, local): {seconds:.1f} s wall", flush=True)
    print(
        f"  forward {forward_seconds:.1f} s, backward {backward_seconds:.1f} s, "
        f"step {seconds - forward_seconds - backward_seconds:.1f} s"
    )
    print(
        f"  calls: {usage.calls} ({usage.input_tokens:,} input + {usage.output_tokens:,} "
        f"output tokens, ${usage.cost:.4f})"
    )
    print(f"  exact match before the step: {correct}/8")
    print(
        f"  step: {'new system prompt: ' + repr(system_prompt.value) if updated else 'no update'}"
        + ("" if updated else f" ({optimizer.failures[0].reason})")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best is shown)")
    parser.add_argument("--no-iteration", action="store_true", help="skip the W8 iteration")
    parser.add_argument("--demo", action="store_true", help="also time `tg-magic demo` (~1 min)")
    args = parser.parse_args()
    tg.set_cache(None)  # measure the model, not the cache

    print(f"before: {load(others_now())}", flush=True)
    imported, seconds, engine = measure_load()
    print(f"import llama_cpp: {imported:.2f} s")
    decoder = engine.loaded().decoder
    name = local_engine.default_model_path().name
    print(f"load time: {seconds:.2f} s ({name}, {decoder.stats.threads} threads for the load)")
    per_thread_count(engine, args.repeat)
    bound = decode_step_bound(engine, args.repeat)
    together_vs_one_by_one(engine, args.repeat, bound)
    ttft = [time_to_first_token(engine, i) for i in range(args.repeat)]  # the shared decoder
    median = statistics.median(ttft)
    print(f"time to first token: {min(ttft) * 1000:.0f} ms (median {median * 1000:.0f} ms)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB", flush=True)
    if not args.no_iteration:
        iteration_on_local()
        print(f"  decoder: {decoder.stats.batched_steps} of {decoder.stats.steps} steps decoded "
              f"several sequences (at most {decoder.stats.widest})")  # fmt: skip
        print(f"peak RSS after the iteration: {peak_rss_mb():.0f} MB")
    if args.demo:
        demo_wall_time()
    print(f"after: {load(others_now())}")


if __name__ == "__main__":
    main()
