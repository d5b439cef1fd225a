"""Memory and process-count limits for a whole process tree, through a writable cgroup.

cgroup v2 (memory.max, pids.max) when a writable unified hierarchy offers both controllers;
cgroup v1 (the memory and pids hierarchies) otherwise; None when neither is writable, and the
caller falls back to per-process rlimits. A process joins its group before it runs anything
(`join_command`), so every descendant is counted. Under cgroup v1, every sandbox of a process
also joins one cpu group of that process's (`_shared_cpu`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import threading
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"
_counter = itertools.count()


@dataclass(frozen=True)
class Group:
    """One cgroup (v2: one folder; v1: a memory folder and a pids folder)."""

    memory_dir: str
    pids_dir: str
    version: int
    cpu_dir: str = ""  # shared by every sandbox of this process; not removed with the group

    def procs_files(self) -> list[str]:
        folders = dict.fromkeys(f for f in (self.memory_dir, self.pids_dir, self.cpu_dir) if f)
        return [os.path.join(folder, "cgroup.procs") for folder in folders]

    def out_of_memory(self) -> bool:
        """Did the kernel refuse memory to (or kill) a process of the group?"""
        if self.version == 2:
            events = _read(os.path.join(self.memory_dir, "memory.events"))
            return any(
                line.split()[0] in ("oom", "oom_kill") and line.split()[1] != "0"
                for line in events.splitlines()
                if len(line.split()) == 2
            )
        return _read(os.path.join(self.memory_dir, "memory.failcnt")).strip() not in ("", "0")

    def pids(self) -> list[int]:
        text = _read(os.path.join(self.pids_dir, "cgroup.procs"))
        return [int(p) for p in text.split()]

    def remove(self) -> None:
        for folder in dict.fromkeys([self.pids_dir, self.memory_dir]):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError:
        return ""


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(value)


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller ("" for v2's unified line)."""
    for line in _read("/proc/self/cgroup").splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(",") or (controller == "" and names == ""):
            return path
    return None


def _parents() -> tuple[int, str, str] | None:
    """(version, memory parent folder, pids parent folder) where we may create groups."""
    unified = _own_path("")
    if unified is not None and os.path.exists(f"{ROOT}/cgroup.controllers"):
        parent = f"{ROOT}{unified}"
        wanted = {"memory", "pids"}
        if wanted <= set(_read(f"{parent}/cgroup.subtree_control").split()):
            return 2, parent, parent
    memory, pids = _own_path("memory"), _own_path("pids")
    if memory is None or pids is None:
        return None
    return 1, f"{ROOT}/memory{memory}".rstrip("/"), f"{ROOT}/pids{pids}".rstrip("/")


def create(memory: int, processes: int) -> Group | None:
    """A new group with these limits, or None when this machine does not let us."""
    found = _parents()
    if found is None:
        return None
    version, memory_parent, pids_parent = found
    name = f"tg-magic-{os.getpid()}-{next(_counter)}"
    cpu = _shared_cpu() if version == 1 else ""
    group = Group(f"{memory_parent}/{name}", f"{pids_parent}/{name}", version, cpu)
    try:
        for folder in dict.fromkeys([group.memory_dir, group.pids_dir]):
            os.mkdir(folder)
        if version == 2:
            _write(f"{group.memory_dir}/memory.max", str(memory))
            with contextlib.suppress(OSError):
                _write(f"{group.memory_dir}/memory.swap.max", "0")
        else:
            _write(f"{group.memory_dir}/memory.limit_in_bytes", str(memory))
            with contextlib.suppress(OSError):  # only with swap accounting
                _write(f"{group.memory_dir}/memory.memsw.limit_in_bytes", str(memory))
        _write(f"{group.pids_dir}/pids.max", str(processes))
    except OSError:
        group.remove()
        return None
    return group


@functools.cache
def mode() -> str:
    """Which cgroup ("cgroup v1", "cgroup v2") can hold limits here, else ""."""
    group = create(64 * 1024 * 1024, 8)
    if group is None:
        return ""
    group.remove()
    parents = [group.memory_dir, group.pids_dir, *([group.cpu_dir] if group.cpu_dir else [])]
    _remove_stale(*map(os.path.dirname, parents))
    return f"cgroup v{group.version}"


_cpu_groups: dict[int, str] = {}  # per process id (a forked child makes its own)
_cpu_lock = threading.Lock()


def _shared_cpu() -> str:
    """One cgroup v1 cpu group for every sandbox of this process, or "" where none can be made.
    Each sandbox starts its own session, and the scheduler weighs every session alike
    (autogroups): eight sandboxes at once left this process, which drives them and asks the
    model, a fifth of a core (a class's hints waited seconds on the SDK's import). In one group
    they weigh as one session, and the code under test no longer starves the run driving it."""
    pid = os.getpid()
    with _cpu_lock:
        if pid not in _cpu_groups:
            own = _own_path("cpu")
            folder = f"{ROOT}/cpu{own}".rstrip("/") + f"/tg-magic-{pid}-cpu" if own else ""
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except OSError:
                folder = ""
            writable = folder and os.access(f"{folder}/cgroup.procs", os.W_OK)
            _cpu_groups[pid] = folder if writable else ""
        return _cpu_groups[pid]


@atexit.register  # registered before the sandbox pool's own exit handler, so it runs after it
def _remove_shared_cpu() -> None:
    folder = _cpu_groups.get(os.getpid())
    if folder:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _remove_stale(*parents: str) -> None:
    """Empty groups left by a process of ours that was killed before it could clean up."""
    for parent in dict.fromkeys(parents):
        with contextlib.suppress(OSError):
            for name in os.listdir(parent):
                parts = name.split("-")
                ours = len(parts) == 4 and name.startswith("tg-magic-") and parts[2].isdigit()
                if ours and not os.path.exists(f"/proc/{parts[2]}"):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(parent, name))


JOIN = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); '
    'done; exec "$@"'
)


def join_command(group: Group | None, command: list[str]) -> list[str]:
    """`command`, started from a shell that first moves itself into the group."""
    if group is None:
        return command
    files = group.procs_files()
    return ["/bin/sh", "-c", JOIN, "sh", str(len(files)), *files, *command]
