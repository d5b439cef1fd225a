"""Start one sandboxed child (candidate or runner) and end it with its whole process tree."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cgroups
from .containment import CHILD_ENV, Limits, sandbox_command
from .runtime import python, site_dirs
from .wire import Uncrossable, send


@dataclass(frozen=True)
class Shape:
    """What is fixed when a process starts (so warm processes are grouped by it)."""

    memory_mb: int
    processes: int
    disk_mb: int
    bwrap: str | None  # None: unsandboxed (rlimits and a new session only)

    @classmethod
    def of(cls, limits: Limits, bwrap: str | None) -> Shape:
        return cls(limits.memory_mb, limits.processes, limits.disk_mb, bwrap)


@dataclass
class Child:
    """A started child: its stdin (for the job), its output pipe, and what to kill at the end."""

    popen: subprocess.Popen[bytes]
    job_fd: int
    output_fd: int
    info_fd: int | None
    group: cgroups.Group | None
    scratch: str | None = None  # a real folder only when unsandboxed
    inner_pid: int | None = field(default=None)

    def exit_status(self, wait: float = 0.0) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.popen.wait(wait) if wait else self.popen.poll()
        return None

    def send_job(self, job: dict[str, object]) -> None:
        """Give the child its one job and close its stdin (once: fd numbers get reused)."""
        fd, self.job_fd = self.job_fd, -1
        if fd < 0:
            return
        with contextlib.suppress(OSError, Uncrossable):  # a child that died is judged later
            send(fd, job)
        os.close(fd)

    def end(self) -> None:
        """Kill the whole tree and wait until no process of it is left."""
        self._read_inner_pid()
        if self.inner_pid:  # the sandbox's PID 1: the kernel then kills its whole namespace
            with contextlib.suppress(OSError):
                os.kill(self.inner_pid, signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):  # then killed below
            if self.popen.poll() is None:
                if self.info_fd is None:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                else:
                    self.popen.wait(2)
        with contextlib.suppress(OSError):
            self.popen.kill()
        self.popen.wait()
        if self.info_fd is None:  # unsandboxed: its session may have left processes behind
            with contextlib.suppress(OSError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        if self.group is not None:
            _empty(self.group)
            self.group.remove()
        for fd in (self.job_fd, self.output_fd, self.info_fd):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.job_fd = self.output_fd = -1
        self.info_fd = None
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _read_inner_pid(self) -> None:
        if self.info_fd is None or self.inner_pid is not None:
            return
        ready, _, _ = select.select([self.info_fd], [], [], 1.0)
        if ready:
            with contextlib.suppress(OSError, ValueError, KeyError):
                self.inner_pid = int(json.loads(os.read(self.info_fd, 4096))["child-pid"])


def _empty(group: cgroups.Group) -> None:
    """Kill whatever is left in the group (processes that escaped the namespace cannot be)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids = group.pids()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def start(role: str, fds: list[int], shape: Shape) -> Child:
    """Start `child.py ROLE` contained as `shape` says; `fds` are passed to it as they are."""
    job_read, job_write = os.pipe()
    out_read, out_write = os.pipe()
    group = cgroups.create(shape.memory_mb * 1024 * 1024, shape.processes)
    info_read = info_write = None
    scratch = None
    passed = list(fds)
    ours: list[int] = []  # closed here once the child started
    try:
        if shape.bwrap:
            info_read, info_write = os.pipe()
            limits = Limits(
                memory_mb=shape.memory_mb, processes=shape.processes, disk_mb=shape.disk_mb
            )
            command, ours = sandbox_command(shape.bwrap, limits, info_write, role, fds)
            passed += [info_write, *ours]
            env: dict[str, str] = {}
            cwd = "/"
        else:
            scratch = tempfile.mkdtemp(prefix="tg-magic-")
            command = python_args_for(role, fds)
            env = {**CHILD_ENV, "HOME": scratch, "TMPDIR": scratch}
            cwd = scratch
        popen = subprocess.Popen(
            cgroups.join_command(group, [*_die_with_us(), *command]),
            stdin=job_read, stdout=out_write, stderr=out_write, env=env, cwd=cwd,
            pass_fds=passed, start_new_session=True,
        )  # fmt: skip
    except BaseException:
        if group is not None:
            group.remove()
        for ours_to_close in (job_write, out_read, info_read):
            if ours_to_close is not None:
                os.close(ours_to_close)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        for fd in (job_read, out_write, info_write, *ours):
            if fd is not None:
                os.close(fd)
    return Child(popen, job_write, out_read, info_read, group, scratch)


@functools.cache
def _die_with_us() -> list[str]:
    """Kill the child when this process dies, even by SIGKILL (bubblewrap 0.8's
    --die-with-parent covers only the sandbox inside it, not bubblewrap itself)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv else []


def python_args_for(role: str, fds: list[int]) -> list[str]:
    """Our child script, unsandboxed, isolated from the environment and the user's site folder
    (the sandboxed command is containment.sandbox_command)."""
    script = str(Path(__file__).with_name("child.py"))
    numbers = ",".join(map(str, fds))
    return [python(), "-S", "-E", "-s", "-B", script, role, numbers, *site_dirs()]
