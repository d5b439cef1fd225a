"""`tg-magic feedback` over a class of N notebooks: wall time against the CPU floor.

The real command (a subprocess, sandbox on) scores N submissions (half right, half wrong, so
half of them ask the model for a hint) against four tests and a hidden one, through the real
anthropic SDK against the loopback fake Messages API with a fixed latency per call. The CPU
floor is the CPU time the whole process tree used (the command, its sandboxes) divided by the
machine's cores: no schedule can finish sooner. The lanes (--jobs) keep the cores busy when the
wall time is close to the floor; the bound is 1.15 x the floor for the default lanes.

    python benchmarks/feedback.py [--students 100] [--latency 0.05] [--jobs 4 16]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_api import FakeMessagesAPI

BOUND = 1.15
TESTS = """
def test_odd():
    assert median([3, 1, 2]) == 2


def test_even():
    assert median([4, 1, 3, 2]) == 2.5


def test_single():
    assert median([7]) == 7


def test_unchanged():
    values = [3, 1, 2]
    median(values)
    assert values == [3, 1, 2]


# hidden, 2 points
def test_five():
    assert median([5, 3, 9, 1, 7]) == 5
"""
RIGHT = (
    "def median(values):\n    s = sorted(values)\n    m = len(s) // 2\n"
    "    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2\n"
)
WRONG = "def median(values):\n    return sorted(values)[len(values) // 2]  # student {n}\n"


def make_class(folder: Path, students: int) -> None:
    import nbformat

    for n in range(students):
        code = RIGHT if n % 2 else WRONG.format(n=n)
        cell = nbformat.v4.new_code_cell("%%tgvariable median --kind code\n" + code)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Median"), cell])
        nbformat.write(nb, folder / f"student{n:03d}.ipynb")


# The command as `tg-magic` runs it, printing at exit the CPU time of its own process (all its
# threads: what the GIL serializes) on the last line of stderr.
_MEASURED = (
    "import atexit, resource, sys\n"
    "def said():\n"
    "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    print(f'self-cpu {u.ru_utime + u.ru_stime}', file=sys.stderr)\n"
    "atexit.register(said)\n"
    "from tg_magic.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def one_run(
    folder: Path, fake: FakeMessagesAPI, jobs: int | None, run: int
) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the process tree, of the command's own process) of one
    `tg-magic feedback`."""
    out = folder / f"out{run}"
    cmd = [sys.executable, "-c", _MEASURED, "feedback", str(folder / "class")]
    cmd += ["--target", "median", "--tests", str(folder / "tests.py"), "--out", str(out)]
    cmd += ["--engine", "anthropic:claude-haiku-5-5"]
    cmd += ["--jobs", str(jobs)] if jobs else []
    env = {**os.environ, "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "k"}
    env["TG_MAGIC_CACHE"] = str(folder / f"cache{run}.sqlite")  # nothing answered from a cache
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"tg-magic feedback failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    own = float(done.stderr.strip().splitlines()[-1].split()[-1])
    return wall, cpu, own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--jobs", type=int, nargs="*", default=[4, 16], help="lanes to compare")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp, FakeMessagesAPI() as fake:
        folder = Path(tmp)
        (folder / "class").mkdir()
        make_class(folder / "class", args.students)
        (folder / "tests.py").write_text(TESTS)
        fake.latency = args.latency
        fake.add_rule("is learning", "Look at the middle of an even-length list.")
        fake.add_rule("write the answer without thinking", "VERDICT: KEEP")
        load = os.getloadavg()[0]  # other work on the machine: the floor assumes free cores
        print(
            f"{args.students} notebooks, {cores} cores (load average {load:.1f} before), "
            f"{args.latency:g} s per model call"
        )
        head = ("lanes", "wall s", "cpu s", "own cpu", "floor s", "wall/floor")
        print("{:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>10}".format(*head))
        verdict = 0
        for run, jobs in enumerate([None, *args.jobs]):
            wall, cpu, own = one_run(folder, fake, jobs, run)
            floor = max(cpu / cores, own)  # the command's own Python holds one GIL
            label = "default" if jobs is None else str(jobs)
            cells = (wall, cpu, own, floor, wall / floor)
            print(
                f"{label:>8}  " + "  ".join(f"{c:7.2f}" for c in cells[:4]) + f"  {cells[4]:10.2f}"
            )
            if jobs is None and wall > BOUND * floor:
                verdict = 1
        state = "MISSED" if verdict else "ok"
        print(f"bound: the default lanes within {BOUND}x the floor: {state}")
    return verdict


if __name__ == "__main__":
    raise SystemExit(main())
