"""How fast is the embedded model? Load time, time to first token, tokens/s, peak memory, and
one TextGrad optimization iteration (a batch of 8) on the local engine.

    python benchmarks/local.py [--repeat N] [--no-iteration]

Figures vary with other load on the machine: each timing is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tg_magic as tg
from tg_magic.engines import METER
from tg_magic.engines import local as local_engine

STORY = "Write a long story about a cat who travels the world, with many details."


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_load() -> tuple[float, float, Any]:
    """Seconds to import llama_cpp, and to load the default model (first use in this process)."""
    start = time.perf_counter()
    import llama_cpp  # noqa: F401

    imported = time.perf_counter() - start
    engine = local_engine.LocalEngine(None)
    loaded = engine.loaded()
    return imported, loaded.load_seconds, loaded.llama


def time_to_first_token(llama: Any) -> float:
    """Stream a short completion with the engine's settings; seconds until the first text."""
    llama.reset()
    start = time.perf_counter()
    stream = llama.create_chat_completion(
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0.0,
        seed=local_engine.SEED,
        stream=True,
    )
    first = None
    for chunk in stream:
        if first is None and chunk["choices"][0]["delta"].get("content"):
            first = time.perf_counter() - start
    assert first is not None, "the model produced no text"
    return first


def generation_speed(llama: Any, grammar: Any = None, tokens: int = 128) -> tuple[float, int]:
    """Tokens/s of a ~128-token reply, first token to last (prompt evaluation excluded)."""
    llama.reset()
    stream = llama.create_chat_completion(
        messages=[{"role": "user", "content": STORY}],
        max_tokens=tokens,
        temperature=0.0,
        seed=local_engine.SEED,
        grammar=grammar,
        stream=True,
    )
    times = [time.perf_counter() for chunk in stream if chunk["choices"][0]["delta"].get("content")]
    return (len(times) - 1) / (times[-1] - times[0]), len(times)


def prompt_speed(llama: Any, words: int = 1500) -> tuple[float, int]:
    """Tokens/s of prompt evaluation, for a prompt the size of a gradient prompt."""
    rng = random.Random(0)
    vocabulary = STORY.split()
    text = " ".join(rng.choice(vocabulary) for _ in range(words))
    llama.reset()
    start = time.perf_counter()
    reply = llama.create_completion(text, max_tokens=1, temperature=0.0)
    n = int(reply["usage"]["prompt_tokens"])
    return n / (time.perf_counter() - start), n


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best is shown)")
    parser.add_argument("--no-iteration", action="store_true", help="skip the W8 iteration")
    args = parser.parse_args()
    tg.set_cache(None)  # measure the model, not the cache

    imported, load, llama = measure_load()
    print(f"import llama_cpp: {imported:.2f} s")
    name = local_engine.default_model_path().name
    print(f"load time: {load:.2f} s ({name}, {local_engine._threads()} threads)")
    ttft = [time_to_first_token(llama) for _ in range(args.repeat)]
    median = statistics.median(ttft)
    print(f"time to first token: {min(ttft) * 1000:.0f} ms (median {median * 1000:.0f} ms)")
    free = [generation_speed(llama) for _ in range(args.repeat)]
    print(f"generation: {max(s for s, _ in free):.1f} tokens/s ({free[0][1]} tokens, no grammar)")
    grammar = local_engine._improved_variable_grammar()
    constrained = [generation_speed(llama, grammar) for _ in range(args.repeat)]
    print(
        f"generation with the IMPROVED_VARIABLE grammar: {max(s for s, _ in constrained):.1f} "
        f"tokens/s ({constrained[0][1]} tokens)"
    )
    prompts = [prompt_speed(llama) for _ in range(args.repeat)]
    print(f"prompt evaluation: {max(s for s, _ in prompts):.0f} tokens/s ({prompts[0][1]} tokens)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB", flush=True)
    if not args.no_iteration:
        iteration_on_local()
        print(f"peak RSS after the iteration: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
