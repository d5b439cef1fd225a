"""Large batches against their floor: one W8 iteration at B = 1, 8, 64, 256, with no rate limit
and under per-minute limits that bind (requests, then input tokens), in one run.

Each iteration (benchmarks/iteration.py: B counting questions, the exact-match loss, backward
and one TGD step) goes through the real anthropic SDK to the loopback fake with a fixed latency
per call, with tg-magic's default settings, its connections already open (a warm run first).
The fake runs in a process of its own (the provider's work is not the client's).

- The critical path is read from the fake's log (benchmarks/pipeline.py: every reply numbered,
  a request quoting reply N waited for it), in a run of its own: numbered replies are all
  different, so that run has no identical requests for single flight to share.
- Without a limit the bound is that critical path, from three paces: a new account (nothing
  learned: the first round goes at the `concurrency` setting), a new process (the cap its
  account's last process reached, kept by engines/pace_memory.py), and the next iteration of a
  training run (the pace the last one left).
- The SDK alone: the same requests (the numbered run's, level by level) sent through the bare
  anthropic SDK with nothing of tg-magic, each level at once after the one before: what the
  client's own CPU costs at this latency, in the same run, beside the critical path.
- Under a limit of L a minute, chosen so that the iteration needs about --floor seconds more
  than a minute's allowance, the bound is the limit's floor: (what the run used - L) / (L per
  minute) plus the last call's latency (or the critical path, if longer).

Prints wall time, calls, 429s, peak concurrency and the ratio to the bound; with
--textgrad-venv, TextGrad's figures for the same iteration (its own Claude client, against the
same fake, which then takes the temperature and top_p TextGrad sends: TextGrad 0.1.8 passes
them to `messages.create`, so its venv needs an anthropic SDK that still takes them, <1).

    python benchmarks/scale.py [--batches 1,8,64,256] [--latency 0.2] [--floor 15]
                               [--no-limits] [--textgrad-venv PATH] [--textgrad-batches 1,8,64]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from iteration import counting_questions, iteration  # noqa: E402
from pipeline import TimedFake, levels  # noqa: E402

MODEL = "claude-haiku-5-5"
NO_LIMIT, UNDER_LIMIT = 1.3, 1.15  # the bounds: to the critical path, to a limit's floor


@dataclass
class Run:
    label: str
    wall: float
    calls: int
    refused: int
    peak: int
    used: dict[str, int]
    error: str = ""


class Fake(TimedFake):
    """The timed fake; for TextGrad's client, which sends `temperature` and `top_p` (the fake
    refuses them, as tg-magic must never send them), it takes and ignores them."""

    sampling_ok = False

    def _process(self, method: str, path: str, headers: Any, body: Any, bad: bool) -> Any:
        if self.sampling_ok and isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in ("temperature", "top_p")}
        return super()._process(method, path, headers, body, bad)


class Provider:
    """The fake, served from a process of its own: the provider's work is not the client's, and
    on a 2-core machine its 256 request threads would otherwise share the client's core and
    lock. The benchmark steers it through a multiprocessing manager."""

    def __init__(self) -> None:
        self.fake = Fake()
        self.fake.start()

    def base_url(self) -> str:
        return self.fake.base_url

    def fresh(self, latency: float, limit: dict[str, int], numbered: bool, sampling: bool) -> None:
        """The fake as at the start of a run."""
        fake = self.fake
        fake.reset()
        fake.log.clear()
        if numbered:
            fake.add_rule("", fake.numbered)
        fake.latency = latency
        fake.sampling_ok = sampling
        if limit:
            fake.set_limits(**limit, window=60.0)

    def by_level(self) -> list[list[str]]:
        """The last (numbered) run's request texts, level by level."""
        log = sorted(self.fake.log)
        level = levels(log)
        texts: list[list[str]] = [[] for _ in range(max(level.values(), default=0))]
        for _, _, text, number in log:
            texts[level[number] - 1].append(text)
        return texts

    def stats(self) -> dict[str, Any]:
        """The last run as the fake saw it."""
        fake = self.fake
        used = fake.rate_limits.used if fake.rate_limits else {"input-tokens": input_tokens(fake)}
        depth = max(levels(sorted(fake.log)).values(), default=0)
        return {
            "calls": fake.calls,
            "refused": fake.rate_limited,
            "peak": fake.max_concurrency,
            "used": dict(used),
            "depth": depth,
        }


class Manager(BaseManager):
    pass


Manager.register("Provider", Provider)


def ours(
    provider: Any,
    batch: int,
    latency: float,
    limit: dict[str, int],
    *,
    numbered: bool = False,
    pace: str = "new account",
) -> Run:
    """One iteration, from the pace of `pace`: "new account" (nothing learned: the cap at the
    `concurrency` setting), "new process" (the cap its account's last process reached, as
    engines/pace_memory.py keeps it), or "next iteration" (the pace the last run left)."""
    import tg_magic as tg
    from tg_magic.engines import pace_memory, pacing

    engine = tg.get_engine(f"anthropic:{MODEL}")
    provider.fresh(latency, limit, numbered, False)
    if pace != "next iteration":
        pacing.forget()  # remembers the cap, as the end of a process does
    if pace == "new account":
        memory = pace_memory.path()
        if memory is not None:
            memory.unlink(missing_ok=True)
    start = time.perf_counter()
    error = ""
    try:
        iteration(tg, engine, counting_questions(batch))
    except tg.TgMagicError as exc:
        error = str(exc)
    wall = time.perf_counter() - start
    found = provider.stats()
    label = "no limit"
    if limit:
        (name, allowance), *_ = limit.items()
        label = f"{allowance:,} {name.replace('_', ' ')} a minute"
    used = found["used"]
    return Run(label, wall, found["calls"], found["refused"], found["peak"], used, error)


def sdk_alone(provider: Any, latency: float, texts: list[list[str]]) -> float:
    """Seconds the bare anthropic SDK (its aiohttp client, connections open, nothing of
    tg-magic's) takes to send the same requests, each level at once after the one before: the
    floor the client's own CPU sets at this latency, measured in the same run."""
    import anthropic
    import httpx2

    provider.fresh(latency, {}, False, False)

    async def levels_in_turn() -> float:
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000)
        client = anthropic.AsyncAnthropic(http_client=anthropic.DefaultAioHttpClient(limits=limits))

        async def one(text: str) -> None:
            message = [{"role": "user", "content": text}]
            stream = await client.messages.create(
                model=MODEL,
                max_tokens=2048,
                messages=message,
                stream=True,  # type: ignore[arg-type]
            )
            async for _ in stream:
                pass

        async with client:
            widest = max(texts, key=len)
            await asyncio.gather(*(one(t) for t in widest))  # open the connections
            start = time.perf_counter()
            for level in texts:
                await asyncio.gather(*(one(t) for t in level))
            return time.perf_counter() - start

    return asyncio.run(levels_in_turn())


def input_tokens(fake: Fake) -> int:
    """The input tokens of the last run's Messages requests, as the fake's limits count them."""
    from tests.fake_api import _tokens, request_text

    bodies = [
        r["body"] for r in fake.requests if r["status"] == 200 and r["path"] == "/v1/messages"
    ]
    return sum(_tokens(len(request_text(b))) for b in bodies)


TEXTGRAD = """
import json, sys, time
sys.path[:0] = {paths!r}
import textgrad as tg
from textgrad.autograd import StringBasedFunction
from iteration import counting_questions, iteration
tg.StringBasedFunction = StringBasedFunction  # tg_magic names it at the top, as iteration does
engine = tg.get_engine("{model}")
start = time.perf_counter()
error = ""
try:
    iteration(tg, engine, counting_questions({batch}))
except Exception as exc:
    error = f"{{type(exc).__name__}}: {{exc}}"[:200]
print(json.dumps({{"wall": time.perf_counter() - start, "error": error}}))
"""


def theirs(provider: Any, venv: Path, batch: int, latency: float) -> Run:
    """The same iteration in TextGrad (its venv's python, its own Claude engine and cache)."""
    provider.fresh(latency, {}, False, True)
    script = TEXTGRAD.format(paths=[str(HERE.parent), str(HERE)], model=MODEL, batch=batch)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache, "ANTHROPIC_BASE_URL": provider.base_url()}
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", script], env=env, capture_output=True, text=True
        )
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"wall": 0.0, "error": done.stderr[-200:]}
    found = provider.stats()
    calls, refused, peak = found["calls"], found["refused"], found["peak"]
    return Run("TextGrad", result["wall"], calls, refused, peak, {}, result["error"])


def show(batch: int, run: Run, bound: float, what: str, target: float | None) -> None:
    ratio = run.wall / bound
    verdict = "" if target is None or run.error else ("PASS" if ratio <= target else "FAIL")
    aim = f" (<= {target})" if target else ""
    print(
        f"  B={batch:<4} {run.label:<34} {run.wall:7.2f} s {run.calls:5} calls {run.refused:4} "
        f"429s  peak {run.peak:4}  ratio {ratio:5.2f} to {what} {bound:.2f} s{aim} {verdict}"
    )
    if run.error:
        print(f"        failed: {run.error[:160]}")


def floor(run: Run, limit: dict[str, int], latency: float, path: float) -> tuple[float, str]:
    """The limit's floor: what the run used beyond a minute's allowance, at the allowance a
    minute, and the last call; or the critical path if that is longer."""
    (name, allowance), *_ = limit.items()
    used = run.used[name.replace("_", "-")]
    seconds = max(0, used - allowance) * 60.0 / allowance + latency
    return (seconds, f"the floor ({used:,} used)") if seconds > path else (path, "critical path")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,64,256")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per model call")
    parser.add_argument("--floor", type=float, default=15.0, help="seconds a limit should cost")
    parser.add_argument("--no-limits", action="store_true", help="only the runs without a limit")
    parser.add_argument("--textgrad-venv", type=Path, help="a venv with textgrad installed")
    parser.add_argument("--textgrad-batches", default="1,8,64")
    args = parser.parse_args()

    with Manager() as manager, tempfile.TemporaryDirectory() as folder:
        provider = manager.Provider()  # type: ignore[attr-defined]
        os.environ["ANTHROPIC_BASE_URL"] = provider.base_url()
        os.environ["ANTHROPIC_API_KEY"] = "benchmark-key-for-the-loopback-server"
        import tg_magic as tg

        runs = itertools.count()

        def run(*a: Any, **k: Any) -> Run:
            # A reply cache of its own for each run: no reply ever comes from a cache, while
            # the pace's memory (beside it, in `folder`) stays.
            tg.set_cache(Path(folder) / f"replies-{next(runs)}.sqlite")
            return ours(provider, *a, **k)

        tg.set_cache(Path(folder) / "warm-up.sqlite")
        tg.get_engine(f"anthropic:{MODEL}").generate("warm up: import the SDK")
        print(f"W8 iterations, {args.latency:g} s a call, default settings", end=" ")
        print(
            f"(concurrency {tg.settings.concurrency}, max_concurrency "
            f"{tg.settings.max_concurrency}); the fake in a process of its own"
        )
        for batch in map(int, args.batches.split(",")):
            run(batch, args.latency, {}, numbered=True)
            depth = provider.stats()["depth"]
            path, what = depth * args.latency, f"critical path ({depth} levels)"
            alone = sdk_alone(provider, args.latency, provider.by_level())
            free = run(batch, args.latency, {})  # warm, and what a run needs
            for pace in ("new account", "new process", "next iteration"):
                one = run(batch, args.latency, {}, pace=pace)
                one.label = f"no limit, {pace}"
                show(batch, one, path, what, NO_LIMIT)
            print(
                f"  B={batch:<4} {'the SDK alone, level after level':<34} {alone:7.2f} s"
                f"{'':38}ratio {alone / path:5.2f} to the critical path; the last iteration "
                f"{one.wall / alone:.2f}x it"
            )
            if args.no_limits:
                continue
            needs = {"requests": free.calls, "input_tokens": free.used["input-tokens"]}
            for name, need in needs.items():
                # L a minute such that (need - L) / (L a minute) is about --floor seconds
                limit = {name: max(1, int(need * 60 / (60 + args.floor)))}
                limited = run(batch, args.latency, limit)
                show(batch, limited, *floor(limited, limit, args.latency, path), UNDER_LIMIT)
        if args.textgrad_venv:
            print("TextGrad, the same iterations without a limit:")
            for batch in map(int, args.textgrad_batches.split(",")):
                run(batch, args.latency, {}, numbered=True)
                depth = provider.stats()["depth"]
                done = theirs(provider, args.textgrad_venv, batch, args.latency)
                show(batch, done, depth * args.latency, f"critical path ({depth} levels)", None)


if __name__ == "__main__":
    main()
