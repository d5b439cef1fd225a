"""Cost of one sandboxed test run, against the 150 ms bound of issue 10.

Measures, on this machine: the cold start (no warm pair ready), the warm runs of a small
function against three asserts (each run a fresh candidate, no result cache hit), spaced as an
optimizer spaces them and back to back, and the time run_tests takes to clean up a fork bomb
after its timeout.

    python benchmarks/sandbox.py [--runs 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tg_magic.sandbox import containment, run_tests
from tg_magic.sandbox.pool import pool

BOUND = 0.150  # seconds, median per warm run
TESTS = "assert add(1, 2) == 3\nassert add(-1, -1) == -2\nassert add(0, 0) == 0\n"
BOMB = (
    "import os\n\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n"
    "        except OSError:\n            pass\n"
)


def code(i: int) -> str:
    return f"def add(a, b):\n    return a + b  # candidate {i}\n"


def timed(i: int) -> float:
    start = time.perf_counter()
    report = run_tests(code(i), TESTS)
    elapsed = time.perf_counter() - start
    assert report.score == 1.0, report.text()
    return elapsed


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def line(name: str, values: list[float]) -> None:
    median = statistics.median(values)
    print(
        f"{name:<26} median {median * 1000:6.1f} ms  p95 {p95(values) * 1000:6.1f} ms  "
        f"median/bound {median / BOUND:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    print(containment())
    pool.close()
    cold = timed(-1)
    print(f"{'cold start':<26} {cold * 1000:6.1f} ms  cold/bound {cold / BOUND:.2f}")

    spaced = []
    for i in range(args.runs):
        time.sleep(0.1)  # the optimizer's own work between two runs
        spaced.append(timed(i))
    line("warm, spaced by 100 ms", spaced)
    back_to_back = [timed(10_000 + i) for i in range(args.runs)]
    line("warm, back to back", back_to_back)

    start = time.perf_counter()
    cached = run_tests(code(0), TESTS)
    print(f"{'cache hit':<26} {(time.perf_counter() - start) * 1000:6.2f} ms  ({cached.status})")

    timeout = 2.0
    start = time.perf_counter()
    bomb = run_tests(BOMB, TESTS, timeout=timeout)
    cleanup = time.perf_counter() - start - timeout
    print(
        f"{'fork bomb':<26} {bomb.problem}; cleaned up {cleanup * 1000:.0f} ms after the "
        f"timeout (cleanup/bound {cleanup / BOUND:.2f})"
    )
    pool.close()


if __name__ == "__main__":
    main()
