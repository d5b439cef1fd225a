"""Run a candidate code cell against a test cell in a contained child process.

The optimizer feeds LLM-written code to real tests, so the code is untrusted: it runs in a
separate process (under bubblewrap when that works) with a wall-clock timeout, an address-space
limit, bounded output and a minimal environment without API keys. Results come back through
pytest's JUnit XML report, so a crash or an early exit can never look like a pass.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import functools
import io
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize
import xml.etree.ElementTree as ET
from dataclasses import dataclass

__all__ = ["TestOutcome", "TestReport", "containment", "run_tests"]

_CODE_FILE = "candidate.py"
_TEST_MODULE = "test_candidate"
_HEADER = "from candidate import *  # noqa: F403"
_WRAPPED_NAME = "test_cell"
_TEXT_CAP = 6000
_TRACEBACK_LINES = 15
_FLOOD_FACTOR = 10  # the child is killed once its stream passes this many times the output limit
_FILE_SIZE_FLOOR = 16 * 1024 * 1024  # bytes; also bounds pytest's capture files
_NO_BWRAP_TAIL = (
    "the tests can write files and open network connections; "
    "timeout, memory and output limits still apply"
)
_BWRAP_LINE = "bubblewrap: read-only file system, no network, scratch folder writable"

# Environment variables copied from the parent; everything else (API keys above all) stays out.
_ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")

# Runs first inside the child: limits are set here rather than in preexec_fn, which is unsafe
# when the parent has threads (a Jupyter kernel does).
_LAUNCHER = """\
import resource, runpy, signal, sys
def limit(kind, value):
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))
limit(resource.RLIMIT_AS, int(sys.argv[1]))
limit(resource.RLIMIT_FSIZE, int(sys.argv[2]))
limit(resource.RLIMIT_CORE, 0)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
sys.argv = ["pytest", *sys.argv[3:]]
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
"""

# Loaded by pytest from the scratch folder. It clips captured output before the JUnit report
# is written (so a flood cannot bloat the report) and drops test functions that the candidate
# smuggled in through `from candidate import *`.
_CONFTEST = """\
import pytest

LIMIT = {limit}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    total = 0
    clipped = []
    for title, content in report.sections:
        total = max(total, len(content))
        if len(content) > LIMIT:
            content = content[:LIMIT] + "\\n[output truncated at %d characters]" % LIMIT
        clipped.append((title, content))
    report.sections = clipped
    if total > LIMIT:
        report.user_properties.append(("tg_magic_output_chars", str(total)))
    return report


def pytest_collection_modifyitems(items):
    def from_candidate(item):
        return getattr(getattr(item, "obj", None), "__module__", None) == "candidate"

    items[:] = [item for item in items if not from_candidate(item)]
"""

_PYTEST_INI = "[pytest]\n"  # stops rootdir/conftest discovery from wandering above the scratch


@dataclass(frozen=True)
class TestOutcome:
    """One test's result, trimmed to what helps an LLM fix the code."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    message: str
    traceback: str
    output: str


@dataclass(frozen=True)
class TestReport:
    """The whole run: per-test outcomes, a score, and what (if anything) went wrong."""

    __test__ = False

    outcomes: tuple[TestOutcome, ...]
    score: float
    problem: str
    output: str
    contained: str

    def text(self) -> str:
        """Concise evaluation text for the LLM: summary first, then each failure."""
        total = len(self.outcomes)
        passed = sum(1 for o in self.outcomes if o.passed)
        if total:
            head = f"{passed} of {total} tests passed (score {self.score:.2f})."
        else:
            head = f"No tests ran (score {self.score:.2f})."
        lines = [head]
        if self.problem:
            lines.append(f"Problem: {self.problem}")
        out = "\n".join(lines)
        failed = [o for o in self.outcomes if not o.passed]
        budget = _TEXT_CAP - len(out)
        if not failed:
            if self.problem and not total and self.output.strip():
                out += "\n\nOutput of the run (end):\n" + _indent(_run_tail(self.output))
            return _clip(out, _TEXT_CAP)
        per_test = max(600, budget // min(len(failed), 4))
        shown = 0
        for outcome in failed:
            block = _clip(_describe(outcome), per_test)
            if len(out) + len(block) + 2 > _TEXT_CAP - 200:
                break
            out += "\n\n" + block
            shown += 1
        rest = failed[shown:]
        if rest:
            names = ", ".join(o.name for o in rest)
            out += f"\n\n{len(rest)} more failed: {_clip(names, 150)}"
        return _clip(out, _TEXT_CAP)


def _describe(outcome: TestOutcome) -> str:
    """One failed test as a readable block."""
    parts = [f"FAILED {outcome.name}"]
    if outcome.message:
        parts.append("Message:\n" + _indent(_clip(outcome.message, 800)))
    if outcome.traceback:
        parts.append("Traceback (end):\n" + _indent(outcome.traceback))
    if outcome.output.strip():
        parts.append("Captured output:\n" + _indent(_tail_chars(outcome.output.strip(), 1200)))
    return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _clip(text: str, limit: int) -> str:
    """Keep the start; mark the cut so the reader knows something is missing."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 20)] + "\n[... truncated]"


def _tail_chars(text: str, limit: int) -> str:
    """Keep the end, where tracebacks and final errors are."""
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]


def _run_tail(output: str) -> str:
    """The end of the child's own output, without pytest's INTERNALERROR prefixes."""
    lines = [line.removeprefix("INTERNALERROR> ") for line in output.strip().splitlines()]
    return _tail_chars(_tail_lines("\n".join(line[:200] for line in lines), 20), 2500)


def _tail_lines(text: str, count: int) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) <= count:
        return "\n".join(lines)
    return "\n".join(["[...]", *lines[-count:]])


# --------------------------------------------------------------------------- containment


@functools.cache
def _probe_bwrap(bwrap: str) -> str:
    """Return "" when bwrap can really start a contained Python, else why not (cached)."""
    scratch = tempfile.mkdtemp(prefix="tg-magic-probe-")
    try:
        cmd = [*_bwrap_args(bwrap, scratch), sys.executable, "-c", "pass"]
        done = subprocess.run(
            cmd,
            cwd=scratch,
            env=_child_env(scratch),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode == 0:
        return ""
    err = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return err[-1] if err else f"exit status {done.returncode}"


def _bwrap() -> str | None:
    """Path of a working bwrap, or None."""
    path = shutil.which("bwrap")
    if path is None or _probe_bwrap(path):
        return None
    return path


def containment() -> str:
    """One line for the user: how runs are contained here, and what is not."""
    path = shutil.which("bwrap")
    if path is None:
        return f"no bubblewrap (apt-get install bubblewrap): {_NO_BWRAP_TAIL}"
    why = _probe_bwrap(path)
    if why:
        return f"bubblewrap does not work here ({why[:120]}): {_NO_BWRAP_TAIL}"
    return _BWRAP_LINE


def _bwrap_args(bwrap: str, scratch: str) -> list[str]:
    """Read-only host, private /tmp, writable scratch, no network, no capabilities.

    --cap-drop ALL matters when running as root: without it the child may remount / writable.
    The private /tmp hides other runs' scratch folders; it is left out when Python itself lives
    under /tmp, and it comes before the scratch bind, which it would otherwise hide.
    """
    python = {os.path.realpath(sys.executable), sys.prefix, sys.base_prefix}
    python_in_tmp = any(path == "/tmp" or path.startswith("/tmp/") for path in python)
    private_tmp = [] if python_in_tmp else ["--tmpfs", "/tmp"]
    return [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        *private_tmp,
        "--bind", scratch, scratch,
        "--chdir", scratch,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--cap-drop", "ALL",
        "--",
    ]  # fmt: skip


def _child_env(scratch: str) -> dict[str, str]:
    """Minimal allow-listed environment: nothing secret from the parent reaches the tests."""
    env = {key: os.environ[key] for key in _ENV_ALLOW if key in os.environ}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        HOME=scratch,
        # Temp files (pytest's capture files too) stay under the size limit and get removed.
        TMPDIR=scratch,
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        PYTHONUTF8="1",
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        # BLAS pools reserve a lot of address space per thread and would trip the memory limit.
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


# --------------------------------------------------------------------------- test file


def _syntax_line(exc: SyntaxError | ValueError) -> str:
    if isinstance(exc, SyntaxError):
        return f"line {exc.lineno}: {exc.msg}"
    return str(exc)


def _is_test_function(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _defines_tests(tree: ast.Module) -> bool:
    """Does the cell define pytest-style tests (so it should be used as a module as it is)?"""
    for node in tree.body:
        if _is_test_function(node):
            return True
        if not (isinstance(node, ast.ClassDef) and node.name.startswith("Test")):
            continue
        if any(_is_test_function(item) for item in node.body):
            return True
    return False


def _must_hoist(node: ast.stmt) -> bool:
    """Statements that are illegal inside a function: star imports and __future__ imports."""
    return isinstance(node, ast.ImportFrom) and (
        node.module == "__future__" or any(alias.name == "*" for alias in node.names)
    )


def _is_future(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def _string_continuation_rows(source: str) -> set[int]:
    """0-based indices of lines that continue a multi-line string (must not be re-indented)."""
    rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            rows.update(range(tok.start[0], tok.end[0]))
    return rows


def _wrap_text(source: str, tree: ast.Module) -> str | None:
    """Indent the cell into `def test_cell():`, keeping its text; None if that is not safe."""
    lines = source.splitlines()
    future_rows: set[int] = set()
    star_rows: set[int] = set()
    other_rows: set[int] = set()
    for node in tree.body:
        rows = set(range(node.lineno - 1, node.end_lineno or node.lineno))
        if _is_future(node):
            future_rows |= rows
        elif _must_hoist(node):
            star_rows |= rows
        else:
            other_rows |= rows
    hoisted_rows = future_rows | star_rows
    if hoisted_rows & other_rows:
        return None  # e.g. `from m import *; x = 1` on one line
    try:
        keep = _string_continuation_rows(source)
    except (tokenize.TokenError, SyntaxError):
        return None
    future = [lines[i] for i in sorted(future_rows)]
    star = [lines[i] for i in sorted(star_rows)]
    body: list[str] = []
    for index, line in enumerate(lines):
        if index in hoisted_rows:
            body.append("")
        elif index in keep or not line.strip():
            body.append(line)
        else:
            body.append("    " + line)
    if not any(not _must_hoist(node) for node in tree.body):
        body.append("    pass")
    return "\n".join([*future, _HEADER, *star, f"def {_WRAPPED_NAME}():", *body]) + "\n"


def _wrap_ast(tree: ast.Module) -> str:
    """Fallback wrapping through the AST (loses comments and formatting, keeps meaning)."""
    future = [node for node in tree.body if _is_future(node)]
    star = [node for node in tree.body if _must_hoist(node) and not _is_future(node)]
    rest = [node for node in tree.body if not _must_hoist(node)]
    func = ast.parse(f"def {_WRAPPED_NAME}():\n    pass\n").body[0]
    assert isinstance(func, ast.FunctionDef)
    if rest:
        func.body = rest
    header = ast.parse(_HEADER).body
    module = ast.Module(body=[*future, *header, *star, func], type_ignores=[])
    return ast.unparse(ast.fix_missing_locations(module)) + "\n"


def _test_module(tests: str) -> str:
    """The test file's text: the cell as it is, or wrapped into one test; ValueError if broken."""
    try:
        tree = ast.parse(tests, filename="test cell")
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"the test cell does not parse: {_syntax_line(exc)}") from None
    if _defines_tests(tree):
        future_end = max((n.end_lineno or n.lineno for n in tree.body if _is_future(n)), default=0)
        lines = tests.splitlines()
        text = "\n".join([*lines[:future_end], _HEADER, *lines[future_end:]]) + "\n"
    else:
        wrapped = _wrap_text(tests, tree)
        if wrapped is None or not _compiles(wrapped):
            wrapped = _wrap_ast(tree)
        text = wrapped
    try:
        compile(text, f"{_TEST_MODULE}.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"the test cell does not compile: {_syntax_line(exc)}") from None
    return text


def _compiles(text: str) -> bool:
    try:
        compile(text, f"{_TEST_MODULE}.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- running


@dataclass
class _Stream:
    """Bounded record of the child's stdout+stderr: the head and the tail, never all of it."""

    limit: int
    head: bytearray
    tail: bytearray
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self.limit // 2
            if excess > 0:
                del self.tail[:excess]

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.total > len(self.head) + len(self.tail):
            return f"{head}\n[... output truncated at {self.limit} characters ...]\n{tail}"
        return head + tail


@dataclass
class _Run:
    returncode: int | None
    timed_out: bool
    flooded: bool
    stream: _Stream


def _exited(pid: int) -> bool:
    """Has the child exited? Does not reap it, so its process group id stays reserved."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _execute(cmd: list[str], scratch: str, timeout: float, output_limit: int) -> _Run:
    """Run the child with a deadline, draining its output into a bounded buffer."""
    stream = _Stream(limit=output_limit, head=bytearray(), tail=bytearray())
    proc = subprocess.Popen(
        cmd,
        cwd=scratch,
        env=_child_env(scratch),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    timed_out = flooded = False
    exit_seen: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        open_pipe = True
        while True:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exit_seen is None and _exited(proc.pid):
                exit_seen = now
            if exit_seen is not None and (not open_pipe or now - exit_seen > 0.5):
                break  # done, or a leftover grandchild holds the pipe open
            if not open_pipe:
                time.sleep(0.02)
                continue
            if not selector.select(min(0.1, deadline - now)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                open_pipe = False
                selector.unregister(fd)
                continue
            stream.add(chunk)
            if stream.total > _FLOOD_FACTOR * output_limit:
                flooded = True
                break
    _kill_group(proc.pid)  # the whole group: grandchildren too, whether we finished or not
    returncode = proc.wait()
    proc.stdout.close()
    if timed_out or flooded:
        return _Run(None, timed_out, flooded, stream)
    return _Run(returncode, False, False, stream)


def _pytest_args(report_name: str) -> list[str]:
    return [
        "-q",
        "-p", "no:cacheprovider",
        f"--junitxml={report_name}",
        "-o", "junit_logging=all",
        "--tb=short",
        "--no-header",
        f"{_TEST_MODULE}.py",
    ]  # fmt: skip


def run_tests(
    code: str,
    tests: str,
    *,
    timeout: float = 20.0,
    memory_mb: int = 1024,
    output_limit: int = 20_000,
) -> TestReport:
    """Run the test cell against the code cell in a contained child process and score it."""
    test_text = _test_module(tests)  # the user's cell: a broken one raises ValueError
    try:
        compile(code, _CODE_FILE, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        problem = f"syntax error in the code: {_syntax_line(exc)}"
        return TestReport((), 0.0, problem, "", "not run: the code does not parse")

    scratch = tempfile.mkdtemp(prefix="tg-magic-")
    try:
        files = {
            _CODE_FILE: code,
            f"{_TEST_MODULE}.py": test_text,
            "conftest.py": _CONFTEST.format(limit=output_limit),
            "pytest.ini": _PYTEST_INI,
        }
        for name, text in files.items():
            with open(os.path.join(scratch, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        report_name = f"report-{secrets.token_hex(8)}.xml"  # not guessable by the candidate
        memory = memory_mb * 1024 * 1024
        file_size = max(_FILE_SIZE_FLOOR, _FLOOD_FACTOR * output_limit)
        bwrap = _bwrap()
        prefix = _bwrap_args(bwrap, scratch) if bwrap else []
        cmd = [
            *prefix,
            sys.executable,
            "-c",
            _LAUNCHER,
            str(memory),
            str(file_size),
            *_pytest_args(report_name),
        ]
        run = _execute(cmd, scratch, timeout, output_limit)
        contained = _BWRAP_LINE if bwrap else containment()
        limits = _Limits(timeout, memory_mb, output_limit, file_size)
        return _judge(run, os.path.join(scratch, report_name), limits, contained)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- judging

_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_EFBIG = f"[Errno {errno.EFBIG}]"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _exit_problem(returncode: int | None, bwrapped: bool) -> str:
    """Describe how the child ended before writing its report."""
    if returncode is None:
        return "the code stopped before the tests finished"
    if returncode < 0:
        return f"the code was killed by {_signal_name(-returncode)} before the tests finished"
    if bwrapped and returncode > 128 and returncode - 128 in {s.value for s in signal.Signals}:
        # bubblewrap reports a child killed by a signal as 128 + the signal number.
        name = _signal_name(returncode - 128)
        return f"the code was killed by {name} before the tests finished"
    return f"the code exited with status {returncode} before the tests finished"


def _last_error_line(text: str) -> str:
    """The most telling line of a traceback: the exception, not the frames."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("E "):
            return line[1:].strip()
    return lines[-1] if lines else ""


def _clean_output(parts: list[str]) -> str:
    """Drop pytest's "Captured Out" banners and empty sections from JUnit system-out/err."""
    kept: list[str] = []
    for part in parts:
        for line in part.splitlines():
            if re.fullmatch(r"-+ Captured (Log|Out|Err) -+", line.strip()):
                continue
            kept.append(line)
    return "\n".join(kept).strip()


@dataclass
class _Parsed:
    outcomes: list[TestOutcome]
    internal_error: str  # traceback text of a pytest internal error, "" if none
    collect_error: TestOutcome | None
    output_chars: int  # largest captured output of one test, when it was clipped
    error_lines: list[str]  # the exception line of every failure, error and skip
    skipped: int = 0  # skipped or xfailed: not a pass, yet pytest still exits 0


def _parse_report(path: str, output_limit: int) -> _Parsed | None:
    """Read pytest's JUnit XML; None if it is missing or unreadable (the run did not finish)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    parsed = _Parsed([], "", None, 0, [])  # filled case by case below
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        name = case.get("name", "?")
        for prop in case.iter("property"):
            if prop.get("name") == "tg_magic_output_chars":
                parsed.output_chars = max(parsed.output_chars, int(prop.get("value", "0") or 0))
        problems = [child for child in case if child.tag in ("failure", "error", "skipped")]
        texts = [(p.get("message", ""), p.text or "") for p in problems]
        # The exception lines only: source lines in a traceback may mention MemoryError too.
        parsed.error_lines.extend(_last_error_line(t) for _, t in texts)
        parsed.error_lines.extend(m.strip().split("\n", 1)[0] for m, _ in texts)
        if classname == "pytest" and name == "internal":
            parsed.internal_error = texts[0][1] if texts else "internal error"
            continue
        outputs = [c.text or "" for c in case if c.tag in ("system-out", "system-err")]
        output = _clip(_clean_output(outputs), output_limit)
        if not case.get("name") and not problems:
            continue  # pytest's placeholder when the run was interrupted
        if any(m == "collection failure" for m, _ in texts) or (not classname and problems):
            tb = texts[0][1] if texts else ""
            parsed.collect_error = TestOutcome(
                "collecting the tests", False, _last_error_line(tb), _tail_lines(tb, 25), output
            )
            continue
        prefix = classname.removeprefix(_TEST_MODULE).lstrip(".")
        full_name = f"{prefix}.{name}" if prefix else name
        if not problems:
            parsed.outcomes.append(TestOutcome(full_name, True, "", "", output))
            continue
        message = texts[0][0] or problems[0].tag
        if all(p.tag == "skipped" for p in problems):
            parsed.skipped += 1
            kind = "xfailed" if problems[0].get("type") == "pytest.xfail" else "skipped"
            message = f"{kind} (counts as not passed): {message}"
        trace = "\n\n".join(t for _, t in texts if t)
        parsed.outcomes.append(
            TestOutcome(
                full_name,
                False,
                _clip(message.strip(), 2000),
                _tail_lines(trace, _TRACEBACK_LINES),
                output,
            )
        )
    return parsed


@dataclass(frozen=True)
class _Limits:
    timeout: float
    memory_mb: int
    output_limit: int
    file_size: int

    def memory_problem(self) -> str:
        return f"memory limit of {self.memory_mb} MB exceeded"

    def flood_problem(self) -> str:
        return (
            f"output limit exceeded: more than {_FLOOD_FACTOR * self.output_limit} characters; "
            f"output truncated at {self.output_limit} characters"
        )

    def file_problem(self) -> str:
        megabytes = self.file_size // (1024 * 1024)
        return (
            f"output limit exceeded: a test wrote more than {megabytes} MB to its output or a "
            f"file; output truncated at {self.output_limit} characters"
        )


def _judge(run: _Run, report_path: str, limits: _Limits, contained: str) -> TestReport:
    """Turn the raw run into a score and a one-line problem; anything abnormal scores 0."""
    output = run.stream.text()
    bwrapped = contained == _BWRAP_LINE

    def zero(problem: str, outcomes: tuple[TestOutcome, ...] = ()) -> TestReport:
        return TestReport(outcomes, 0.0, problem, output, contained)

    if run.timed_out:
        return zero(f"timed out after {limits.timeout:g} s")
    if run.flooded:
        return zero(limits.flood_problem())

    parsed = _parse_report(report_path, limits.output_limit)
    if parsed is None:
        if any(sign in output for sign in _MEMORY_SIGNS):
            return zero(limits.memory_problem())
        return zero(_exit_problem(run.returncode, bwrapped))

    if parsed.internal_error:
        last = _last_error_line(parsed.internal_error)
        exit_code = re.fullmatch(r"SystemExit:\s*(.*)", last)
        if exit_code:
            status = exit_code.group(1) or "0"
            return zero(f"the code exited with status {status} before the tests finished")
        if any(sign in last for sign in _MEMORY_SIGNS):
            return zero(limits.memory_problem())
        return zero(f"pytest internal error: {last}")

    failures = "\n".join(parsed.error_lines)
    if parsed.collect_error is not None:
        error = parsed.collect_error
        if _EFBIG in failures:
            return zero(limits.file_problem(), (error,))
        if any(sign in failures for sign in _MEMORY_SIGNS):
            return zero(limits.memory_problem(), (error,))
        return zero(f"the tests could not be collected: {error.message}", (error,))

    outcomes = tuple(parsed.outcomes)
    if run.returncode == 2:
        return zero("the test run was interrupted (pytest exit status 2)", outcomes)
    if not outcomes:
        return zero("no tests were collected")
    passed = sum(1 for o in outcomes if o.passed)
    # pytest exits 0 when nothing failed and 1 when something did; anything else means the
    # run was disturbed and its report cannot be trusted.
    expected = 0 if passed + parsed.skipped == len(outcomes) else 1
    if run.returncode != expected:
        if run.returncode in (0, 1):
            return zero(f"the test run ended inconsistently (exit status {run.returncode})")
        return zero(_exit_problem(run.returncode, bwrapped), outcomes)
    if _EFBIG in failures:
        return zero(limits.file_problem(), outcomes)
    if any(sign in failures for sign in _MEMORY_SIGNS):
        return zero(limits.memory_problem(), outcomes)
    problem = ""
    if parsed.output_chars > limits.output_limit or run.stream.total > limits.output_limit:
        problem = f"output truncated at {limits.output_limit} characters"
    return TestReport(outcomes, passed / len(outcomes), problem, output, contained)
