"""What code under test learns about the machine it runs on: written as a student would probe.

The code dumps everything that usually names folders (mountinfo and mounts, the command lines
of the sandbox's processes, its environment, its open files, sys.path and sys.prefix, sysconfig,
every .pth file on its path, what installed packages say they were installed from, a traceback
through the standard library, and `__file__` of every module it can import) and sends it back
through failing asserts. The test side, which knows this machine, looks for the checkout, the
venv, the interpreter's real prefix, the user's home and name, and the machine's name.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import sys
from pathlib import Path

import pytest

from tg_magic.sandbox import TestReport, available, run_tests

pytestmark = pytest.mark.skipif(not available(), reason="bubblewrap does not work here")

CHECKOUT = Path(__file__).resolve().parents[1]
CHUNK = 1500  # characters per failing assert (a failure message keeps 2000)
CHUNKS = 400

PROBE = """\
import importlib.metadata, importlib.util, json, os, pkgutil, sys, traceback

def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read(200_000).decode('utf-8', 'replace').replace('\\0', ' ')
    except OSError as exc:
        return f'({type(exc).__name__})'

def _link(path):
    try:
        return os.readlink(path)
    except OSError as exc:
        return f'({type(exc).__name__})'

def _gather():
    seen = []
    for path in ('/proc/self/mountinfo', '/proc/1/mountinfo', '/proc/self/mounts',
                 '/proc/self/mountstats', '/proc/1/cmdline', '/proc/self/cmdline',
                 '/proc/self/environ', '/proc/self/maps', '/proc/self/cgroup'):
        seen.append(f'== {path}\\n{_read(path)}')
    for path in ('/proc/self/exe', '/proc/self/cwd', '/proc/1/exe', '/proc/1/cwd'):
        seen.append(f'== {path} -> {_link(path)}')
    for fd in os.listdir('/proc/self/fd'):  # what it was handed, and what those hold
        link = _link(f'/proc/self/fd/{fd}')
        held = '' if link.startswith(('pipe:', 'socket:', '(')) else _read(f'/proc/self/fd/{fd}')
        seen.append(f'== fd {fd} -> {link}\\n{held}')
    seen.append(f'== uname {os.uname().nodename} {os.uname()}')
    import sysconfig
    seen.append(f'== sysconfig {sysconfig.get_paths()}\\n{sysconfig.get_config_vars()}')
    facts = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             sys.executable, getattr(sys, '_base_executable', ''), sys.argv, sys.path,
             os.getcwd(), dict(os.environ)]
    seen.append('== sys\\n' + repr(facts))
    for folder in sys.path:  # what each folder holds, and every .pth file in it
        if not os.path.isdir(folder):
            continue
        names = sorted(os.listdir(folder))
        seen.append(f'== listing {folder}: ' + ' '.join(names))
        for name in names:
            if name.endswith('.pth'):
                seen.append(f'== pth {name}\\n' + _read(os.path.join(folder, name)))
    for dist in importlib.metadata.distributions():  # where each package says it came from
        where = getattr(dist, '_path', '')
        seen.append(f'== dist {where} {dist.read_text("direct_url.json")}')
    try:
        json.loads('{')
    except ValueError:
        seen.append('== traceback\\n' + traceback.format_exc())
    import email.parser, http.client, xml.dom.minidom, decimal, unittest, logging  # noqa
    origins = []
    for module in pkgutil.iter_modules():
        try:
            spec = importlib.util.find_spec(module.name)
        except Exception as exc:
            origins.append(f'{module.name}: ({type(exc).__name__})')
            continue
        folder = getattr(module.module_finder, 'path', '')
        origins.append(f'{module.name}: {spec and spec.origin} {folder}')
    origins += [f'{name}: {getattr(m, "__file__", None)}' for name, m in list(sys.modules.items())]
    seen.append('== modules\\n' + '\\n'.join(origins))
    seen.append(f'== tg_magic importable: {importlib.util.find_spec("tg_magic") is not None}')
    seen.append('== end')
    return '\\n'.join(seen)

_DUMP = []

def chunk(i):
    if not _DUMP:
        _DUMP.append(_gather())
    return _DUMP[0][i * CHUNK:(i + 1) * CHUNK]
""".replace("CHUNK", str(CHUNK))

TESTS = "\n".join(f"assert chunk({i}) == '', chunk({i})" for i in range(CHUNKS)) + "\n"


def host_paths() -> dict[str, str]:
    """This machine's folders that code under test must not learn (generic ones left out),
    each with what it is."""
    found = {
        "the checkout": str(CHECKOUT),
        "the venv": sys.prefix,
        "the venv (resolved)": os.path.realpath(sys.prefix),
        "the interpreter's prefix": sys.base_prefix,
        "the interpreter's prefix (resolved)": os.path.realpath(sys.base_prefix),
        "the interpreter's folder": os.path.dirname(
            os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        ),
        "the home folder": str(Path.home()),
        "the working folder": os.getcwd(),
    }
    generic = {
        "",
        "/usr",
        "/usr/local",
        "/usr/bin",
        "/usr/local/bin",
        "/bin",
        "/opt",
        "/tmp",
        "/home",
    }
    paths: dict[str, str] = {}
    for what, path in found.items():
        path = path.rstrip("/")
        if path not in generic:
            paths[path] = f"{paths[path]}, {what}" if path in paths else what
    return paths


def dump_of(report: TestReport) -> str:
    """The probe's text, put back together from the failure messages."""
    parts = [o.message.rsplit("; assert ", 1)[0] for o in report.outcomes if not o.passed]
    return "".join(parts)


def sections(dump: str) -> dict[str, str]:
    """The probe's sections by their heading (`== /proc/self/mountinfo`, `== sys`, ...)."""
    found: dict[str, str] = {}
    for part in ("\n" + dump).split("\n== ")[1:]:
        head, _, body = part.partition("\n")
        words = head.split()
        heading = " ".join(words[:2] if words[0] == "pth" else words[:1])
        found[heading] = found.get(heading, "") + head + "\n" + body + "\n"
    return found


def leaks_in(dump: str) -> list[str]:
    """One line per section and host name found in it, with the first line that shows it."""
    patterns = {
        f"{what} ({path})": rf"(?<![\w.-]){re.escape(path)}(?![\w.-])"
        for path, what in host_paths().items()
    }
    # The user name as a folder (/home/NAME/..., /NAME) or a value (USER=NAME); as a mere word it
    # also names modules (unittest/runner.py for the user "runner").
    user = re.escape(getpass.getuser())
    patterns[f"the user name ({getpass.getuser()})"] = (
        rf"/{user}(?=[/\s'\"]|$)|=\s*{user}(?![\w.-])"
    )
    for name in ("__editable__", "_editable_impl_", ".egg-link"):
        patterns[f"an editable install ({name})"] = re.escape(name)
    leaks = []
    for heading, text in sections(dump).items():
        for what, pattern in patterns.items():
            match = re.search(pattern, text)
            if match:
                start = text.rfind("\n", 0, match.start()) + 1
                end = text.find("\n", match.end())
                line = text[start : end if end >= 0 else None]
                cut = max(0, match.start() - start - 80)
                leaks.append(f"{heading}: {what}: ...{line[cut : cut + 200]}")
    return leaks


def test_the_sandbox_names_nothing_of_the_host() -> None:
    report = run_tests(PROBE, TESTS, timeout=60, output_limit=50_000)
    dump = dump_of(report)
    assert dump.endswith("== end"), report.text()  # the whole probe came back
    assert "/proc/self/mountinfo\n" in dump and " / /proc " in dump  # it read mountinfo
    leaks = leaks_in(dump)
    assert not leaks, "the sandbox shows host folders:\n" + "\n".join(leaks)
    (nodename,) = re.findall(r"== uname (\S+) ", dump)
    assert nodename != socket.gethostname()  # the machine's name is not the sandbox's
    assert "== tg_magic importable: False" in dump


def test_the_runtime_still_works_at_its_neutral_paths() -> None:
    """Packages with compiled parts, the standard library's own, and a traceback's lines."""
    pytest.importorskip("numpy")
    code = (
        "import numpy, sqlite3, ssl, json, traceback\n\n"
        "def check():\n"
        "    try:\n"
        "        json.loads('{')\n"
        "    except ValueError:\n"
        "        lines = traceback.format_exc()\n"
        "    return [int(numpy.arange(4).sum()), sqlite3.sqlite_version > '3',\n"
        "            'raise JSONDecodeError' in lines or 'decoder.py' in lines]\n"
    )
    report = run_tests(code, "assert check() == [6, True, True]\n")
    assert report.score == 1.0, report.text()


def test_a_package_installed_from_a_local_wheel_is_hidden_without_failing(tmp_path: Path) -> None:
    """A wheel installed from a file (`pip install ./x.whl`) records archive_info, not dir_info:
    its direct_url.json (naming the host folder) is hidden; the package itself stays."""
    import json

    from tg_magic.sandbox import runtime

    info = tmp_path / "x-1.0.dist-info"
    info.mkdir()
    (info / "direct_url.json").write_text(
        json.dumps({"url": "file:///home/someone/x-1.0-py3-none-any.whl", "archive_info": {}})
    )
    hidden = list(runtime._names_a_host_folder(str(tmp_path)))
    assert hidden == [("x-1.0.dist-info/direct_url.json", True)]
