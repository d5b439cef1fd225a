"""What `%load_ext tg_magic` adds to a bare IPython start (target: at most 0.3 s).

Both are measured in fresh processes, alternated, in the same run; the figures are medians.

    python benchmarks/load_ext.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BARE = "from IPython.core.interactiveshell import InteractiveShell as S; S.instance()"
LOADED = BARE + ".run_line_magic('load_ext', 'tg_magic')"


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    timed(LOADED)  # warm the file cache
    bare, loaded = [], []
    for _ in range(args.runs):
        bare.append(timed(BARE))
        loaded.append(timed(LOADED))
    b, lo = statistics.median(bare), statistics.median(loaded)
    print(f"IPython start, bare            {b:.3f} s (median of {args.runs})")
    print(f"IPython start + load_ext       {lo:.3f} s")
    print(f"added by %load_ext tg_magic    {lo - b:.3f} s   (bound 0.300 s: {(lo - b) / 0.3:.2f}x)")


if __name__ == "__main__":
    main()
