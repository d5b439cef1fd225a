"""How many llama.cpp threads the embedded model should use: the cores that other processes leave
free, measured when the model loads and again while it generates.

llama.cpp's threads spin at every barrier, so a thread that shares its core with another busy
process stalls all the others: measured on 2 cores busy with other work, 2 threads made 1.5-9
tokens/s and 1 thread 14-32. On 2 idle cores, 2 threads evaluate prompts 2x as fast as 1, decode
8 sequences at once 1.7x, a lone one 1.2x. So a core counts as free only while other processes
leave nearly all of it unused. A wide step does not change this: with one core busy, a step of 8
tokens took 145 ms on 2 threads against 49 ms on 1, so the count does not follow the step's width.
A reply does not depend on the thread count (local_batch.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InputError

THREADS_ENV = "TG_MAGIC_LOCAL_THREADS"
# A core is used when other processes take at most this much of it (a notebook server's or the
# kernel's occasional work fits; another CPU-bound process does not).
SLACK = 0.25
# Seconds of the first reading, taken once when the model loads.
FIRST_WINDOW = 0.1
# Seconds between readings while generating (the window is the time since the last reading).
ADAPT_EVERY = 0.5


def cores() -> int:
    """The cores this process may run on (a container's or a taskset's, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def override() -> int | None:
    """TG_MAGIC_LOCAL_THREADS, when set: a fixed thread count that is never adapted."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if not env:
        return None
    if not env.isdigit() or int(env) < 1:
        raise InputError(f"{THREADS_ENV}={env!r}: set it to a whole number of threads, e.g. 1")
    return int(env)


def choose(available: int, others: float) -> int:
    """Threads for `available` cores of which other processes keep `others` cores' worth busy."""
    return max(1, min(available, math.floor(available - others + SLACK)))


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds used so far by the whole machine (None where /proc/stat is missing) and by
    this process, at a monotonic time."""

    machine: float | None
    own: float
    at: float


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: steal is time the hypervisor gave away
    values = [int(v) for v in fields[1:9]]
    busy = sum(values) - values[3] - values[4]
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_times() -> CpuTimes:
    t = os.times()
    return CpuTimes(_machine_busy_seconds(), t.user + t.system, time.monotonic())


def others_busy(before: CpuTimes, after: CpuTimes) -> float | None:
    """Cores' worth of CPU that other processes used between two readings (None: unknown)."""
    if before.machine is None or after.machine is None or after.at <= before.at:
        return None
    machine = after.machine - before.machine
    own = after.own - before.own
    return max(0.0, (machine - own) / (after.at - before.at))


class LoadProbe:
    """Readings of the other processes' CPU use, each over the time since the previous one.
    Tests replace it with a callable giving fixed readings (no timers)."""

    def __init__(self) -> None:
        self._last = cpu_times()

    def __call__(self) -> float | None:
        now = cpu_times()
        busy = others_busy(self._last, now)
        self._last = now
        return busy


def first_reading(probe: Callable[[], float | None]) -> float | None:
    """The load when the model loads: a short window, since nothing of ours is running yet (an
    injected probe answers at once)."""
    if isinstance(probe, LoadProbe):
        time.sleep(FIRST_WINDOW)
    return probe()


def initial(probe: Callable[[], float | None]) -> int:
    """The thread count for a model loaded now: TG_MAGIC_LOCAL_THREADS, else from the load."""
    fixed = override()
    return fixed if fixed is not None else threads_for(first_reading(probe))


def threads_for(others: float | None, available: int | None = None) -> int:
    """The thread count for a reading; without one (no /proc/stat), the load average stands in,
    and without that, one core is left to the rest of the machine on small machines."""
    n = cores() if available is None else available
    if others is None:
        try:
            others = os.getloadavg()[0]
        except OSError:
            return n if n > 4 else max(1, n - 1)
    return choose(n, others)
