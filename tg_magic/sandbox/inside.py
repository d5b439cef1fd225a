"""What runs first inside the sandbox, before anything else: the runtime's neutral view, then
the sandbox's own user with no capabilities.

bubblewrap binds the runtime's folders at neutral paths (/runtime/python, ...), but a bind
mount's line in /proc/self/mountinfo still names the folder it came from. Started as root of
its user namespace with CAP_SYS_ADMIN and CAP_SETFCAP only, this process mounts a read-only
overlay of each bind (an overlay's line names only the paths given here) whose first layer hides
the entries the plan hides and holds the files it rewrites, drops the binds and moves the
overlays in their place. Then it enters a new user namespace
as uid 65534, as bubblewrap does for --uid, and drops every capability; it ends the process if
any of that fails. Where overlays cannot be mounted (an older kernel, a confined bubblewrap),
the binds stay: the runtime still appears at its neutral paths, and bubblewrap has covered the
files that name a host folder with an empty one.

Standard library only, and nothing is imported while the runtime's folders are swapped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat

TYPE_CHECKING = False  # typing is not imported here: every sandbox would pay for it
if TYPE_CHECKING:
    from typing import Any

UID = GID = 65534
STAGE = "/tmp/.runtime-stage"  # removed again before any other code runs

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_MOVE = 1, 2, 4, 8192
_MNT_DETACH = 2
_CLONE_NEWUSER = 0x10000000
_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_CAPABILITY_VERSION_3 = 0x20080522


class _Libc:
    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)

    def call(self, what: str, name: str, *args: Any) -> None:
        if getattr(self.libc, name)(*args) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"{what}: {os.strerror(number)}")

    def mount(
        self, source: str | None, target: str, kind: str | None, flags: int, data: str = ""
    ) -> None:
        self.call(
            f"mount {target}", "mount",
            source and source.encode(), target.encode(), kind and kind.encode(),
            ctypes.c_ulong(flags), data.encode() if data else None,
        )  # fmt: skip

    def detach(self, target: str) -> None:
        self.call(f"umount {target}", "umount2", target.encode(), _MNT_DETACH)


def enter(plan: dict[str, Any]) -> str:
    """Set the sandbox up as the plan says; "" when the runtime shows as overlays, else why not.
    Raises (and the caller must end the process) when the user could not be changed."""
    libc = _Libc()
    mounts = [
        (str(m["at"]), [str(h) for h in m.get("hide", [])], dict(m.get("write", {})))
        for m in plan["mounts"]
    ]
    try:
        overlays = _stage(libc, mounts)
        why = ""
    except OSError as exc:
        overlays, why = [], str(exc)
        with contextlib.suppress(OSError):
            libc.detach(STAGE)
        with contextlib.suppress(OSError):
            os.rmdir(STAGE)
    if overlays:
        _swap(libc, overlays)
    _become_nobody(libc)
    return why


def _stage(
    libc: _Libc, mounts: list[tuple[str, list[str], dict[str, str]]]
) -> list[tuple[str, str]]:
    """Mount an overlay of each bound folder under STAGE (nothing visible changes yet)."""
    os.mkdir(STAGE, 0o700)
    libc.mount("stage", STAGE, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=755,size=16m")
    overlays = []
    for number, (at, hide, write) in enumerate(mounts):
        # An overlay needs two layers without an upper one: the first holds the whiteouts and
        # the files shown rewritten.
        mask = f"{STAGE}/hide{number}"
        os.mkdir(mask)
        for name, text in write.items():
            parts = name.split("/")
            if ".." in parts or "" in parts:
                continue
            path = os.path.join(mask, *parts)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(path, 0o444)
        for name in sorted(hide, key=lambda n: n.count("/")):  # a folder before what is in it
            parts = name.split("/")
            if ".." in parts or "" in parts or _hidden_already(mask, parts):
                continue
            path = os.path.join(mask, *parts)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))  # a whiteout: the entry is gone
        view = f"{STAGE}/view{number}"
        os.mkdir(view)
        flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV
        libc.mount("runtime", view, "overlay", flags, f"lowerdir={mask}:{at}")
        overlays.append((view, at))
    return overlays


def _hidden_already(mask: str, parts: list[str]) -> bool:
    """Is this entry, or a folder it is in, already a whiteout?"""
    for depth in range(1, len(parts) + 1):
        with contextlib.suppress(OSError):
            if stat.S_ISCHR(os.lstat(os.path.join(mask, *parts[:depth])).st_mode):
                return True
    return False


def _swap(libc: _Libc, overlays: list[tuple[str, str]]) -> None:
    """Replace each bind by its overlay (the overlays keep their own hold of the folders)."""
    for view, at in overlays:
        libc.detach(at)
        libc.mount(view, at, None, _MS_MOVE)
    libc.detach(STAGE)
    os.rmdir(STAGE)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _become_nobody(libc: _Libc) -> None:
    """A new user namespace mapping UID to the one we are, then no capabilities at all."""
    libc.call("unshare the user namespace", "unshare", _CLONE_NEWUSER)
    for name, text in (("uid_map", f"{UID} 0 1"), ("setgroups", "deny"), ("gid_map", f"{GID} 0 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    for cap in range(64):
        if libc.libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    libc.call(
        "clear ambient capabilities", "prctl", _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0
    )
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    libc.call("drop capabilities", "capset", ctypes.byref(header), data)
    with open("/proc/self/status") as handle:
        status = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
    caps = [status.get(f"Cap{kind}", "").strip() for kind in ("Inh", "Prm", "Eff", "Bnd", "Amb")]
    if any(c.strip("0") for c in caps) or (os.getuid(), os.getgid()) != (UID, GID):
        raise OSError(f"the sandbox user still has capabilities or another uid: {caps}")
    if status.get("NoNewPrivs", "").strip() != "1":
        raise OSError("no_new_privs is not set")
