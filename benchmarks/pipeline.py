"""One training iteration of a two-call chain program, measured against its critical path.

`tg.optimize(program=pipeline, ...)` over B counting questions (examples/data/train.jsonl), where
pipeline(q) = tg.llm(answer, tg.llm(extract, q)): forward (two chained calls per example), the
metric, backward through the chain and one TGD step, through the real anthropic SDK against the
loopback fake Messages API with a fixed latency per call. DESIGN.md ("Backward is a scheduler")
promises about (depth) latencies per iteration, not a cost that grows with B; this checks it.

The critical path comes from the fake's log, not from an assumed depth: every reply is numbered
("[reply N] ..."), so a request that quotes reply N had to wait for it. A request's level is one
more than the highest level it quotes; the deepest level times the latency is the bound. The
observed depth (the longest chain of requests each sent after the previous one's reply) shows
how many rounds the schedule took: more than the bound's depth means avoidable waiting.

    python benchmarks/pipeline.py [--batch 8] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_api import FakeMessagesAPI, default_reply, request_text

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"\[reply (\d+)\]")
Logged = tuple[float, float, str, int]  # arrival, reply sent, request text, reply number


class TimedFake(FakeMessagesAPI):
    """The fake, numbering every reply and logging when each request came and was answered."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Logged] = []
        self._arrival = threading.local()
        self._numbers = itertools.count()

    def numbered(self, body: dict[str, Any], text: str) -> str:
        return f"[reply {next(self._numbers)}] {default_reply(body, text)}"

    def _handle(self, handler: Any, method: str) -> None:
        self._arrival.at = time.perf_counter()
        super()._handle(handler, method)

    def _respond(self, handler: Any, body: Any, result: Any, headers: Any = None) -> None:
        super()._respond(handler, body, result, headers)
        self._logged(body, result)

    def _respond_stream(self, handler: Any, body: Any, stream: Any, headers: Any) -> None:
        super()._respond_stream(handler, body, stream, headers)  # the engines stream
        self._logged(body, stream.message)

    def _logged(self, body: Any, result: Any) -> None:
        if isinstance(result, dict) and result.get("content"):
            number = TAG.match(result["content"][0]["text"])
            if number:
                sent = (self._arrival.at, time.perf_counter(), request_text(body), int(number[1]))
                with self._lock:
                    self.log.append(sent)


def levels(log: list[Logged]) -> dict[int, int]:
    """Each reply's level: 1 + the highest level among the replies its request quotes."""
    ended = {n: end for _, end, _, n in log}
    level: dict[int, int] = {}
    for start, _, text, n in sorted(log):
        quoted = {int(k) for k in TAG.findall(text)}
        assert all(ended[k] <= start for k in quoted), f"reply {n} quotes a reply not yet sent"
        level[n] = 1 + max((level[k] for k in quoted), default=0)
    return level


def observed_depth(log: list[Logged]) -> int:
    """The longest chain of requests each sent after the previous one was answered."""
    chain: list[tuple[float, int]] = []  # (reply time, chain length ending there)
    for start, end, _, _ in sorted(log):
        chain.append((end, 1 + max((d for e, d in chain if e <= start), default=0)))
    return max(d for _, d in chain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    os.environ["TG_MAGIC_CACHE"] = "off"
    os.environ["TG_MAGIC_ENGINE"] = "anthropic:claude-haiku-5-5"

    with TimedFake() as fake:
        os.environ["ANTHROPIC_BASE_URL"] = fake.base_url
        os.environ["ANTHROPIC_API_KEY"] = "benchmark-key-for-the-loopback-server"
        import tg_magic as tg
        from tg_magic.data import Example

        tg.get_engine("anthropic:claude-haiku-5-5").generate("warm up: import the SDK")
        fake.reset()
        fake.log.clear()
        fake.add_rule("", fake.numbered)
        fake.latency = args.latency

        rows = (ROOT / "examples/data/train.jsonl").read_text().splitlines()[: args.batch]
        examples = [Example(r["input"], r["target"]) for r in map(json.loads, rows)]
        extract = tg.Variable("List each item and its count.", role_description="extraction prompt")
        answer = tg.Variable("Answer with the total as a number.", role_description="answer prompt")

        def pipeline(question: str) -> Any:
            items = tg.llm(extract, question)
            return tg.llm(answer, items)

        start = time.perf_counter()
        run = tg.optimize(
            program=pipeline, data=examples, metric="number", steps=1, batch_size=args.batch
        )
        results = list(run)
        wall = time.perf_counter() - start

    log = sorted(fake.log)
    level = levels(log)
    depth = max(level.values())
    bound = depth * args.latency
    ratio = wall / bound
    result = results[-1]
    print(f"pipeline iteration: B={len(examples)}, two chained calls, {args.latency:.3f} s/call")
    print(f"  score {result.score}, changed {[p.after != p.before for p in result.proposals]}")
    print(f"  requests           {len(fake.requests)} ({fake.calls} model calls answered)")
    print(f"  peak concurrency   {fake.max_concurrency}")
    print(f"  calls per level    {dict(sorted(Counter(level.values()).items()))}")
    for k in range(1, depth + 1):
        spans = [(s - start, e - start) for s, e, _, n in log if level[n] == k]
        sent = f"{min(s for s, _ in spans):6.3f} .. {max(s for s, _ in spans):6.3f}"
        print(f"    level {k}: sent {sent} s, last reply {max(e for _, e in spans):6.3f} s")
    print(f"  observed depth     {observed_depth(log)} rounds of calls")
    print(f"  wall time          {wall:.3f} s")
    print(f"  critical path      {depth} levels x {args.latency:.3f} s = {bound:.3f} s")
    print(f"  ratio wall/path    {ratio:.2f}   (bound 1.25)  {'PASS' if ratio <= 1.25 else 'FAIL'}")


if __name__ == "__main__":
    main()
