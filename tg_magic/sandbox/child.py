"""The two sandboxed processes of a run: the candidate (untrusted code) and the runner (tests).

Started as a script inside bubblewrap (`python -S -E -s child.py ROLE FDS [--setup FD] SITE...`),
standard library only; with --setup, inside.py first sets the sandbox up as the plan read from
FD says, before any other code runs. The runner executes the trusted test cell; each name the
candidate defines becomes a stub that forwards the call to the candidate process and gets plain
data back (wire.py). Only the runner writes the report, on a pipe the candidate has no access to.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import resource
import sys
import time
import traceback
import types

TYPE_CHECKING = False  # typing and importlib.util are not imported: every sandbox would pay
if TYPE_CHECKING:
    from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))


def _sibling(name: str) -> Any:
    """Load wire.py / testfile.py from this folder (no package, no tg_magic import here)."""
    path = os.path.join(_HERE, f"{name}.py")
    module = types.ModuleType(f"_tg_{name}")
    module.__file__ = path
    sys.modules[module.__name__] = module
    with open(path, "rb") as handle:
        source = handle.read()
    exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    return module


wire = _sibling("wire")
testfile: Any = None  # the runner's only (loaded when it starts: the candidate never needs it)


class Capture(io.TextIOBase):
    """A bounded stdout/stderr: keeps the first `limit` characters, counts all of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        self.total += len(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        return len(text)

    def take(self) -> tuple[str, int]:
        """The text so far and the total count; starts afresh."""
        text, total = "".join(self.parts), self.total
        self.parts, self.kept, self.total = [], 0, 0
        return text, total


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _apply_limits(job: dict[str, Any]) -> None:
    _limit(resource.RLIMIT_AS, int(job["memory"]))
    _limit(resource.RLIMIT_FSIZE, int(job["file_size"]))
    _limit(resource.RLIMIT_NPROC, int(job["processes"]))
    _limit(resource.RLIMIT_CORE, 0)


def _exception(exc: BaseException, limit: int = 2000) -> dict[str, str]:
    try:
        message = str(exc)
    except Exception:
        message = "(the exception's message could not be read)"
    return {"type": type(exc).__name__[:100], "message": message[:limit]}


def _traceback_tail(exc: BaseException, skip: int, lines: int = 15) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[skip:]
    text = "".join(traceback.format_list(frames)) + "".join(
        traceback.format_exception_only(type(exc), exc)
    )
    return "\n".join(text.rstrip().splitlines()[-lines:])


# ---------------------------------------------------------------------------- candidate


def _export(module: types.ModuleType) -> dict[str, Any]:
    """What the tests may use: functions and classes as stubs, plain values as data."""
    public = getattr(module, "__all__", None)
    names: dict[str, Any] = {}
    for name, value in list(vars(module).items()):
        if (public is None and name.startswith("_")) or (public is not None and name not in public):
            continue
        if isinstance(value, types.ModuleType):
            continue
        if isinstance(value, type) and issubclass(value, BaseException):
            base = next(b for b in value.__mro__ if b.__module__ == "builtins")
            names[name] = {"exception": base.__name__}
        elif callable(value):
            names[name] = {"callable": True}
        else:
            try:
                names[name] = {"value": wire.encode(value)}
            except wire.Uncrossable as exc:
                names[name] = {"uncrossable": str(exc)}
    return names


def candidate(call_in: int, call_out: int) -> None:
    """Hold the candidate's module; answer calls until the runner closes the channel."""
    job = wire.receive(0)
    _apply_limits(job)
    output_limit = int(job["output_limit"])
    module = types.ModuleType("candidate")
    module.__file__ = "candidate.py"
    sys.modules["candidate"] = module
    capture = Capture(output_limit)
    sys.stdout = sys.stderr = capture
    try:
        exec(compile(job["code"], "candidate.py", "exec", dont_inherit=True), module.__dict__)
    except BaseException as exc:
        text, total = capture.take()
        error = {**_exception(exc), "traceback": _traceback_tail(exc, 1)}
        wire.send(call_out, {"import_error": error, "output": text, "output_chars": total})
        return
    text, total = capture.take()
    wire.send(call_out, {"names": _export(module), "output": text, "output_chars": total})
    while True:
        try:
            call = wire.receive(call_in)
        except EOFError:
            return
        wire.send(call_out, _answer(module, call, capture))


def _answer(module: types.ModuleType, call: dict[str, Any], capture: Capture) -> dict[str, Any]:
    name = call["name"]
    reply: dict[str, Any] = {"id": call["id"]}
    args = wire.decode(call["args"])
    kwargs = wire.decode(call["kwargs"])
    try:
        result = getattr(module, name)(*args, **kwargs)
        reply["value"] = wire.encode(result)
    except wire.Uncrossable as exc:
        reply["uncrossable"] = f"{name}() returned {exc}"
    except BaseException as exc:
        reply["raised"] = {**_exception(exc), "traceback": _traceback_tail(exc, 1)}
    # Arguments the call changed in place (a list it sorted, a dict it filled) go back too.
    with contextlib.suppress(wire.Uncrossable, RecursionError):
        reply["args_after"] = wire.encode(args)
    reply["output"], reply["output_chars"] = capture.take()
    return reply


# ---------------------------------------------------------------------------- runner


class CandidateGone(Exception):
    """The candidate process ended or broke the protocol; every later call fails too."""


class _Channel:
    def __init__(self, call_out: int, call_in: int, sink: Capture) -> None:
        self.call_out, self.call_in, self.sink = call_out, call_in, sink
        self.next_id = 0
        self.gone = ""
        self.output_chars = 0
        self.exceptions: dict[str, type[BaseException]] = {}

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.gone:
            raise CandidateGone(self.gone)
        self.next_id += 1
        try:
            message = {"id": self.next_id, "name": name}
            message["args"] = wire.encode(list(args))
            message["kwargs"] = wire.encode(kwargs)
        except wire.Uncrossable as exc:
            raise TypeError(f"an argument of {name}() cannot cross to the code: {exc}") from None
        try:
            wire.send(self.call_out, message)
            reply = wire.receive(self.call_in)
            if reply.get("id") != self.next_id:
                raise ValueError("an answer to another call")
        except (OSError, EOFError, ValueError, RecursionError) as exc:
            self.gone = f"the code's process ended during {name}() ({exc})"
            raise CandidateGone(self.gone) from None
        output = reply.get("output")
        if type(output) is str:
            self.sink.write(output)
        chars = reply.get("output_chars")
        self.output_chars = max(self.output_chars, chars if type(chars) is int else 0)
        try:
            self._write_back(args, reply)
            if "value" in reply:
                return wire.decode(reply["value"])
        except (wire.Uncrossable, TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"{name}() returned data that does not decode ({exc})") from None
        if "uncrossable" in reply:
            raise TypeError(
                f"{str(reply['uncrossable'])[:300]}, which cannot cross to the tests: "
                f"return plain data ({wire.PLAIN})"
            )
        raised = reply.get("raised")
        if type(raised) is dict:
            raise self.rebuild(raised)
        raise TypeError(f"{name}() gave no answer")

    def _write_back(self, args: tuple[Any, ...], reply: dict[str, Any]) -> None:
        if "args_after" not in reply:
            return
        after = wire.decode(reply["args_after"])
        if type(after) is not list or len(after) != len(args):
            return
        for before, now in zip(args, after, strict=True):
            if type(before) is list and type(now) is list:
                before[:] = now
            elif type(before) in (dict, set, bytearray) and type(now) is type(before):
                before.clear()
                before.update(now) if not isinstance(before, bytearray) else before.extend(now)

    def rebuild(self, raised: dict[str, Any]) -> BaseException:
        """The candidate's exception as a real one here: same class name, message as text."""
        kind = str(raised.get("type", "Exception"))
        message = str(raised.get("message", ""))
        error = self.exception_class(kind)(message)
        error.candidate_traceback = str(raised.get("traceback", ""))  # type: ignore[attr-defined]
        return error

    def exception_class(self, kind: str, base: str = "Exception") -> type[BaseException]:
        known = getattr(builtins, kind, None)
        # StopIteration would silently end the test's map(), filter() or for loop: own class.
        ends_iteration = kind in ("StopIteration", "StopAsyncIteration")
        if isinstance(known, type) and issubclass(known, Exception) and not ends_iteration:
            return known
        if kind not in self.exceptions:
            parent = getattr(builtins, base, Exception)
            if not (isinstance(parent, type) and issubclass(parent, Exception)):
                parent = Exception  # SystemExit and the like stay ordinary failures here
            self.exceptions[kind] = type(kind, (parent,), {"__module__": "candidate"})
        return self.exceptions[kind]


def _stub(channel: _Channel, name: str) -> Any:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return channel.call(name, args, kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


def _builtins_redefined(names: dict[str, Any], tests: str) -> list[str]:
    """The code's names that replace a builtin the tests use (`range`, `len`, `all`, ...): in
    the tests' namespace they would turn the tests' own loops and checks into the code's."""
    import ast

    try:
        used = {n.id for n in ast.walk(ast.parse(tests)) if isinstance(n, ast.Name)}
    except (SyntaxError, ValueError, RecursionError):
        return []  # the tests' own collection reports it
    return sorted(str(n) for n in names if n in used and hasattr(builtins, str(n)))


def _namespace(channel: _Channel, names: dict[str, Any]) -> dict[str, Any]:
    module = types.ModuleType("candidate")
    for name, spec in names.items():
        name = str(name)
        if not name.isidentifier() or type(spec) is not dict:
            continue
        if "exception" in spec:
            value: Any = channel.exception_class(name, str(spec["exception"]))
        elif "callable" in spec:
            value = _stub(channel, name)
        elif "value" in spec:
            try:
                value = wire.decode(spec["value"])
            except (wire.Uncrossable, TypeError, ValueError, RecursionError):
                continue
        else:
            continue
        setattr(module, name, value)
    sys.modules["candidate"] = module
    namespace = {k: v for k, v in vars(module).items() if not k.startswith("__")}
    namespace.update(
        __name__="tests", __builtins__=builtins, **{testfile.EXPLAIN: testfile.explain}
    )
    return namespace


def _failure(exc: BaseException) -> tuple[str, str]:
    """First line-ish message and a short traceback of a failed step."""
    info = _exception(exc)
    message = (
        info["message"]
        if isinstance(exc, AssertionError) and info["message"]
        else (f"{info['type']}: {info['message']}" if info["message"] else info["type"])
    )
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == testfile.FILENAME]
    text = "".join(traceback.format_list(frames))
    extra = getattr(exc, "candidate_traceback", "")
    if extra:
        text += "In the code:\n" + extra
    return message, "\n".join(text.rstrip().splitlines()[-15:])


def runner(call_out: int, call_in: int, report: int) -> None:
    """Run the test cell against stubs of the candidate; write each outcome to `report`."""
    global testfile
    testfile = _sibling("testfile")
    job = wire.receive(0)
    _apply_limits(job)
    output_limit = int(job["output_limit"])
    sink = Capture(output_limit)
    channel = _Channel(call_out, call_in, sink)
    try:
        first = wire.receive(call_in)
    except (OSError, EOFError, ValueError) as exc:
        wire.send(report, {"gone": f"the code's process ended before the tests started ({exc})"})
        return
    if "import_error" in first or type(first.get("names")) is not dict:
        wire.send(
            report, {"import_error": first.get("import_error"), "output": first.get("output")}
        )
        return
    clash = _builtins_redefined(first["names"], job["tests"])
    if clash:
        names = ", ".join(f"`{n}`" for n in clash)
        refused = {
            "type": "Refused",
            "message": f"the code defines {names}, Python's own, which the tests use; rename it",
        }
        wire.send(report, {"import_error": refused, "output": first.get("output")})
        return
    namespace = _namespace(channel, first["names"])
    sys.stdout = sys.stderr = sink
    steps = testfile.plan(job["tests"], namespace)
    for step in steps:
        start = time.perf_counter()
        try:
            step.run()
            passed, message, trace = True, "", ""
        except BaseException as exc:
            passed = False
            message, trace = _failure(exc)
        output, _ = sink.take()
        if passed and not step.is_test:
            continue
        outcome = {
            "name": step.name,
            "passed": passed,
            "message": message,
            "traceback": trace,
            "output": output,
            "duration": time.perf_counter() - start,
        }
        wire.send(report, {"outcome": outcome, "collect": step.name == "collecting the tests"})
        if not passed and step.name == "collecting the tests":
            break
    wire.send(report, {"done": True, "gone": channel.gone, "output_chars": channel.output_chars})


def _set_up(fd: int) -> str:
    """Read the plan, close it, and let inside.py set the sandbox up; end at once if it fails.
    Returns "" when the runtime shows as overlays, else why not."""
    try:
        data = bytearray()
        while chunk := os.read(fd, 65536):
            data += chunk
        os.close(fd)
        return str(_sibling("inside").enter(json.loads(data)))
    except BaseException as exc:
        os.write(2, f"the sandbox could not be set up: {type(exc).__name__}: {exc}\n".encode())
        os._exit(70)


def main() -> None:
    role, numbers, *site_dirs = sys.argv[1:]
    no_overlays = ""
    if site_dirs[:1] == ["--setup"]:
        no_overlays = _set_up(int(site_dirs[1])) or ""
        site_dirs = site_dirs[2:]
    import site

    for folder in site_dirs:  # the runtime's packages, read-only (python runs with -S)
        site.addsitedir(folder)
    if role == "probe":  # the sandbox works here
        if no_overlays:
            print(f"no overlays: {no_overlays}")
        return
    fds = numbers.split(",")
    if role == "candidate":
        candidate(int(fds[0]), int(fds[1]))
    else:
        runner(int(fds[0]), int(fds[1]), int(fds[2]))


if __name__ == "__main__":
    main()
