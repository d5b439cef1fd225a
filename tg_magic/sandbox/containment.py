"""What a sandboxed process can see and use: bubblewrap namespaces, and limits for its tree.

The sandbox holds only the Python runtime (interpreter, standard library, site-packages,
read-only), a private tmpfs scratch folder, private bounded /tmp and /dev/shm, and new user, PID,
IPC, network and UTS namespaces with no capabilities. Memory and process count hold for the
whole tree through a cgroup when this machine offers a writable one, else through rlimits.

The runtime appears at neutral paths (/runtime/python, /runtime/site-packages, /runtime/child),
so that nothing inside names a folder of this machine: bubblewrap reads its options from a
memory file (its command line, the sandbox's /proc/1/cmdline, holds no host path), our child
scripts are copied in, and inside.py replaces each bind mount, whose /proc/self/mountinfo line
would still name the folder it came from, by an overlay of it. What of the runtime names a host
folder is hidden or rewritten (runtime.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import TgMagicError
from .runtime import RUNTIME, Runtime, runtime, system_dirs

INSTALL = "install bubblewrap (apt-get install bubblewrap) or pass allow_unsandboxed=True"
CHILD_DIR = f"{RUNTIME}/child"  # our child scripts (copied in, not bound)
CHILD_FILES = ("child.py", "inside.py", "testfile.py", "wire.py")
SCRATCH = "/scratch"
SANDBOX_UID = 65534


class SandboxUnavailable(TgMagicError):
    """bubblewrap is missing or does not work here, and unsandboxed runs were not allowed."""


@dataclass(frozen=True)
class Limits:
    """Everything that bounds one run (part of the result cache key)."""

    timeout: float = 20.0
    memory_mb: int = 1024  # the candidate's whole process tree
    output_limit: int = 20_000  # characters kept per test and for the run
    processes: int = 64  # the candidate's whole process tree
    disk_mb: int = 64  # each of scratch, /tmp and /dev/shm

    @property
    def memory(self) -> int:
        return self.memory_mb * 1024 * 1024

    @property
    def disk(self) -> int:
        return self.disk_mb * 1024 * 1024


CHILD_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": SCRATCH,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUTF8": "1",
    # BLAS pools reserve a lot of address space per thread and would trip the memory limit.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def _runtime_binds(layout: Runtime) -> list[str]:
    """Read-only binds: system libraries, and the Python runtime at its neutral paths."""
    binds: list[str] = []
    for path in system_dirs():
        binds += ["--ro-bind", path, path]
    for link in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(link):
            binds += ["--symlink", os.readlink(link), link]
    for root, at in layout.mounts:
        binds += ["--ro-bind", root, at]
    for path in layout.blanked:  # a file naming a host folder reads as nothing
        binds += ["--ro-bind", "/dev/null", path]
    return binds


def _memory_file(data: bytes) -> int:
    """An inheritable file descriptor reading `data` from its start."""
    fd = os.memfd_create("tg-magic")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.cache
def _child_sources() -> tuple[tuple[str, bytes], ...]:
    here = Path(__file__).parent
    return tuple((name, (here / name).read_bytes()) for name in CHILD_FILES)


def bwrap_args(
    limits: Limits, info_fd: int, layout: Runtime, files: list[str], *, staged: bool
) -> list[str]:
    """The bubblewrap options (to be read from a file: none of them shows inside).

    `staged`: the sandbox starts as root of its user namespace with two capabilities, for
    inside.py to replace the runtime's binds by overlays, then become SANDBOX_UID with no
    capabilities; else bubblewrap itself makes it SANDBOX_UID (the binds stay)."""
    size = str(limits.disk)
    user = ["--uid", "0", "--gid", "0"] if staged else [
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
    ]  # fmt: skip
    # CAP_SETFCAP: the kernel lets a new user namespace map uid 0 only to one created with it.
    setup = ["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETFCAP"]
    caps = ["--cap-drop", "ALL", *(setup if staged else [])]
    env: list[str] = []
    for key, value in [*CHILD_ENV.items(), *layout.env]:
        env += ["--setenv", key, value]
    return [
        "--unshare-user", *user,
        "--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts",
        "--hostname", "sandbox",
        "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", *caps,
        "--clearenv", *env,
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", size, "--tmpfs", "/dev/shm",
        "--size", size, "--tmpfs", "/tmp",
        *_runtime_binds(layout),
        *files,
        "--size", size, "--tmpfs", SCRATCH,
        "--chdir", SCRATCH,
        "--remount-ro", "/dev",
        "--remount-ro", "/",
        "--info-fd", str(info_fd),
    ]  # fmt: skip


def sandbox_command(
    bwrap: str, limits: Limits, info_fd: int, role: str, fds: list[int], staged: bool | None = None
) -> tuple[list[str], list[int]]:
    """bubblewrap running `child.py ROLE` inside, and the file descriptors to pass to it (the
    caller closes them once it started). Its command line names only neutral paths."""
    if staged is None:
        staged = _mode(bwrap)
    layout = runtime()
    passed: list[int] = []
    try:
        files: list[str] = []
        for name, source in _child_sources():
            passed.append(_memory_file(source))
            files += ["--file", str(passed[-1]), f"{CHILD_DIR}/{name}"]
        options = bwrap_args(limits, info_fd, layout, files, staged=staged)
        passed.append(_memory_file("\0".join(options).encode() + b"\0"))
        program = [layout.python, "-S", "-E", "-s", "-B", f"{CHILD_DIR}/child.py", role]
        program.append(",".join(map(str, fds)))
        if staged:
            passed.append(_memory_file(layout.plan()))
            program += ["--setup", str(passed[-1])]
        command = [bwrap, "--args", str(passed[-2 if staged else -1]), "--", *program]
    except BaseException:
        for fd in passed:
            os.close(fd)
        raise
    return [*command, *layout.site_dirs], passed


# ---------------------------------------------------------------------------- bubblewrap


def _try(bwrap: str, staged: bool) -> tuple[str, str]:
    """("", what it said) when bwrap starts our child script here and it gets ready to run
    code, else (why not, "")."""
    read, write = os.pipe()
    passed: list[int] = []
    try:
        cmd, passed = sandbox_command(bwrap, Limits(), write, "probe", [], staged)
        done = subprocess.run(
            cmd, env={}, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
            check=False, pass_fds=(write, *passed),
        )  # fmt: skip
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return str(exc) or type(exc).__name__, ""
    finally:
        for fd in (read, write, *passed):
            os.close(fd)
    if done.returncode == 0:
        return "", done.stdout.decode("utf-8", "replace").strip()
    err = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return (err[-1] if err else f"exit status {done.returncode}")[:160], ""


_staged: set[str] = set()  # the bwraps that run staged (see bwrap_args)
_names_shown: dict[str, str] = {}  # per bwrap: why the runtime's host folders still show


@functools.cache
def _probe(bwrap: str) -> str:
    """ "" when bwrap starts a contained Python here, else the reason (cached per process).

    Staged first (overlays hide where the runtime comes from); where bubblewrap cannot keep
    capabilities for the sandbox's own namespace (a setuid bwrap), bubblewrap alone."""
    why, said = _try(bwrap, staged=True)
    if not why:
        _staged.add(bwrap)
        if said:
            _names_shown[bwrap] = said[:160]
        return ""
    _names_shown[bwrap] = why
    return _try(bwrap, staged=False)[0]


def _mode(bwrap: str) -> bool:
    """True when this bwrap runs staged (see bwrap_args)."""
    _probe(bwrap)
    return bwrap in _staged


def host_folders_shown() -> str:
    """ "" when nothing inside the sandbox names the runtime's host folders (in mountinfo),
    else why they show on this machine."""
    path = bwrap_path()
    return _names_shown.get(path, "") if path else ""


def bwrap_path() -> str | None:
    """A working bwrap, or None."""
    path = shutil.which("bwrap")
    if path is None or _probe(path):
        return None
    return path


def unavailable_reason() -> str:
    """Why the sandbox cannot be used here ("" when it can): one line naming the fix."""
    path = shutil.which("bwrap")
    if path is None:
        return f"bubblewrap is not installed: {INSTALL}"
    why = _probe(path)
    if why:
        return f"bubblewrap does not work here ({why}): {INSTALL}"
    return ""


def available() -> bool:
    """Can untrusted code be contained on this machine?"""
    return bwrap_path() is not None
