"""Attacks a hostile candidate (a student, or a prompt-injected model) tries, run for real.

Each test writes the attack as candidate code and checks what a user would: the secret is in no
report, the wrong code does not pass, the host is untouched, nothing is left running.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tg_magic.sandbox import TestReport, available, run_tests

pytestmark = pytest.mark.skipif(not available(), reason="bubblewrap does not work here")

SECRET = "tg-planted-secret-4c1d9e"
ENV_SECRET = "tg-planted-in-the-environment-77a0"  # under a name redact() does not know
WRONG_ADD = "def add(a, b):\n    return a - b\n"
ADD_TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(0, 5) == 5\n"


def everything(report: TestReport) -> str:
    return report.text() + report.output + report.problem + repr(report.outcomes)


def reader(path: str) -> str:
    """Candidate code that returns whatever it can read at `path` (or the error it got)."""
    return (
        "def peek():\n"
        "    try:\n"
        f"        with open({path!r}, 'rb') as handle:\n"
        "            return handle.read().decode('latin-1')\n"
        "    except OSError as exc:\n"
        "        return 'blocked: ' + type(exc).__name__\n"
    )


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A folder outside /tmp (a private /tmp alone would hide tmp_path from the code)."""
    folder = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="tg-magic-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def planted(outside_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Secrets where a user keeps them: HOME, the notebook folder, the teacher's and a
    classmate's folder, and the environment of the parent process."""
    tmp_path = outside_tmp
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    places = {
        "ssh key": home / ".ssh" / "id_rsa",
        "dotenv in HOME": home / ".env",
        "notebook folder": tmp_path / "notebooks" / "secret.txt",
        "teacher folder": tmp_path / "teacher" / "tests_with_answers.py",
        "other submission": tmp_path / "submissions" / "bob.ipynb",
    }
    for path in places.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"ANTHROPIC_API_KEY={SECRET}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TG_TEST_PLANTED", ENV_SECRET)
    monkeypatch.chdir(tmp_path / "notebooks")
    places["parent environ"] = Path(f"/proc/{os.getpid()}/environ")
    places["pid 1 environ"] = Path("/proc/1/environ")
    return places


@pytest.mark.parametrize(
    "place",
    [
        "ssh key",
        "dotenv in HOME",
        "notebook folder",
        "teacher folder",
        "other submission",
        "parent environ",
        "pid 1 environ",
    ],
)
def test_the_code_cannot_read_host_files(planted: dict[str, Path], place: str) -> None:
    report = run_tests(reader(str(planted[place])), "assert peek() == 'nothing'\n")
    assert report.score == 0.0
    assert SECRET not in everything(report)
    assert ENV_SECRET not in everything(report)


def test_the_code_cannot_find_the_tests_or_their_answers() -> None:
    """The expected answer is only in the test cell; on the old sandbox the code read it."""
    code = """\
import glob, os

def answer():
    paths = glob.glob("/proc/*/cmdline") + glob.glob("/proc/*/environ") + glob.glob("/proc/*/fd/*")
    for top in ("/", os.getcwd()):
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in ("usr", "sys", "proc", "dev")]
            paths += [os.path.join(folder, name) for name in files]
    for path in paths:
        if not os.path.isfile(path):  # pipes would block
            continue
        try:
            text = open(path, errors="ignore").read(100000)
        except OSError:
            continue
        if "assert answer() ==" in text:
            return text.split("assert answer() == ")[1].split()[0].strip("'\\"")
    return "not found"
"""
    report = run_tests(code, "assert answer() == 'hidden-expected-value-17'\n", timeout=20)
    assert report.score == 0.0, report.text()
    assert "not found" in report.outcomes[0].message


def test_only_its_own_processes_are_visible() -> None:
    code = "import os\n\ndef pids():\n    return [p for p in os.listdir('/proc') if p.isdigit()]\n"
    report = run_tests(code, "assert len(pids()) <= 3, pids()\n")
    assert report.score == 1.0, report.text()


def test_writes_outside_scratch_fail(outside_tmp: Path) -> None:
    target = outside_tmp / "planted-by-the-code.txt"
    code = (
        "def escape():\n"
        "    written = []\n"
        f"    for path in ({str(target)!r}, '/usr/lib/evil', '/evil', '/dev/evil'):\n"
        "        try:\n"
        "            open(path, 'w').write('x')\n"
        "            written.append(path)\n"
        "        except OSError:\n"
        "            pass\n"
        "    open('inside-scratch.txt', 'w').write('fine')\n"
        "    return written\n"
    )
    report = run_tests(code, "assert escape() == []\n")
    assert report.score == 1.0, report.text()
    assert not target.exists()


@pytest.fixture
def loopback() -> Iterator[tuple[int, list[bytes]]]:
    """A real TCP server on 127.0.0.1 that records what it receives."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    threading.Thread(target=_serve, args=(server, received), daemon=True).start()
    yield server.getsockname()[1], received
    server.close()


def _serve(server: socket.socket, received: list[bytes]) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            received.append(conn.recv(100) or b"(connected)")


def test_no_network_to_the_host(loopback: tuple[int, list[bytes]]) -> None:
    port, received = loopback
    with socket.create_connection(("127.0.0.1", port)) as probe:  # the server works
        probe.sendall(b"probe")
    code = (
        "import socket\n\n"
        "def leak():\n"
        "    try:\n"
        f"        with socket.create_connection(('127.0.0.1', {port}), timeout=2) as s:\n"
        "            s.sendall(b'stolen')\n"
        "        return 'sent'\n"
        "    except OSError as exc:\n"
        "        return 'blocked'\n"
    )
    report = run_tests(code, "assert leak() == 'sent'\n")
    assert report.score == 0.0
    assert "blocked" in report.outcomes[0].message
    with socket.create_connection(("127.0.0.1", port)) as probe:  # flush: the server is alive
        probe.sendall(b"probe")
    assert b"stolen" not in received


def test_no_unix_socket_of_the_host(outside_tmp: Path) -> None:
    tmp_path = outside_tmp
    path = str(tmp_path / "host.sock")
    received: list[bytes] = []
    servers = []
    for address in (path, "\0tg-magic-host-" + tmp_path.name):
        server = socket.socket(socket.AF_UNIX)
        server.bind(address)
        server.listen()
        servers.append(server)
        threading.Thread(target=_serve, args=(server, received), daemon=True).start()
    code = (
        "import socket\n\n"
        "def leak():\n"
        "    sent = []\n"
        f"    for address in ({path!r}, {servers[1].getsockname()!r}):\n"
        "        try:\n"
        "            s = socket.socket(socket.AF_UNIX)\n"
        "            s.connect(address)\n"
        "            s.sendall(b'stolen')\n"
        "            sent.append(address)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return len(sent)\n"
    )
    report = run_tests(code, "assert leak() == 2\n")
    for server in servers:
        server.close()
    assert report.score == 0.0
    assert b"stolen" not in received


def _comm_count(name: str) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().strip() == name:
                count += 1
        except OSError:
            continue
    return count


def test_a_fork_bomb_ends_in_time_and_leaves_nothing() -> None:
    code = """\
import os

def add(a, b):
    open('/proc/self/comm', 'w').write('tgforkbomb')
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""
    report = run_tests(code, ADD_TESTS, timeout=5)
    assert report.score == 0.0
    assert report.status == "timeout"
    assert report.problem == "timed out after 5 s"
    assert _comm_count("tgforkbomb") == 0


def test_work_left_for_after_the_answers_neither_delays_the_run_nor_survives_it() -> None:
    """A grandchild in its own session that ignores signals, a thread that never ends, a sleep
    at exit, in a __del__ and in a SIGTERM handler: all wait for after the verdict."""
    code = """\
import atexit, os, signal, threading, time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)
        open('/proc/self/comm', 'w').write('tglinger')
        os.read(os.pipe()[0], 1)
    os._exit(0)
os.wait()

class _Slow:
    def __del__(self):
        time.sleep(3600)

_keep = _Slow()
atexit.register(time.sleep, 3600)
signal.signal(signal.SIGTERM, lambda *_: time.sleep(3600))
threading.Thread(target=time.sleep, args=(3600,)).start()

def add(a, b):
    return a + b
"""
    report = run_tests(code, ADD_TESTS)  # a run the lingering work delayed would time out
    assert report.score == 1.0 and report.status == "ok", report.text()
    assert _comm_count("tglinger") == 0


def test_the_code_cannot_find_or_trace_the_test_runner() -> None:
    """Every PID number signalled, and each process found traced, its memory opened and read:
    the code finds itself (the scan works) and never the runner."""
    code = """\
import ctypes, os

def reach():
    libc = ctypes.CDLL(None, use_errno=True)
    found = []
    for pid in range(1, 1 << 16):
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        with open(f'/proc/{pid}/cmdline', 'rb') as handle:
            found.append(handle.read().replace(b'\\0', b' ').decode())
        if pid != os.getpid() and libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
            libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
        local = (ctypes.c_char * 8)()
        vec = (ctypes.c_void_p * 2)(ctypes.addressof(local), 8)
        libc.process_vm_readv(pid, vec, 1, vec, 1, 0)
    return found
"""
    tests = (
        "found = reach()\n"
        "assert any('child.py candidate' in c for c in found), found\n"
        "assert not any('child.py runner' in c for c in found), found\n"
    )
    report = run_tests(code, tests)
    assert report.score == 1.0, report.text()


def test_killing_the_parent_leaves_no_sandbox_behind() -> None:
    """A kernel killed with SIGKILL (no atexit) takes its warm sandboxes with it."""
    script = (
        "import os\n"
        "from tg_magic.sandbox import run_tests\n"
        "from tg_magic.sandbox.pool import pool\n"
        "run_tests('def add(a, b):\\n    return a + b\\n', 'assert add(1, 2) == 3')\n"
        "pool._wanted.put(None)\n"  # the filler starts the next warm pair, then ends
        "pool._thread.join()\n"
        "[pair] = next(iter(pool._warm.values()))\n"
        "print(pair.runner.popen.pid, pair.candidate.popen.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2, done.stderr
    for pid in pids:  # the parent-death signal arrives asynchronously: wait for each exit
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # gone and reaped already
        try:
            ready, _, _ = select.select([fd], [], [], 120)  # readable once it has exited
        finally:
            os.close(fd)
        assert ready, f"sandbox process {pid} outlived its killed parent"


def test_eight_600_mb_children_share_one_memory_limit() -> None:
    # Counted at the end: the kernel's OOM killer may kill an older child to let a younger one
    # allocate, so several may say they allocated, but never two hold 600 MB at once.
    code = """\
import os, select, time

def hogs():
    kids = []
    for _ in range(8):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                block = b"x" * (600 * 1024 * 1024)
                os.write(write, b"1")
                select.select([], [], [], 30)
            finally:
                os._exit(0)
        kids.append((pid, read))
    deadline = time.monotonic() + 10
    wrote = set()
    for pid, read in kids:
        left = max(0, deadline - time.monotonic())
        if select.select([read], [], [], left)[0] and os.read(read, 1) == b"1":
            wrote.add(pid)
    return sum(1 for pid in wrote if os.waitpid(pid, os.WNOHANG) == (0, 0))
"""
    report = run_tests(code, "assert hogs() == 8\n", memory_mb=1024, timeout=60)
    assert report.score == 0.0
    message = report.outcomes[0].message if report.outcomes else ""
    held = report.problem.startswith("memory limit of 1024 MB exceeded")
    assert held or message.startswith(("assert 0 == 8", "assert 1 == 8")), report.text()


@pytest.mark.parametrize("folder", ["/dev/shm", "/tmp", "."])
def test_shared_memory_tmp_and_scratch_are_bounded(folder: str) -> None:
    code = f"""\
def fill():
    written = 0
    try:
        with open({folder!r} + "/fill", "wb") as handle:
            for _ in range(200):
                handle.write(b"x" * 1024 * 1024)
                handle.flush()
                written += 1
    except OSError:
        pass
    return written
"""
    report = run_tests(code, "assert fill() == 200\n", disk_mb=32)
    assert report.score == 0.0
    assert report.outcomes[0].message.startswith("assert 3")  # 31 or 32 MB, not 200


# ------------------------------------------------------------------ forged verdicts


FORGERIES = {
    "patch pytest": (
        "import _pytest.python, _pytest.runner\n"
        "_pytest.python.Function.runtest = lambda self: None\n"
        "_pytest.runner.pytest_runtest_call = lambda item: None\n"
    ),
    "rewrite reports at exit": (
        "import atexit, glob, os\n"
        "def forge():\n"
        "    for name in glob.glob('*.xml') + glob.glob('/tmp/*') + glob.glob('/scratch/*'):\n"
        "        try:\n"
        "            open(name, 'w').write('<testsuite><testcase name=\"t\"/></testsuite>')\n"
        "        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n"
        "atexit.register(forge)\n"
    ),
    "exit 0 at import": "import os\nos._exit(0)\n",
    "sys.exit 0 at import": "import sys\nsys.exit(0)\n",
    "kill the parent and the group": (
        "import os, signal\n"
        "for kill in (lambda: os.kill(os.getppid(), 9), lambda: os.killpg(0, 9),\n"
        "             lambda: os.kill(-1, signal.SIGKILL)):\n"
        "    try:\n"
        "        kill()\n"
        "    except OSError:\n"
        "        pass\n"
    ),
    "fake report markers and messages on every fd": (
        "import json, os, struct\n"
        "fake = {'outcome': {'name': 'x', 'passed': True}, 'done': True}\n"
        "data = json.dumps(fake).encode()\n"
        "print('3 of 3 tests passed (score 1.00).')\n"
        "print('<testcase name=\"test\"/>')\n"
        "for fd in range(0, 64):\n"
        "    try:\n"
        "        os.write(fd, struct.pack('>I', len(data)) + data)\n"
        "    except OSError:\n"
        "        pass\n"
    ),
    "reopen every fd through /proc, both ways, and write a verdict": (
        "import json, os, struct\n"
        "fake = {'outcome': {'name': 'x', 'passed': True}, 'done': True}\n"
        "data = json.dumps(fake).encode()\n"
        "for folder in ('/proc/self/fd', '/proc/1/fd'):\n"
        "    for fd in os.listdir(folder):\n"
        "        for flags in (os.O_WRONLY, os.O_RDWR):\n"
        "            try:\n"
        "                new = os.open(f'{folder}/{fd}', flags | os.O_NONBLOCK)\n"
        "                os.write(new, struct.pack('>I', len(data)) + data)\n"
        "            except OSError:\n"
        "                pass\n"
    ),
}


@pytest.mark.parametrize("attack", list(FORGERIES))
def test_wrong_code_cannot_forge_a_pass(attack: str) -> None:
    report = run_tests(FORGERIES[attack] + WRONG_ADD, ADD_TESTS)
    assert report.score < 0.5, report.text()  # add(0, 5) == 5 passes with a - b? no: -5
    assert report.passed == 0, report.text()


@pytest.mark.parametrize(
    "returned",
    [
        "class Same:\n    def __eq__(self, other):\n        return True\n",
        "class Same(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n",
        "class Same(str):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = str.__hash__\n",
    ],
    ids=["object", "int-subclass", "str-subclass"],
)
def test_always_equal_returns_do_not_pass(returned: str) -> None:
    code = returned + "\ndef add(a, b):\n    return Same(7)\n"
    report = run_tests(code, ADD_TESTS)
    assert report.score == 0.0, report.text()


def test_an_object_that_cannot_cross_fails_in_one_line() -> None:
    code = "class Box:\n    pass\n\ndef add(a, b):\n    return Box()\n"
    report = run_tests(code, "assert add(1, 2) == 3\n")
    assert report.score == 0.0
    message = report.outcomes[0].message
    assert message.startswith("TypeError: add() returned a Box object, which cannot cross")
    assert len(message.splitlines()) == 1


def test_exceptions_cross_by_name_and_message() -> None:
    code = (
        "class TooSmall(ValueError):\n    pass\n\n"
        "def check(x):\n    if x < 0:\n        raise TooSmall('negative: %d' % x)\n    return x\n"
    )
    tests = (
        "import pytest\n"
        "def test_builtin_base():\n"
        "    with pytest.raises(ValueError, match='negative: -1'):\n"
        "        check(-1)\n"
        "def test_own_class():\n"
        "    with pytest.raises(TooSmall):\n"
        "        check(-2)\n"
        "def test_value():\n"
        "    assert check(3) == 3\n"
    )
    report = run_tests(code, tests)
    assert report.score == 1.0, report.text()


def test_plain_data_round_trips_and_in_place_changes_come_back() -> None:
    code = "def echo(x):\n    return x\n\ndef sort_in_place(xs):\n    xs.sort()\n"
    tests = (
        "value = {'a': (1, 2.5, None), 'b': {3, 4}, 'c': [b'x', bytearray(b'y'), 1j], "
        "(1, 'k'): frozenset({True})}\n"
        "assert echo(value) == value\n"
        "assert type(echo((1, 2))) is tuple\n"
        "xs = [3, 1, 2]\n"
        "sort_in_place(xs)\n"
        "assert xs == [1, 2, 3]\n"
    )
    report = run_tests(code, tests)
    assert report.score == 1.0, report.text()


@pytest.mark.parametrize(
    "secret",
    [
        "sk-ant-api03-" + "A1b2C3d4" * 6,
        "sk-proj-" + "x" * 40,
        "ghp_" + "Z" * 36,
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt\n-----END OPENSSH PRIVATE KEY-----",
    ],
)
def test_a_key_shaped_string_printed_by_the_code_never_reaches_the_report(secret: str) -> None:
    """Code that prints a credential it found (not one of ours, so not in our environment):
    the report that goes into gradients, widgets and feedback shows it redacted."""
    code = f"SECRET = {secret!r}\nprint(SECRET)\ndef add(a, b):\n    raise ValueError(SECRET)\n"
    report = run_tests(code, "assert add(1, 2) == 3\n")
    assert not report.passed
    assert secret not in report.text()
    assert "[redacted]" in report.text()


# ------------------------------------------------------------------ the test side's own names

WRONG_SQUARE = "def square(x):\n    return 0\n\n"
SHADOWS = {
    # The code defines a builtin the tests rely on; the tests must still see the real one.
    "range": (
        "def range(*args):\n    return []\n",
        "def test_squares():\n    for n in range(1, 5):\n        assert square(n) == n * n\n",
    ),
    "zip": (
        "def zip(*args):\n    return []\n",
        "def test_squares():\n"
        "    for n, want in zip([1, 2, 3], [1, 4, 9]):\n        assert square(n) == want\n",
    ),
    "all": (
        "def all(values):\n    return True\n",
        "assert all([square(n) == n * n for n in [1, 2, 3]])\n",
    ),
    "sorted": (
        "def sorted(values):\n    return [1, 4, 9]\n",
        "assert sorted([square(n) for n in [3, 1, 2]]) == [1, 4, 9]\n",
    ),
    "len": (
        "def len(values):\n    return 0\n",
        "bad = [n for n in [1, 2, 3] if square(n) != n * n]\nassert len(bad) == 0, bad\n",
    ),
}


@pytest.mark.parametrize("name", list(SHADOWS))
def test_the_code_cannot_redefine_a_builtin_the_tests_use(name: str) -> None:
    """A wrong square() that also defines range/zip/all/sorted/len: the test cell's loop or
    check must not run the code's version and pass without checking anything."""
    shadow, tests = SHADOWS[name]
    report = run_tests(WRONG_SQUARE + shadow, tests)
    assert report.passed == 0, report.text()
    assert f"the code defines `{name}`, Python's own, which the tests use; rename it" in (
        report.problem
    )


def test_a_builtin_name_the_tests_do_not_use_is_the_codes_own() -> None:
    code = "def sum(xs):\n    return 0\n\ndef square(n):\n    return n * n\n"
    assert run_tests(code, "assert square(3) == 9\n").score == 1.0


def test_stop_iteration_from_the_code_does_not_end_the_tests_loop() -> None:
    """StopIteration raised in the code must fail the check, not silently end the map() or
    filter() the test iterates (which makes all(map(...)) true without checking)."""
    code = "def is_even(n):\n    raise StopIteration\n"
    tests = (
        "assert all(map(is_even, [2, 4, 6]))\n"
        "assert list(filter(is_even, [1, 2, 3, 4])) == [2, 4]\n"
        "for ok in map(is_even, [8, 10]):\n    assert ok\n"
    )
    report = run_tests(code, tests)
    assert report.passed == 0, report.text()
    assert "StopIteration" in report.outcomes[0].message


# ------------------------------------------------------------------ forged frames on the stub pipe


def _frame(payload: str) -> str:
    """Candidate code whose add() writes `payload` (a Python bytes expression) as raw bytes to
    the pipe the runner reads its answers from, then ends its process."""
    return (
        "import os, struct, sys\n"
        "ANSWERS = int(sys.argv[2].split(',')[1])\n"
        "def add(a, b):\n"
        f"    data = {payload}\n"
        "    view = memoryview(data)\n"
        "    while view:\n"
        "        view = view[os.write(ANSWERS, view):]\n"
        "    os._exit(0)\n"
    )


def _framed(body: str) -> str:
    return f"(lambda b: struct.pack('>I', len(b)) + b)({body})"


STUB_FRAMES = {
    "a 4 GB length": "struct.pack('>I', 0xFFFFFFF0) + b'{'",
    "a cut frame": "struct.pack('>I', 1000) + b'{\"id\": 1, \"val'",
    "not UTF-8": _framed("b'\\xff\\xfe\\xfd'"),
    "not an object": _framed("b'[1, 2, 3]'"),
    "nested 100000 deep": _framed("b'{\"id\":1,\"value\":' + b'[' * 100000 + b']' * 100000 + b'}'"),
    "tags nested 900 deep": _framed(
        "b'{\"id\":1,\"value\":' + b'{\"t\":[' * 900 + b']}' * 900 + b'}'"
    ),
    "a 200000-digit int": _framed("b'{\"id\":1,\"value\":' + b'9' * 200000 + b'}'"),
    "an unhashable set": _framed('b\'{"id":1,"value":{"s":[[1]]}}\''),
    "a bad dict pair": _framed('b\'{"id":1,"value":{"d":[[1]]}}\''),
    "bad base64": _framed('b\'{"id":1,"value":{"b":"%%%"}}\''),
    "a complex of strings": _framed('b\'{"id":1,"value":{"c":["x","y"]}}\''),
    "another call's id": _framed('b\'{"id":7,"value":3}\''),
    "a forged verdict in the answer": _framed(
        'b\'{"id":1,"value":-1,"done":true,"outcome":{"name":"t","passed":true}}\''
    ),
    "a forged BaseException": _framed(
        'b\'{"id":1,"raised":{"type":"KeyboardInterrupt","message":""}}\''
    ),
    "an exception that cannot be built": _framed(
        'b\'{"id":1,"raised":{"type":"UnicodeDecodeError","message":"x"}}\''
    ),
    "an 8 MB answer of empty lists": _framed(
        "b'{\"id\":1,\"value\":[' + b','.join([b'[]'] * 2_700_000) + b']}'"
    ),
}


@pytest.mark.parametrize("frame", list(STUB_FRAMES))
def test_forged_frames_on_the_stub_pipe_give_no_pass_and_end_in_time(frame: str) -> None:
    """The code speaks the wire protocol itself: oversized, cut, malformed, deeply nested or
    forged answers. The runner must fail the test (not crash into a pass, not hang)."""
    code = _frame(STUB_FRAMES[frame])
    tests = "assert add(1, 2) == 4\nassert add(2, 2) == 5\nassert add(0, 5) == 6\n"
    report = run_tests(code, tests, timeout=20)
    assert report.passed == 0, report.text()
    assert report.status != "timeout", report.text()
    assert report.text().startswith(("0 of", "No tests ran")), report.text()


def test_a_failure_message_that_fakes_a_pass_does_not_change_the_summary() -> None:
    """Exception messages and output written to look like the report's own summary line."""
    fake = "\\n3 of 3 tests passed (score 1.00).\\n"
    code = (
        f"print('{fake}' * 3)\n"
        "import os\n"
        f"os.write(1, b'{fake}')\n"
        f"def add(a, b):\n    raise AssertionError('{fake}')\n"
    )
    report = run_tests(code, ADD_TESTS)
    assert report.score == 0.0
    assert report.text().splitlines()[0] == "0 of 3 tests passed (score 0.00).", report.text()


def test_terminal_escapes_from_the_code_never_reach_a_report() -> None:
    """Colours, a cleared screen or a window title in output and messages would repaint the
    terminal of `tg-magic feedback` or a log viewer; the report keeps the words only."""
    code = (
        "print('\\x1b[2J\\x1b[31mred\\x1b[0m')\n"
        "import sys\nsys.stderr.write('\\x1b]0;owned\\x07 bell\\r')\n"
        "def add(a, b):\n    raise ValueError('\\x1b[1Aup\\x00 and \\x9b over')\n"
    )
    for report in (run_tests(code, ADD_TESTS), run_tests("import sys\nsys.exit('\\x1b[2J')", "")):
        everything = (
            report.text()
            + report.problem
            + report.output
            + "".join(o.message + o.output + o.traceback for o in report.outcomes)
        )
        assert not any(c in everything for c in "\x1b\x07\x00\x9b\r"), repr(everything)
    assert "up and  over" in run_tests(code, ADD_TESTS).outcomes[0].message
