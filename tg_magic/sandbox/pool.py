"""Warm sandboxes: a pair (runner + candidate) started ahead of time, used once, then replaced.

Nothing is shared between runs: each pair serves exactly one candidate and is killed after it.
Pairs are started from one long-lived thread because the kernel's parent-death signal
(bubblewrap's --die-with-parent) follows the thread that started a process, not the process.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from dataclasses import dataclass

from .process import Child, Shape, start

_WARM_SHAPES = 2  # how many different limit settings keep a warm pair


@dataclass
class Pair:
    runner: Child
    candidate: Child
    report_fd: int

    def end(self) -> None:
        self.candidate.end()
        self.runner.end()
        fd, self.report_fd = self.report_fd, -1
        if fd >= 0:
            os.close(fd)


def start_pair(shape: Shape) -> Pair:
    """Two children joined by call pipes; only the runner holds the report pipe's write end."""
    to_candidate = os.pipe()
    to_runner = os.pipe()
    report = os.pipe()
    try:
        candidate = start("candidate", [to_candidate[0], to_runner[1]], shape)
        try:
            runner = start("runner", [to_candidate[1], to_runner[0], report[1]], shape)
        except BaseException:
            candidate.end()
            raise
    except BaseException:
        os.close(report[0])
        raise
    finally:
        for fd in (*to_candidate, *to_runner, report[1]):
            os.close(fd)
    return Pair(runner, candidate, report[0])


class Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warm: dict[Shape, Pair] = {}
        self._wanted: queue.SimpleQueue[Shape | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def take(self, shape: Shape) -> Pair:
        """A fresh pair for one run: the warm one if ready, else one started now."""
        with self._lock:
            pair = self._warm.pop(shape, None)
            self._ensure_thread()
        self._wanted.put(shape)
        return pair if pair is not None else start_pair(shape)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._fill, name="tg-sandbox-pool", daemon=True)
            self._thread.start()

    def _fill(self) -> None:
        while True:
            shape = self._wanted.get()
            if shape is None:
                return
            with self._lock:
                if shape in self._warm:
                    continue
            try:
                pair = start_pair(shape)
            except OSError:
                continue
            with self._lock:
                self._warm[shape] = pair
                extra = list(self._warm)[:-_WARM_SHAPES]
                dropped = [self._warm.pop(s) for s in extra]
            for old in dropped:
                old.end()

    def close(self) -> None:
        """End every warm pair (at exit, and in tests that count processes)."""
        with self._lock:
            pairs = list(self._warm.values())
            self._warm.clear()
        for pair in pairs:
            pair.end()


pool = Pool()
atexit.register(pool.close)
