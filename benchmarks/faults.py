"""Faults and budgets, measured: the core against a loopback Messages API that misbehaves.

Through the real anthropic SDK against tests/fake_api.py. Prints the faults injected, the runs
that finished, the paid replies lost (usable replies the server sent that never reached the
caller), the dollars spent over a budget beyond one call's worth (must be 0), the wall time
of a request that always stalls against its bound (attempts x request_timeout + the retry
delays), and a W8 iteration (8 questions, backward, one step) with one request whose stream
stalls halfway, against the same iteration without it: the difference is the idle timeout plus
one retry (the figure was 127 s before replies were streamed: the 120 s request timeout).

    python benchmarks/faults.py [--runs 12] [--timeout 1.0] [--idle 30] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_api import FakeMessagesAPI

HAIKU = "anthropic:claude-haiku-5-5"
UNUSABLE = ("html", "bad_json", "empty")


def faulty_runs(fake: FakeMessagesAPI, runs: int) -> tuple[int, int, int]:
    """Optimization iterations with faults scattered through them: (injected, finished, lost)."""
    import tg_magic as tg
    from tests.test_core import batch_loss, make_model

    rng = random.Random(0)
    questions = [
        (f"I have {n} apples and a plum. How many objects do I have?", str(n + 1))
        for n in range(2, 8)
    ]
    delivered = 0
    original = tg.engines.base.Engine._call

    async def counting(self, request):  # type: ignore[no-untyped-def]
        nonlocal delivered
        reply = await original(self, request)
        delivered += 1
        return reply

    tg.engines.base.Engine._call = counting  # type: ignore[method-assign]
    finished = 0
    unusable_served = 0
    for run in range(runs):
        tg.set_cache(None)  # every reply comes from the server: each one is paid
        for _ in range(3):
            fault = rng.choice((*UNUSABLE, "529", "500", "429"))
            if fault in UNUSABLE:
                fake.inject(fault)
                unusable_served += 1
            else:
                fake.fail_next(int(fault))
        try:
            model = make_model()
            loss = batch_loss(model, questions)
            loss.backward()
            tg.TGD(model.parameters()).step()
            finished += 1
        except tg.TgMagicError as exc:
            print(f"  run {run}: {exc}")
    tg.engines.base.Engine._call = original  # type: ignore[method-assign]
    usable = fake.calls - unusable_served
    return fake.faults_injected, finished, usable - delivered


def budget_overrun(fake: FakeMessagesAPI) -> tuple[float, float, float, int]:
    """64 concurrent calls, usage 4x the text's size: (budget, spent, one call's worst, calls)."""
    import tg_magic as tg
    from tg_magic import runtime
    from tg_magic.engines import base

    fake.reset()
    fake.usage_scale = 4.0
    base.set_concurrency(64)
    budget = 0.05
    tg.set_budget(dollars=budget)
    engine = tg.get_engine(HAIKU)
    texts = [f"Explain item {i} of the list in one paragraph, please." for i in range(300)]

    async def run_all() -> list[object]:
        return await asyncio.gather(*(engine.agenerate(t) for t in texts), return_exceptions=True)

    with tg.track_usage() as used:
        runtime.run(run_all())
    tg.set_budget(None)
    worst = tg.engines.usage.price("claude-haiku-5-5", max(len(t) for t in texts) + 16, 2048)
    return budget, used.usage.cost, worst, fake.calls


def stalled(fake: FakeMessagesAPI, timeout: float) -> tuple[float, float, int, str]:
    """A request that never answers: (wall time to the one-line error, bound, attempts, line)."""
    import tg_magic as tg
    from tg_magic.config import settings
    from tg_magic.engines.base import RETRY_DELAY

    fake.reset()
    settings.request_timeout = timeout
    engine = tg.get_engine(HAIKU)
    attempts = engine.max_retries + 1
    fake.inject("stall", count=attempts)
    started = time.monotonic()
    try:
        engine.generate("Is anyone there?")
        line = "(no error)"
    except tg.EngineError as exc:
        line = str(exc)
    wall = time.monotonic() - started
    fake.release()
    settings.request_timeout = None
    backoff = sum(RETRY_DELAY * 2**i for i in range(attempts - 1))  # the engine's retry delays
    return wall, attempts * timeout + backoff + 1.0, attempts, line


THINGS = ("apple", "plum", "chair", "violin", "car", "oven", "flute", "lamp")
W8 = [
    (f"I have {n + 2} {thing}s and a bed. How many objects do I have?", str(n + 3))
    for n, thing in enumerate(THINGS)
]


def w8_with_a_stall(
    fake: FakeMessagesAPI, idle: float | None, latency: float
) -> tuple[float, float]:
    """Wall seconds of one W8 iteration (forward, backward, one TGD step) without a fault, then
    with one request whose stream stops halfway (the first one sent), every reply paid anew."""
    import tg_magic as tg
    from tests.test_core import batch_loss, make_model

    fake.reset()
    fake.latency = latency
    tg.configure(idle_timeout=idle)

    def iteration(stall: bool) -> float:
        tg.set_cache(None)
        model = make_model()
        loss = batch_loss(model, W8)
        if stall:
            fake.inject("stall_stream")
        started = time.monotonic()
        loss.backward()
        tg.TGD(model.parameters()).step()
        wall = time.monotonic() - started
        assert not stall or fake.wait_held(1, timeout=0), "the stall was not served"
        return wall

    clean = iteration(False)
    with_stall = iteration(True)
    fake.release()
    tg.configure(idle_timeout=None)
    return clean, with_stall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument(
        "--idle",
        type=float,
        default=None,
        help="idle timeout in seconds (default: 30, the setting's)",
    )
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per model call")
    args = parser.parse_args()
    with FakeMessagesAPI() as fake, tempfile.TemporaryDirectory() as folder:
        os.environ["ANTHROPIC_BASE_URL"] = fake.base_url
        os.environ["ANTHROPIC_API_KEY"] = "benchmark-key-for-the-fake-0001"
        os.environ["TG_MAGIC_CACHE"] = str(Path(folder) / "cache.sqlite")
        injected, finished, lost = faulty_runs(fake, args.runs)
        print(f"faults injected:        {injected}")
        print(f"runs finished:          {finished} of {args.runs}")
        print(f"paid replies lost:      {lost}")
        budget, spent, worst, calls = budget_overrun(fake)
        over = max(0.0, spent - budget)
        beyond = max(0.0, over - worst)
        print(
            f"budget ${budget:.4f}, spent ${spent:.4f} in {calls} calls at 64 in flight: over by "
            f"${over:.4f}; one call's worth ${worst:.4f}; beyond one call: ${beyond:.4f}"
        )
        wall, bound, attempts, line = stalled(fake, args.timeout)
        print(
            f"stalled request: failed after {wall:.2f} s ({attempts} attempts of "
            f"{args.timeout:g} s; bound {bound:.2f} s, ratio {wall / bound:.2f})"
        )
        print(f"  {line}")
        from tg_magic.engines import Engine

        idle = args.idle if args.idle is not None else Engine.default_idle_timeout
        clean, with_stall = w8_with_a_stall(fake, args.idle, args.latency)
        extra = with_stall - clean
        print(f"W8 iteration, {args.latency:g} s a call: {clean:.2f} s wall")
        print(
            f"W8 iteration with one stalled stream: {with_stall:.2f} s wall, {extra:.2f} s more; "
            f"idle timeout {idle:g} s, so {extra - idle:.2f} s beyond it (the retry)"
        )


if __name__ == "__main__":
    main()
