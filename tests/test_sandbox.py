"""The sandbox runs real tests in real child processes; these checks do the same (no mocks)."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tg_magic.sandbox import SandboxUnavailable, TestReport, available, containment, run_tests

ADD_TESTS = """\
def test_small():
    assert add(1, 2) == 3

def test_negative():
    assert add(-1, -1) == -2, "negative numbers must add up"

def test_zero():
    assert add(0, 0) == 0
"""

ROOT = Path(__file__).resolve().parents[1]
CONTAINED = containment().startswith("bubblewrap:")
needs_bwrap = pytest.mark.skipif(not CONTAINED, reason=containment())


def test_passing_code_scores_one() -> None:
    report = run_tests("def add(a, b):\n    return a + b\n", ADD_TESTS)
    assert report.score == 1.0
    assert report.problem == ""
    assert [o.name for o in report.outcomes] == ["test_small", "test_negative", "test_zero"]
    assert all(o.passed for o in report.outcomes)
    assert report.text().startswith("3 of 3 tests passed")
    assert report.contained == containment()


def test_partly_wrong_code_gets_the_fraction_and_the_message() -> None:
    code = "def add(a, b):\n    return abs(a) + abs(b)\n"
    report = run_tests(code, ADD_TESTS)
    assert report.score == pytest.approx(2 / 3)
    failed = [o for o in report.outcomes if not o.passed]
    assert [o.name for o in failed] == ["test_negative"]
    assert "negative numbers must add up" in failed[0].message
    text = report.text()
    assert text.startswith("2 of 3 tests passed")
    assert "test_negative" in text
    assert "negative numbers must add up" in text
    assert "abs" in failed[0].traceback or "assert 2 == -2" in text


def test_each_bare_assert_is_a_test() -> None:
    tests = '''\
from math import *
expected = """first line
second line"""
assert describe() == expected
assert floor(2.5) == 2
assert len(describe()) > 3
'''
    code = 'def describe():\n    return "first line\\nsecond line"\n'
    good = run_tests(code, tests)
    names = ["line 4: assert describe() == expected", "line 5: assert floor(2.5) == 2"]
    names.append("line 6: assert len(describe()) > 3")
    assert [o.name for o in good.outcomes] == names
    assert good.score == 1.0, good.text()

    bad = run_tests('def describe():\n    return "nope"\n', tests)
    assert bad.score == pytest.approx(2 / 3)
    assert [o.passed for o in bad.outcomes] == [False, True, True]
    assert bad.outcomes[0].message.startswith("assert 'nope' == 'first line")
    assert "nope" in bad.text()


def test_one_of_three_asserts_scores_a_third() -> None:
    tests = "assert median([1, 2, 3]) == 2\nassert median([4, 1, 3, 2]) == 2.5\n"
    tests += "assert median([1, 2]) == 1.5\n"
    report = run_tests("def median(xs):\n    return sorted(xs)[len(xs) // 2]\n", tests)
    assert report.status == "ok"
    assert report.score == pytest.approx(1 / 3)
    assert report.passed == 1 and len(report.outcomes) == 3
    assert all(o.duration >= 0 for o in report.outcomes)


def test_asserts_inside_a_loop_count_whether_they_pass_or_fail() -> None:
    """A top-level for loop of asserts is one test: counted when it passes too (it was only
    counted when it failed, so right code scored 0 with "no tests were found")."""
    loop = "for n in [1, 2, 3]:\n    assert square(n) == n * n\n"
    right = run_tests("def square(x):\n    return x * x\n", loop)
    assert right.status == "ok" and right.score == 1.0, right.text()
    half = run_tests("def square(x):\n    return x * x\n", loop + "assert square(0) == 1\n")
    assert half.passed == 1 and len(half.outcomes) == 2, half.text()


def test_candidate_cannot_add_its_own_tests() -> None:
    code = "def add(a, b):\n    return 0\n\ndef test_free_pass():\n    pass\n"
    report = run_tests(code, "def test_add():\n    assert add(1, 1) == 2\n")
    assert [o.name for o in report.outcomes] == ["test_add"]
    assert report.score == 0.0


def test_skipping_is_not_passing() -> None:
    code = "import pytest\n\ndef add(a, b):\n    pytest.skip('not today')\n"
    report = run_tests(code, ADD_TESTS)
    assert report.score == 0.0
    assert "not today" in report.text()


def test_infinite_loop_times_out() -> None:
    start = time.monotonic()
    report = run_tests("def add(a, b):\n    while True:\n        pass\n", ADD_TESTS, timeout=2)
    assert time.monotonic() - start < 5
    assert report.score == 0.0
    assert report.problem == "timed out after 2 s"
    assert "timed out" in report.text()


@pytest.mark.parametrize(
    "body",
    ["x = bytearray(4 * 1024**3)", "x = []\n    while True:\n        x.append(' ' * 10**6)"],
    ids=["one-big-block", "growing-list"],
)
def test_memory_bomb_hits_the_limit(body: str) -> None:
    code = f"def add(a, b):\n    {body}\n"
    report = run_tests(code, ADD_TESTS, memory_mb=256, timeout=10)
    assert report.score == 0.0
    assert "memory" in report.problem
    assert "256 MB" in report.problem


def test_sys_exit_at_import_scores_zero() -> None:
    report = run_tests("import sys\nsys.exit(3)\n", ADD_TESTS)
    assert report.score == 0.0
    assert report.status == "error"
    assert report.problem == "the code exited with status 3 before the tests finished"
    assert "status 3" in report.text()


def test_os_exit_inside_a_test_scores_zero() -> None:
    code = "import os\n\ndef add(a, b):\n    os._exit(0)\n"
    report = run_tests(code, ADD_TESTS)
    assert report.score == 0.0
    assert report.status == "crashed"
    assert not any(o.passed for o in report.outcomes)
    assert report.problem == "the code exited with status 0 before the tests finished"


def test_sys_exit_inside_a_test_is_a_failure() -> None:
    code = "import sys\n\ndef add(a, b):\n    sys.exit(0)\n"
    report = run_tests(code, ADD_TESTS)
    assert report.score == 0.0
    assert len(report.outcomes) == 3
    assert all("SystemExit" in o.message for o in report.outcomes)


def test_exception_at_import_is_an_error() -> None:
    report = run_tests("raise RuntimeError('broken at import')\n", ADD_TESTS)
    assert report.score == 0.0
    assert report.status == "error"
    assert report.problem == "the code failed when loaded: RuntimeError: broken at import"
    assert "broken at import" in report.text()


def test_syntax_error_in_the_code_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    report = run_tests("def add(a, b)\n    return a + b\n", ADD_TESTS)
    assert report.score == 0.0
    assert report.problem.startswith("syntax error in the code: line 1:")
    assert report.outcomes == ()


def test_broken_test_cell_raises() -> None:
    with pytest.raises(ValueError, match=r"the test cell does not parse: line 2"):
        run_tests("def add(a, b):\n    return a + b\n", "x = 1\nassert add(1,\n")


def test_output_flood_is_truncated() -> None:
    code = "def add(a, b):\n    print('x' * 10**8)\n    return a + b\n"
    report = run_tests(code, ADD_TESTS, output_limit=5_000)
    assert report.score == 0.0
    assert "output" in report.problem
    assert "truncated" in report.problem
    assert len(report.output) < 6_000
    assert all(len(o.output) < 5_200 for o in report.outcomes)
    assert len(report.text()) <= 6_000


def test_flood_past_the_capture_is_stopped() -> None:
    # Writes straight to the process's own stdout and stderr, bypassing the capture.
    code = """\
import functools
import os

def add(a, b):
    while True:
        os.write(1, b"z" * 65536)
        os.write(2, b"z" * 65536)
"""
    start = time.monotonic()
    report = run_tests(code, ADD_TESTS, output_limit=5_000, timeout=15)
    assert time.monotonic() - start < 10
    assert report.score == 0.0
    assert report.status == "crashed"
    assert report.problem.startswith("output limit exceeded: more than 50000 characters")
    assert len(report.output) < 6_000


def test_large_but_sane_output_is_only_truncated() -> None:
    code = "def add(a, b):\n    print('y' * 9_000)\n    return a + b\n"
    report = run_tests(code, ADD_TESTS, output_limit=5_000)
    assert report.score == 1.0
    assert report.problem == "output truncated at 5000 characters"


def _env_check() -> str:
    return """\
import functools
import os

def test_no_keys():
    print(dict(os.environ))
    assert "ANTHROPIC_API_KEY" not in os.environ
    assert not any("sk-ant" in value for value in os.environ.values())
"""


def _assert_secret_absent(report: TestReport) -> None:
    assert report.score == 1.0, report.text()
    assert "PYTHONHASHSEED" in report.outcomes[0].output  # the environment was printed
    everything = report.text() + report.output + repr(report.outcomes)
    assert "sk-ant-secret-value" not in everything


def test_api_keys_do_not_reach_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ant-secret-value")
    _assert_secret_absent(run_tests("", _env_check()))


@needs_bwrap
def test_writes_outside_the_scratch_folder_are_blocked(tmp_path: Path) -> None:
    other = Path(tempfile.mkdtemp(dir="/var/tmp"))  # outside /tmp, which bwrap replaces
    try:
        targets = [tmp_path / "escape.txt", other / "escape.txt"]
        tests = "\n".join(
            [
                "import pytest",
                f"TARGETS = {[str(t) for t in targets]!r}",
                "def test_cannot_write():",
                "    for target in TARGETS:",
                "        with pytest.raises(OSError):",
                "            open(target, 'w').write('escaped')",
                "def test_scratch_is_writable():",
                "    open('own.txt', 'w').write('fine')",
                "",
            ]
        )
        report = run_tests("", tests)
        assert report.score == 1.0, report.text()
        assert not any(t.exists() for t in targets)
    finally:
        for leftover in other.iterdir():
            leftover.unlink()
        other.rmdir()


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    """A real TCP server on 127.0.0.1 that records every connection it accepts."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            seen.append("connected")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


@needs_bwrap
def test_network_is_blocked(loopback_server: tuple[int, list[str]]) -> None:
    port, seen = loopback_server
    probe = socket.create_connection(("127.0.0.1", port), timeout=2)  # the server does work
    probe.close()
    time.sleep(0.3)
    assert seen == ["connected"]
    tests = f"""\
import socket, pytest

def test_no_network():
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", {port}), timeout=2)
"""
    report = run_tests("", tests)
    assert report.score == 1.0, report.text()
    time.sleep(0.3)
    assert seen == ["connected"]


def test_without_bubblewrap_limits_still_hold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    assert not available()
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap"):
        run_tests("def add(a, b):\n    return a + b\n", ADD_TESTS)
    line = containment(allow_unsandboxed=True)
    assert line.startswith("NOT CONTAINED")
    assert "read your files" in line and "network" in line and "time and output" in line
    unsandboxed = functools.partial(run_tests, allow_unsandboxed=True)

    report = unsandboxed("", _env_check())
    assert report.contained == line
    _assert_secret_absent(report)

    # A leftover grandchild is killed with the process group when the run ends.
    code = (
        "import subprocess, sys\n"
        "def add(a, b):\n"
        "    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "    print('PID', child.pid)\n"
        "    return a + b\n"
    )
    report = unsandboxed(code, "def test_add():\n    assert add(1, 1) == 2\n", timeout=10)
    assert report.score == 1.0, report.text()
    pid = int(report.outcomes[0].output.split("PID")[1].split()[0])
    time.sleep(0.2)
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"

    looping = unsandboxed("def add(a, b):\n    while True:\n        pass\n", ADD_TESTS, timeout=2)
    assert looping.problem == "timed out after 2 s"
    assert os.environ["ANTHROPIC_API_KEY"] == "sk-ant-secret-value"  # the parent keeps its own


@needs_bwrap
def test_a_runtime_installed_under_tmp_is_seen_inside(tmp_path: Path) -> None:
    """A clone and its .venv under /tmp (a CI checkout) must stay visible through the
    sandbox's private /tmp: a venv here (tmp_path is under /tmp) holds pytest itself."""
    import pytest as real_pytest

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert site.startswith("/tmp/")
    installed = Path(real_pytest.__file__).parent.parent  # our site-packages
    for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py"):
        source = installed / name
        if source.is_dir():
            shutil.copytree(source, Path(site) / name)
        elif source.exists():
            shutil.copy(source, Path(site) / name)
    TESTS = "import pytest\n\n" + ADD_TESTS  # tests that need pytest itself
    # tg_magic and its dependencies come from this checkout and our environment, after the
    # venv's own site-packages, so pytest inside the sandbox can only be the copy under /tmp.
    program = (
        "import sys\n"
        f"sys.path += [{str(ROOT)!r}, {str(installed)!r}]\n"
        "from tg_magic.sandbox import run_tests\n"
        f"report = run_tests('def add(a, b):\\n    return a + b\\n', {TESTS!r})\n"
        "print(report.score, report.problem)\n"
    )
    result = subprocess.run([str(python), "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1.0", result.stdout


def test_the_same_code_and_tests_run_once_per_process_and_other_limits_run_again() -> None:
    code = "import os\nTOKEN = os.urandom(8).hex()\n\ndef token():\n    return TOKEN\n"
    tests = "assert token() == ''\n"  # fails, and the message carries this run's token
    first = run_tests(code, tests)
    assert "assert '" in first.outcomes[0].message
    assert run_tests(code, tests).outcomes[0].message == first.outcomes[0].message  # not rerun
    other = run_tests(code, tests, timeout=19)
    assert other.outcomes[0].message != first.outcomes[0].message  # other limits: a new run


def test_the_default_memory_limit_is_1024_mb() -> None:
    report = run_tests("def add(a, b):\n    x = bytearray(2 * 1024**3)\n", ADD_TESTS)
    assert report.score == 0.0
    assert "1024 MB" in report.problem, report.problem


def test_a_test_that_needs_arguments_fails_in_one_line_naming_them() -> None:
    """What a call without arguments would miss: parameters without a default, also those
    behind a decorator (functools.wraps) and keyword-only ones; `self` of a test class's method
    is given."""
    tests = (
        "import functools\n"
        "def test_needs(a, b=1, *args, c, d=2, **kwargs):\n"
        "    pass\n"
        "def test_defaults(a=1, *, b=2):\n"
        "    assert add(a, b) == 3\n"
        "def wrapped(function):\n"
        "    @functools.wraps(function)\n"
        "    def call(*args, **kwargs):\n"
        "        return function(*args, **kwargs)\n"
        "    return call\n"
        "@wrapped\n"
        "def test_wrapped(x):\n"
        "    pass\n"
        "class TestAdd:\n"
        "    def test_method(self):\n"
        "        assert add(1, 1) == 2\n"
        "    def test_method_needs(self, y):\n"
        "        pass\n"
    )
    report = run_tests("def add(a, b):\n    return a + b\n", tests)
    messages = {o.name: (o.passed, o.message) for o in report.outcomes}
    fixtures = "; fixtures are not provided: write the test without parameters"
    assert messages == {
        "test_needs": (False, "TypeError: test_needs takes parameters (a, c)" + fixtures),
        "test_defaults": (True, ""),
        "test_wrapped": (False, "TypeError: test_wrapped takes parameters (x)" + fixtures),
        "TestAdd.test_method": (True, ""),
        "TestAdd.test_method_needs": (False, "TypeError: TestAdd takes parameters (y)" + fixtures),
    }, messages
