"""Warm sandboxes: pairs (runner + candidate) started ahead of time, each used once, then
replaced.

Nothing is shared between runs: each pair serves exactly one candidate and is killed after it.
One pair per shape is kept warm; a class's lanes ask for more while they run (`ahead`), so the
sandboxes start on a free core while the lanes wait on the model or the imports.
Pairs are started from one long-lived thread because the kernel's parent-death signal
(bubblewrap's --die-with-parent) follows the thread that started a process, not the process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
from collections.abc import Iterator
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


class Ahead:
    """Warm pairs of one shape asked for while a block runs; `want` changes how many (pairs
    already warm stay until taken)."""

    def __init__(self, pool: Pool, shape: Shape) -> None:
        self.pool, self.shape, self.count = pool, shape, 0

    def want(self, count: int) -> None:
        self.pool._want(self, count)


class Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warm: dict[Shape, list[Pair]] = {}  # the shape refilled last at the end
        self._ahead: dict[Shape, list[Ahead]] = {}  # the `ahead` blocks running
        self._wanted: queue.SimpleQueue[Shape | None] = queue.SimpleQueue()
        self._asked = 0  # requests put in _wanted and not yet handled
        self._handled = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def take(self, shape: Shape) -> Pair:
        """A fresh pair for one run: a warm one if ready (the oldest), else one started now."""
        with self._lock:
            pairs = self._warm.get(shape)
            pair = pairs.pop(0) if pairs else None
            self._ensure_thread()
            self._asked += 1
        self._wanted.put(shape)
        return pair if pair is not None else start_pair(shape)

    def _depth(self, shape: Shape) -> int:
        return max([1, *(block.count for block in self._ahead.get(shape, ()))])

    @contextlib.contextmanager
    def ahead(self, shape: Shape, count: int) -> Iterator[Ahead]:
        """Keep `count` pairs of `shape` warm while the block runs; then end the spares (one
        stays warm, as always)."""
        block = Ahead(self, shape)
        with self._lock:
            self._ahead.setdefault(shape, []).append(block)
        block.want(count)
        try:
            yield block
        finally:
            with self._lock:
                self._ahead[shape].remove(block)
                if not self._ahead[shape]:
                    del self._ahead[shape]
                    pairs = self._warm.get(shape, [])
                    spare, pairs[1:] = pairs[1:], []
                else:
                    spare = []
            for pair in spare:
                pair.end()

    def _want(self, block: Ahead, count: int) -> None:
        with self._lock:
            block.count = count
            missing = self._depth(block.shape) - len(self._warm.get(block.shape, ()))
            missing = max(0, missing) if count > 0 else 0  # nothing more to run: none started
            if missing:
                self._ensure_thread()
                self._asked += missing
        for _ in range(missing):
            self._wanted.put(block.shape)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._fill, name="tg-sandbox-pool", daemon=True)
            self._thread.start()

    def wait_filled(self, timeout: float | None = None) -> bool:
        """Wait until every pair asked for so far has been started (or found not needed)."""
        with self._handled:
            return self._handled.wait_for(lambda: self._asked == 0, timeout)

    def _fill(self) -> None:
        while True:
            shape = self._wanted.get()
            if shape is None:
                return
            try:
                self._fill_one(shape)
            finally:
                with self._handled:
                    self._asked -= 1
                    self._handled.notify_all()

    def _fill_one(self, shape: Shape) -> None:
        with self._lock:
            if len(self._warm.get(shape, ())) >= self._depth(shape):
                return
        try:
            pair = start_pair(shape)
        except OSError:
            return
        with self._lock:
            pairs = [*self._warm.pop(shape, []), pair]
            keep = len(pairs) if shape in self._ahead else 1  # an `ahead` may have ended
            self._warm[shape], dropped = pairs[:keep], pairs[keep:]
            extra = [s for s in list(self._warm)[:-_WARM_SHAPES] if s not in self._ahead]
            dropped += [p for s in extra for p in self._warm.pop(s)]
        for old in dropped:
            old.end()

    def close(self) -> None:
        """End every warm pair (at exit, and in tests that count processes)."""
        with self._lock:
            pairs = [p for shape_pairs in self._warm.values() for p in shape_pairs]
            self._warm.clear()
        for pair in pairs:
            pair.end()


pool = Pool()
atexit.register(pool.close)
