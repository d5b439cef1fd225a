"""Prompt caching on a long system prompt: one W8-like iteration, with and without caching.

A 3,000-token system prompt trained on B=64 object-counting questions (forward, exact-match
loss, tg.sum, backward, one TGD step), through the real anthropic SDK against the loopback
fake Messages API, which caches marked prefixes as the provider does (an entry is readable once
the reply that wrote it has begun). The same iteration is then run with caching off (no prefix
reaches the minimum, so no request is marked): the cost of both, and their ratio.

    python benchmarks/caching.py [--batch 64] [--prompt-tokens 3000] [--latency 0.05] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.iteration import counting_questions, iteration, llm_levels
from tests.fake_api import FakeMessagesAPI

MODEL = "claude-haiku-5-5"
GUIDANCE = [
    "Read the whole question before you answer, and name every object it lists.",
    "A word like 'a' or 'an' means one object; 'two', 'three' and so on mean that many.",
    "Count each kind of object separately, then add the counts together.",
    "Objects named in the plural still count once per item, not once per word.",
    "Do not count things the question mentions but the speaker does not have.",
    "When a number is written in words, turn it into digits before you add it.",
    "Give the total as digits at the end of your answer, after the word 'Answer:'.",
    "If the question is ambiguous, count what it states, not what it might imply.",
]


def long_prompt(tokens: int) -> str:
    """A system prompt of about `tokens` tokens (the fake counts 4 characters a token)."""
    lines = ["You answer questions about counting objects."]
    n = 0
    while sum(len(line) + 1 for line in lines) < tokens * 4:
        lines.append(f"Rule {n + 1}: {GUIDANCE[n % len(GUIDANCE)]}")
        n += 1
    return "\n".join(lines)


def run(tg, fake: FakeMessagesAPI, prompt_text: str, batch, caching: bool):  # type: ignore[no-untyped-def]
    """One iteration on a fresh engine and a fresh provider cache: (usage, wall, loss)."""
    from tg_magic import engines
    from tg_magic.engines import usage

    minimum = usage.CACHE_MINIMUM[MODEL]
    if not caching:
        usage.CACHE_MINIMUM[MODEL] = 10**9  # no prefix reaches it: nothing is marked
    engines._engines.clear()
    fake.reset()
    try:
        engine = tg.get_engine(f"anthropic:{MODEL}")
        with tg.track_usage() as used:
            start = time.perf_counter()
            loss, _ = iteration(tg, engine, batch, prompt_text)
            wall = time.perf_counter() - start
    finally:
        usage.CACHE_MINIMUM[MODEL] = minimum
    marked = sum("cache_control" in str(r["body"]) for r in fake.requests)
    return used.usage, wall, loss, marked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, for the wall time")
    args = parser.parse_args()
    os.environ["TG_MAGIC_CACHE"] = "off"

    with FakeMessagesAPI() as fake:
        os.environ["ANTHROPIC_BASE_URL"] = fake.base_url
        os.environ["ANTHROPIC_API_KEY"] = "benchmark-key-for-the-loopback-server"
        import tg_magic as tg
        from tg_magic.config import settings

        tg.get_engine(f"anthropic:{MODEL}").generate("warm up: import the SDK")
        fake.latency = args.latency
        prompt_text = long_prompt(args.prompt_tokens)
        batch = counting_questions(args.batch)
        run(tg, fake, prompt_text, batch[:2], caching=False)  # load the library's modules
        walls: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeat):  # alternated: a loaded machine slows both alike
            cached, wall, loss, marked = run(tg, fake, prompt_text, batch, caching=True)
            calls = fake.calls
            walls[True].append(wall)
            plain, wall, _, marked_plain = run(tg, fake, prompt_text, batch, caching=False)
            walls[False].append(wall)
        wall_c, wall_p = (statistics.median(walls[c]) for c in (True, False))

    share = cached.cache_read_tokens / cached.all_input_tokens
    bound = llm_levels(loss) * args.latency
    print(
        f"caching: {MODEL}, a {args.prompt_tokens:,}-token system prompt, B={args.batch}, "
        f"concurrency {settings.concurrency}, latency {args.latency * 1000:.0f} ms per call"
    )
    print(f"  calls                 {calls} ({marked} marked for the cache)")
    print(f"  input tokens          {cached.all_input_tokens:,}")
    print(f"    read from cache     {cached.cache_read_tokens:,}")
    print(f"    written to cache    {cached.cache_write_tokens:,}")
    print(f"    neither             {cached.input_tokens:,}")
    print(f"  share billed as reads {share:.1%}")
    print(f"  cost with caching     ${cached.cost:.4f}  (saved ${cached.saved:.4f}, as counted)")
    print(f"  cost without caching  ${plain.cost:.4f}  (the same run, {marked_plain} marked)")
    print(f"  ratio with/without    {cached.cost / plain.cost:.3f}")
    print(
        f"  wall with / without   {wall_c:.2f} s / {wall_p:.2f} s (medians of {args.repeat}; "
        f"critical path {bound:.2f} s without the waits for a first write)"
    )


if __name__ == "__main__":
    main()
