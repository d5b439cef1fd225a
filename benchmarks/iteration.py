"""One prompt-optimization iteration, measured against its critical-path bound.

B object-counting questions, an exact-match loss, tg.sum, backward and one TGD step, through the
real anthropic SDK against the loopback fake Messages API with a fixed latency per call. The
bound is (LLM-call levels of the graph) x latency, computed from the same graph in the same run.

    python benchmarks/iteration.py [--batch 8] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_api import FakeMessagesAPI

NUMBERS = ["a", "two", "three", "four", "five"]
THINGS = ["apple", "plum", "chair", "violin", "car", "oven", "cabbage", "flute", "bed", "lamp"]


def counting_questions(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Generated questions like the paper's object counting, with their answers."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        picks = rng.sample(THINGS, rng.randint(2, 4))
        counts = [rng.randint(1, 5) for _ in picks]
        parts = [
            f"{NUMBERS[c - 1]} {t}{'s' if c > 1 else ''}"
            for c, t in zip(counts, picks, strict=True)
        ]
        sentence = ", ".join(parts[:-1]) + " and " + parts[-1]
        items.append((f"I have {sentence}. How many objects do I have?", str(sum(counts))))
    return items


def exact_match(prediction, ground_truth_answer) -> str:  # type: ignore[no-untyped-def]
    found = re.findall(r"\d+", prediction.value)
    return "1" if found and found[-1] == ground_truth_answer.value else "0"


START = "You answer questions about counting."


def iteration(tg, engine, batch: list[tuple[str, str]], start: str = START):  # type: ignore[no-untyped-def]
    """Forward, loss, backward and one step from the prompt `start`; returns the loss and the
    optimized prompt."""
    prompt = tg.Variable(start, role_description="system prompt")
    model = tg.BlackboxLLM(engine, prompt)
    metric = tg.StringBasedFunction(exact_match, "1 if the prediction is the answer, else 0")
    losses = []
    for question, answer in batch:
        q = tg.Variable(question, role_description="question", requires_grad=False)
        a = tg.Variable(answer, role_description="correct answer", requires_grad=False)
        losses.append(metric({"prediction": model(q), "ground_truth_answer": a}))
    loss = tg.sum(losses)
    optimizer = tg.TGD([prompt], engine=engine)
    loss.backward(engine)
    optimizer.step()
    return loss, prompt


def llm_levels(loss) -> int:  # type: ignore[no-untyped-def]
    """LLM-call levels on the critical path: forward depth + backward depth + the step."""
    from tg_magic.autograd import graph
    from tg_magic.functions import LLMCall, StringBasedFunction

    forward: dict[int, int] = {}
    backward: dict[int, int] = {}
    nodes = graph([loss])
    for v in nodes:  # inputs before outputs
        here = int(v.grad_fn is not None and isinstance(v.grad_fn.function, LLMCall))
        forward[id(v)] = here + max((forward[id(p)] for p in v.predecessors), default=0)
    for v in reversed(nodes):  # outputs before inputs
        if v.grad_fn is None:
            continue
        fn = v.grad_fn.function
        calls = int(isinstance(fn, LLMCall | StringBasedFunction))
        for p in v.predecessors:
            if p.requires_grad:
                backward[id(p)] = max(backward.get(id(p), 0), backward.get(id(v), 0) + calls)
    return forward[id(loss)] + max(backward.values()) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--overhead-batch", type=int, default=64)
    args = parser.parse_args()
    os.environ["TG_MAGIC_CACHE"] = "off"

    with FakeMessagesAPI() as fake:
        os.environ["ANTHROPIC_BASE_URL"] = fake.base_url
        os.environ["ANTHROPIC_API_KEY"] = "benchmark-key-for-the-loopback-server"
        import tg_magic as tg

        engine = tg.get_engine("anthropic:claude-haiku-5-5")
        engine.generate("warm up: import the SDK and open a connection")
        fake.reset()

        fake.latency = args.latency
        batch = counting_questions(args.batch)
        start = time.perf_counter()
        loss, _ = iteration(tg, engine, batch)
        wall = time.perf_counter() - start
        levels = llm_levels(loss)
        bound = levels * args.latency
        sent = sum(len(str(r["body"].get("system", ""))) for r in fake.requests) + sum(
            len(m["content"]) for r in fake.requests for m in r["body"]["messages"]
        )
        print(f"iteration: B={args.batch}, latency {args.latency * 1000:.0f} ms per call")
        print(f"  wall time          {wall:.3f} s")
        print(f"  LLM calls          {fake.calls}")
        print(f"  characters sent    {sent:,}")
        print(f"  peak concurrency   {fake.max_concurrency}")
        print(f"  critical path      {levels} levels x {args.latency:.3f} s = {bound:.3f} s")
        print(f"  ratio wall/bound   {wall / bound:.2f}   (target <= 1.25)")
        print(f"  sequential bound   {fake.calls * args.latency:.3f} s (one call after another)")

        # The framework's own cost per call: zero latency, a larger batch.
        fake.reset()
        big = counting_questions(args.overhead_batch, seed=1)
        start = time.perf_counter()
        iteration(tg, engine, big)
        wall = time.perf_counter() - start
        print(f"overhead: B={args.overhead_batch}, zero latency, SDK over loopback HTTP")
        print(f"  wall time          {wall:.3f} s for {fake.calls} calls")
        print(f"  per call           {wall / fake.calls * 1000:.2f} ms (SDK + HTTP + framework)")

    # Without the SDK and HTTP: an in-process engine isolates tg_magic's own per-call cost.
    from tg_magic.engines.base import Engine, Reply, Request, counted

    class Instant(Engine):
        spec = model = "instant"

        async def _complete(self, request: Request) -> Reply:
            return Reply("<IMPROVED_VARIABLE>Answer: 3</IMPROVED_VARIABLE>", counted("x", 1, 1))

    instant = Instant()
    with tg.track_usage() as run:
        start = time.perf_counter()
        iteration(tg, instant, big)
        wall = time.perf_counter() - start
    per_call = wall / run.usage.calls * 1000
    print(f"  per call           {per_call:.2f} ms (framework only, in-process engine; <= 5)")


if __name__ == "__main__":
    main()
