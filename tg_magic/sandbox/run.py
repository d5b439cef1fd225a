"""run_tests: one candidate against one test cell, in a fresh sandbox pair, with a deadline.

The parent only ferries the two jobs in, drains bounded output, and reads the runner's report
pipe; the verdict is what the runner (which never runs the candidate's code) wrote there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict

from .. import pysource
from . import cgroups
from .containment import (
    Limits,
    SandboxUnavailable,
    bwrap_path,
    host_folders_shown,
    unavailable_reason,
)
from .judge import FLOOD_FACTOR, Run, judge
from .pool import Pair, pool
from .process import Shape
from .report import TestReport
from .wire import MAX_MESSAGE

_CACHE_SIZE = 256
_cache: OrderedDict[str, TestReport] = OrderedDict()
_cache_lock = threading.Lock()


def containment(allow_unsandboxed: bool = False) -> str:
    """One line: how runs are contained on this machine, and what is not."""
    tree = cgroups.mode()
    limits = (
        f"{tree} limits memory and processes of the whole tree"
        if tree
        else "rlimits limit memory per process and the process count (no writable cgroup)"
    )
    if bwrap_path():
        shown = host_folders_shown()
        where = (
            f"; the runtime's host folders show in /proc/self/mountinfo ({shown})" if shown else ""
        )
        return (
            "bubblewrap: only the Python runtime (read-only) and a private scratch folder, "
            f"/tmp and /dev/shm; no network, no other processes; {limits}{where}"
        )
    why = unavailable_reason()
    if not allow_unsandboxed:
        return f"no sandbox: {why}"
    return (
        "NOT CONTAINED (unsandboxed run allowed): the code can read your files, use the network "
        f"and signal your processes; {limits}, time and output are limited"
    )


@contextlib.contextmanager
def ahead(count: int, *, allow_unsandboxed: bool = False) -> Iterator[Callable[[int], None]]:
    """Keep `count` sandboxes warm for the runs of this block (run_tests with the default
    limits), started on a free core while the caller does other work: a class's lanes. Yields
    a function that changes the count (a class near its end wants fewer)."""
    bwrap = bwrap_path()
    from ..config import RUN_UNSANDBOXED

    if bwrap is None and (not allow_unsandboxed or RUN_UNSANDBOXED is False):
        yield lambda count: None  # run_tests refuses these runs: nothing to start
        return
    with pool.ahead(Shape.of(Limits(), bwrap), count) as block:
        yield block.want


def _syntax_line(exc: SyntaxError | ValueError) -> str:
    if isinstance(exc, SyntaxError):
        return f"line {exc.lineno}: {exc.msg}"
    return str(exc)


def run_tests(
    code: str,
    tests: str,
    *,
    timeout: float = 20.0,
    memory_mb: int = 1024,
    output_limit: int = 20_000,
    processes: int = 64,
    disk_mb: int = 64,
    allow_unsandboxed: bool = False,
) -> TestReport:
    """Run the test cell against the code; each top-level assert or test_* function is a test.

    Raises ValueError when the test cell does not parse, and SandboxUnavailable when bubblewrap
    cannot contain the run and `allow_unsandboxed` is False.
    """
    try:
        pysource.parse(tests, "test cell")
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"the test cell does not parse: {_syntax_line(exc)}") from None
    from ..config import RUN_UNSANDBOXED

    if RUN_UNSANDBOXED is False:  # a notebook under `tg-magic run` cannot widen the sandbox
        allow_unsandboxed = False
    bwrap = bwrap_path()
    if bwrap is None and not allow_unsandboxed:
        ran = RUN_UNSANDBOXED is False
        only = " (under tg-magic run only its --allow-unsandboxed flag runs tests without it)"
        raise SandboxUnavailable(unavailable_reason() + (only if ran else ""))
    limits = Limits(timeout, memory_mb, output_limit, processes, disk_mb)
    contained = containment(allow_unsandboxed)
    try:
        pysource.check_compiles(code, "candidate.py")
    except (SyntaxError, ValueError) as exc:
        problem = f"syntax error in the code: {_syntax_line(exc)}"
        return TestReport((), 0.0, problem, "", contained, "error")
    key = hashlib.sha256(
        json.dumps([code, tests, asdict(limits), bwrap is None]).encode()
    ).hexdigest()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    pair = pool.take(Shape.of(limits, bwrap))
    try:
        report = _drive(pair, code, tests, limits, contained)
    finally:
        pair.end()
    with _cache_lock:
        _cache[key] = report
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return report


class _Stream:
    """Bounded record of the children's own output: the head and the tail, never all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        del self.tail[: max(0, len(self.tail) - self.limit // 2)]

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.total > len(self.head) + len(self.tail):
            return f"{head}\n[... output truncated at {self.limit} characters ...]\n{tail}"
        return head + tail


def _drive(pair: Pair, code: str, tests: str, limits: Limits, contained: str) -> TestReport:
    common = {
        "memory": limits.memory,
        "file_size": limits.disk,
        "processes": limits.processes,
        "output_limit": limits.output_limit,
    }
    deadline = time.monotonic() + limits.timeout

    def send_jobs() -> None:  # in a thread: a large job must not block the reading below
        pair.candidate.send_job({**common, "code": code})
        pair.runner.send_job({**common, "tests": tests})

    sender = threading.Thread(target=send_jobs, daemon=True)
    sender.start()
    try:
        return _collect(pair, limits, contained, deadline)
    finally:
        sender.join(1.0)  # children read their job first; a dead one fails the write


def _collect(pair: Pair, limits: Limits, contained: str, deadline: float) -> TestReport:
    """Read the report and the output until the runner is done, the deadline, or a flood."""
    run = Run()
    stream = _Stream(limits.output_limit)
    report_bytes = bytearray()
    with selectors.DefaultSelector() as selector:
        for fd in (pair.report_fd, pair.runner.output_fd, pair.candidate.output_fd):
            selector.register(fd, selectors.EVENT_READ)
        finished = False
        while not finished and selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                run.timed_out = True
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    finished = finished or key.fd == pair.report_fd
                elif key.fd == pair.report_fd:
                    report_bytes += chunk
                    finished = _take_messages(report_bytes, run)
                else:
                    stream.add(chunk)
                    if stream.total > FLOOD_FACTOR * limits.output_limit:
                        run.flooded = finished = True
    run.output = stream.text()
    run.output_chars = stream.total
    gone = any(message.get("gone") for message in run.messages)
    run.candidate_status = pair.candidate.exit_status(wait=1.0 if gone else 0)
    group = pair.candidate.group
    run.out_of_memory = group is not None and group.out_of_memory()
    return judge(run, limits, contained)


def _take_messages(buffer: bytearray, run: Run) -> bool:
    """Move complete messages from the buffer into the run; True once the runner is done."""
    while len(buffer) >= 4:
        (size,) = struct.unpack(">I", buffer[:4])
        if size > MAX_MESSAGE:
            return True  # not our runner's writing: judged as an unfinished run
        if len(buffer) < 4 + size:
            return False
        try:
            message = json.loads(bytes(buffer[4 : 4 + size]))
        except ValueError:
            return True
        del buffer[: 4 + size]
        if type(message) is not dict:
            return True
        run.messages.append(message)
        if any(k in message for k in ("done", "import_error", "gone")):
            return True
    return False
