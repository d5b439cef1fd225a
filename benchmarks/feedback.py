"""`tg-magic feedback` over a class of N notebooks: wall time against the CPU floor.

The real command (a subprocess, sandbox on) scores N submissions (half right, half wrong, so
half of them ask the model for a hint) against four tests and a hidden one, through the real
anthropic SDK against the loopback fake Messages API with a fixed latency per call. The CPU
floor is the CPU time the whole process tree used (the command, its sandboxes) divided by the
machine's cores, or the command's own CPU time when larger (one GIL): no schedule can finish
sooner. The lanes (--jobs) keep the cores busy when the wall time is close to the floor; the
bound is 1.15 x the floor for the default lanes.

The tree's CPU time is read from a cgroup the command runs in (cgroup v1 cpuacct, or a v2
group), not from getrusage: a process in a sandbox's PID namespace is reaped inside it, and its
CPU time never reaches getrusage(RUSAGE_CHILDREN) (that undercounted the tree by more than half,
and the floor with it). Where no cgroup can be made, getrusage is used and a line says the floor
is too low. "others" is what the rest of the machine used meanwhile, in cores: the floor assumes
the cores are free.

    python benchmarks/feedback.py [--students 100] [--latency 0.05] [--jobs 4 16]
"""

from __future__ import annotations

import argparse
import contextlib
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


class _TreeCPU:
    """The CPU time of a command's whole process tree, through a cgroup it starts in."""

    def __init__(self, name: str) -> None:
        self.folder, self.file, self.scale = _cgroup_folder(name)

    def command(self, cmd: list[str]) -> list[str]:
        if self.folder is None:
            return cmd
        join = f'echo $$ > {self.folder}/cgroup.procs && exec "$@"'
        return ["/bin/sh", "-c", join, "sh", *cmd]

    def seconds(self) -> float | None:
        if self.folder is None:
            return None
        text = Path(self.folder, self.file).read_text()
        if self.file == "cpu.stat":
            text = next(line.split()[1] for line in text.splitlines() if line.startswith("usage_"))
        return int(text.split()[0]) * self.scale

    def remove(self) -> None:
        if self.folder is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)


def _cgroup_folder(name: str) -> tuple[str | None, str, float]:
    """(folder, file, seconds per unit) of a new group for the tree, or None where we may not.
    A v2 group is used only where the sandboxes hold no cgroup of their own (a process moved
    into a new v2 group could no longer make theirs, and the run would do other work)."""
    from tg_magic.sandbox import cgroups

    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for controller in names.split(","):
            own[controller] = path
    choices = [(f"/sys/fs/cgroup/cpuacct{own.get('cpuacct', '')}", "cpuacct.usage", 1e-9)]
    if "" in own and cgroups.mode() != "cgroup v2":
        choices.append((f"/sys/fs/cgroup{own['']}", "cpu.stat", 1e-6))
    for parent, file, scale in choices:
        folder = f"{parent.rstrip('/')}/{name}"
        with contextlib.suppress(OSError):
            os.mkdir(folder)
            if Path(folder, file).exists():
                return folder, file, scale
            os.rmdir(folder)
    return None, "", 0.0


def _busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / tick, sum(ticks) / tick


def one_run(
    folder: Path, fake: FakeMessagesAPI, jobs: int | None, run: int
) -> tuple[float, float, float, float, bool]:
    """(wall seconds, CPU seconds of the process tree, of the command's own process, of other
    processes on the machine, whether a cgroup counted the tree) of one `tg-magic feedback`."""
    out = folder / f"out{run}"
    cmd = [sys.executable, "-c", _MEASURED, "feedback", str(folder / "class")]
    cmd += ["--target", "median", "--tests", str(folder / "tests.py"), "--out", str(out)]
    cmd += ["--engine", "anthropic:claude-haiku-5-5"]
    cmd += ["--jobs", str(jobs)] if jobs else []
    env = {**os.environ, "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "k"}
    env["TG_MAGIC_CACHE"] = str(folder / f"cache{run}.sqlite")  # nothing answered from a cache
    tree = _TreeCPU(f"tg-bench-{os.getpid()}-{run}")
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine = _busy()
        start = time.perf_counter()
        done = subprocess.run(
            tree.command(cmd), env=env, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
        machine_after = _busy()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        counted = tree.seconds()
    finally:
        tree.remove()
    if done.returncode != 0:
        raise SystemExit(f"tg-magic feedback failed: {done.stderr[-2000:]}")
    rusage = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = rusage if counted is None else counted
    own = float(done.stderr.strip().splitlines()[-1].split()[-1])
    others = max(0.0, machine_after[0] - machine[0] - cpu)
    return wall, cpu, own, others, counted is not None


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
        head = ("lanes", "wall s", "cpu s", "own cpu", "floor s", "wall/floor", "others")
        print("{:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>10}  {:>6}".format(*head))
        verdict = 0
        uncounted = False
        for run, jobs in enumerate([None, *args.jobs]):
            wall, cpu, own, others, counted = one_run(folder, fake, jobs, run)
            uncounted = uncounted or not counted
            floor = max(cpu / cores, own)  # the command's own Python holds one GIL
            label = "default" if jobs is None else str(jobs)
            cells = (wall, cpu, own, floor)
            print(
                f"{label:>8}  " + "  ".join(f"{c:7.2f}" for c in cells)
                + f"  {wall / floor:10.2f}  {others / wall:6.2f}"
            )  # fmt: skip
            if jobs is None and wall > BOUND * floor:
                verdict = 1
        if uncounted:
            print(
                "no cgroup could count the process tree: cpu s is getrusage's, which misses "
                "the sandboxes' processes, so the floor is too low (run as root for a true one)"
            )
        state = "MISSED" if verdict else "ok"
        print(f"bound: the default lanes within {BOUND}x the floor: {state}")
    return verdict


if __name__ == "__main__":
    raise SystemExit(main())
