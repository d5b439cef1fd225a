"""The Python runtime as the sandbox shows it: each of its folders at a neutral path, and
what of them would name a folder of this machine hidden or rewritten.

Inside, the interpreter's prefix is /runtime/python and each site-packages folder outside it
/runtime/site-packages(-N). Hidden: editable installs (their finder, its bytecode, .egg-link
files, their dist-info, which says where the project lives), .pth files holding an absolute
path, and the direct_url.json of a package installed from a local path. Rewritten: the
build-time configuration sysconfig reads, which names the folder Python was installed in.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass

RUNTIME = "/runtime"  # where the Python runtime appears inside the sandbox
PYTHON_HOME = f"{RUNTIME}/python"  # the interpreter's prefix


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


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class Runtime:
    """The runtime's folders and where each appears inside, and what of them is hidden."""

    mounts: tuple[tuple[str, str], ...]  # (host folder, neutral path), none inside another
    python: str  # the interpreter, inside
    site_dirs: tuple[str, ...]  # site-packages folders, inside
    hidden: tuple[tuple[str, tuple[str, ...]], ...]  # per neutral path: entries not shown
    rewritten: tuple[tuple[str, str, str], ...]  # (neutral path, entry, its text as inside)
    blanked: tuple[str, ...]  # files inside covered by an empty one (where overlays fail)
    env: tuple[tuple[str, str], ...]

    def plan(self) -> bytes:
        """What inside.py needs: the mounts to replace by overlays, what each hides and what
        it shows rewritten."""
        hidden = dict(self.hidden)
        mounts = []
        for _, at in self.mounts:
            write = {name: text for where, name, text in self.rewritten if where == at}
            mounts.append({"at": at, "hide": list(hidden.get(at, ())), "write": write})
        return json.dumps({"mounts": mounts}).encode()


def _inside(path: str, mounts: tuple[tuple[str, str], ...]) -> str | None:
    for root, at in mounts:
        if _under(path, root):
            return at + path[len(root.rstrip("/")) :]
    return None


# A .pth line or statement that holds an absolute path ("/home/...", '/work/x'): a host folder.
_ABSOLUTE = re.compile(r"(?:^|[^\w.~-])/[\w.~@+-]")


def _read(path: str, limit: int = 1 << 20) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _names_a_host_folder(folder: str) -> Iterator[tuple[str, bool]]:
    """Entries of a site-packages folder that name a host folder: (relative path, is a file).

    Editable installs (their finder, its cached bytecode, .egg-link files, and the whole
    dist-info, which says where the project lives), .pth files holding an absolute path, and the
    direct_url.json of a package installed from a local path."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith("__editable__") or name.endswith(".egg-link"):
            yield name, entry.is_file()
        elif name.endswith(".pth") and _ABSOLUTE.search(_read(entry.path)):
            yield name, True
        elif name.endswith(".dist-info") and entry.is_dir():
            text = _read(os.path.join(entry.path, "direct_url.json"))
            if '"file:' not in text:
                continue
            yield f"{name}/direct_url.json", True
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                # a wheel or an archive installed from a file has no dir_info
                if json.loads(text).get("dir_info", {}).get("editable") is True:
                    yield name, False
        elif name == "__pycache__" and entry.is_dir():
            with contextlib.suppress(OSError):
                for cached in os.scandir(entry.path):
                    if cached.name.startswith("__editable__"):
                        yield f"{name}/{cached.name}", True


def _package_dirs() -> list[str]:
    """Every site-packages folder of this runtime, also those not on its path (the base
    interpreter's own under a venv): all of them are visible inside its prefix."""
    found = site_dirs()
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    found += [sysconfig.get_paths(vars=base)[key] for key in ("purelib", "platlib")]
    with contextlib.suppress(AttributeError):
        found += site.getsitepackages([sys.base_prefix])
    return list(dict.fromkeys(os.path.realpath(p) for p in found if os.path.isdir(p)))


def _stamp(folders: list[str]) -> tuple[int, ...]:
    """Changes when a package is installed or removed (so the hidden entries are looked again)."""
    stamps = []
    for folder in folders:
        for path in (folder, os.path.join(folder, "__pycache__")):
            try:
                stamps.append(os.stat(path).st_mtime_ns)
            except OSError:
                stamps.append(0)
    return tuple(stamps)


def runtime() -> Runtime:
    """The runtime's layout inside the sandbox (looked again when site-packages changes)."""
    folders = _package_dirs()
    return _runtime(tuple(folders), _stamp(folders))


@functools.lru_cache(maxsize=4)
def _runtime(folders: tuple[str, ...], stamp: tuple[int, ...]) -> Runtime:
    prefix = os.path.realpath(sys.base_prefix)
    sites = [os.path.realpath(p) for p in site_dirs()]
    roots: list[str] = []
    for path in sorted(dict.fromkeys([prefix, *sites]), key=len):
        if not any(_under(path, root) for root in roots):
            roots.append(path)
    mounts: list[tuple[str, str]] = []
    for root in roots:
        if _under(prefix, root):
            mounts.append((root, PYTHON_HOME))
        else:
            number = sum(1 for _, at in mounts if at != PYTHON_HOME) + 1
            mounts.append(
                (root, f"{RUNTIME}/site-packages" + ("" if number == 1 else f"-{number}"))
            )
    layout = tuple(mounts)
    exe = _inside(python(), layout)
    if exe is None:
        raise ValueError(f"the interpreter {python()} is not inside its prefix {prefix}")
    hidden: dict[str, list[str]] = {}
    blanked: list[str] = []
    system = [(path, path) for path in system_dirs()]
    for folder in folders:
        for name, is_file in _names_a_host_folder(folder):
            host = os.path.join(folder, name)
            where = _inside(host, layout)
            if where is not None:
                root_at = next(at for root, at in layout if _under(host, root))
                hidden.setdefault(root_at, []).append(where[len(root_at) + 1 :])
            if is_file:  # also where the system's libraries show it (a prefix of /usr)
                blanked += [p for p in (where, _inside(host, tuple(system))) if p]
    env: list[tuple[str, str]] = []
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir:
        libdir = os.path.realpath(libdir)
        inside_libdir = _inside(libdir, layout)
        if inside_libdir and _inside(libdir, tuple(system)) is None:
            env.append(("LD_LIBRARY_PATH", inside_libdir))  # not where its RUNPATH says
    return Runtime(
        mounts=layout,
        python=exe,
        site_dirs=tuple(p for p in (_inside(s, layout) for s in sites) if p),
        hidden=tuple((at, tuple(names)) for at, names in hidden.items()),
        rewritten=_rewritten(layout),
        blanked=tuple(dict.fromkeys(blanked)),
        env=tuple(env),
    )


def _rewritten(layout: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """The build-time configuration (what sysconfig.get_config_vars() reads: LIBDIR,
    CONFIG_ARGS, ... name the folder Python was installed in) with the runtime's own folders as
    they appear inside."""
    try:
        name = sysconfig._get_sysconfigdata_name()  # type: ignore[attr-defined]
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        if not origin or not origin.endswith(".py"):
            return ()
        build_prefix = getattr(importlib.import_module(name), "build_time_vars", {}).get("prefix")
        with open(origin, encoding="utf-8") as handle:
            text = handle.read()
    except (ImportError, AttributeError, ValueError, OSError):
        return ()
    forms: dict[str, str] = {}
    for path in (build_prefix, sys.base_prefix, sys.base_exec_prefix):
        if isinstance(path, str) and path.startswith("/"):
            for form in (path.rstrip("/"), os.path.realpath(path)):
                inside = _inside(os.path.realpath(path), layout)
                if form and inside:
                    forms[form] = inside
    for form in sorted(forms, key=len, reverse=True):
        text = re.sub(rf"{re.escape(form)}(?![\w.-])", forms[form], text)  # also in -L/...
    where = _inside(os.path.realpath(origin), layout)
    if where is None:
        return ()
    at = next(a for root, a in layout if _under(os.path.realpath(origin), root))
    return ((at, where[len(at) + 1 :], text),)


def system_dirs() -> list[str]:
    """The system's library folders, bound where they are (the loader and libc live there)."""
    found = ["/usr/lib"]
    found += [p for p in ("/lib", "/lib64", "/lib32") if os.path.isdir(p) and not os.path.islink(p)]
    return found + (["/usr/lib64"] if os.path.isdir("/usr/lib64") else [])
