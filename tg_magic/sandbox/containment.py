"""What a sandboxed process can see and use: bubblewrap namespaces, and limits for its tree.

The sandbox holds only the Python runtime (interpreter, standard library, site-packages,
read-only), a private tmpfs scratch folder, private bounded /tmp and /dev/shm, and new user, PID,
IPC, network and UTS namespaces with no capabilities. Memory and process count hold for the
whole tree through a cgroup when this machine offers a writable one, else through rlimits.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..errors import TgMagicError

INSTALL = "install bubblewrap (apt-get install bubblewrap) or pass allow_unsandboxed=True"
CHILD_DIR = "/opt/tg-magic-sandbox"  # where child.py appears inside the sandbox
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


def python() -> str:
    """The real interpreter binary (not a venv symlink, which would need the venv's folder)."""
    base = getattr(sys, "_base_executable", sys.executable)
    return os.path.realpath(base)


def site_dirs() -> list[str]:
    """The site-packages folders of this runtime (the venv's and the base's)."""
    found = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    with contextlib.suppress(AttributeError):
        found += site.getsitepackages()
    return list(dict.fromkeys(p for p in found if os.path.isdir(p)))


def _runtime_binds() -> list[str]:
    """Read-only binds: system libraries, the Python install, site-packages, our child code."""
    binds = ["--ro-bind", "/usr/lib", "/usr/lib"]
    for link in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(link):
            binds += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            binds += ["--ro-bind", link, link]
    if os.path.isdir("/usr/lib64"):
        binds += ["--ro-bind", "/usr/lib64", "/usr/lib64"]
    roots = [sys.base_prefix, *site_dirs()]
    for root in dict.fromkeys(os.path.realpath(r) for r in roots):
        binds += ["--ro-bind", root, root]
    exe = python()
    if not any(exe.startswith(os.path.realpath(r) + "/") for r in roots):
        binds += ["--ro-bind", exe, exe]
    binds += ["--ro-bind", str(Path(__file__).parent), CHILD_DIR]
    return binds


def bwrap_args(bwrap: str, limits: Limits, info_fd: int) -> list[str]:
    """The bubblewrap command line up to (not including) the program."""
    size = str(limits.disk)
    return [
        bwrap,
        "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--clearenv", *_env_args(),
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", size, "--tmpfs", "/dev/shm",
        "--size", size, "--tmpfs", "/tmp",
        # After /tmp: a runtime installed under /tmp (a clone there, its .venv) stays visible.
        *_runtime_binds(),
        "--size", size, "--tmpfs", SCRATCH,
        "--chdir", SCRATCH,
        "--remount-ro", "/dev",
        "--remount-ro", "/",
        "--info-fd", str(info_fd),
        "--",
    ]  # fmt: skip


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


def _env_args() -> list[str]:
    args: list[str] = []
    for key, value in CHILD_ENV.items():
        args += ["--setenv", key, value]
    return args


# ---------------------------------------------------------------------------- bubblewrap


@functools.cache
def _probe(bwrap: str) -> str:
    """ "" when bwrap starts a contained Python here, else the reason (cached per process)."""
    read, write = os.pipe()
    try:
        cmd = [*bwrap_args(bwrap, Limits(), write), python(), "-S", "-E", "-c", "pass"]
        done = subprocess.run(
            cmd, env={}, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
            check=False, pass_fds=(write,),
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        os.close(read)
        os.close(write)
    if done.returncode == 0:
        return ""
    err = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return (err[-1] if err else f"exit status {done.returncode}")[:160]


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
