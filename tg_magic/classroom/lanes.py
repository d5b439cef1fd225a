"""A whole class at a few notebooks at once: lanes that test notebooks, and beside them as many
workers that ask the hints, so the cores run other notebooks' tests while a hint waits on the
model.

Before the lanes start, nbformat and IPython's input transformer are imported once (a lane
would wait on them, every lane on the same import lock) while sandboxes start ahead on the free
core, two per lane; one per lane is kept warm after, fewer as the class nears its end. The model
SDK is imported once, beside the first tests: it is needed only at the first hint.
benchmarks/feedback.py measures the whole against its CPU floor.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .grading import Graded, guarded_finish, guarded_grade, result_path
from .results import Result
from .scoring import Assignment
from .submissions import Submission

_EMPTY_NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def warm_up(assignment: Assignment) -> threading.Thread | None:
    """nbformat and its schema validator and IPython's input transformer, here: every lane
    needs them first. The model SDK in a thread, returned to be joined: an SDK import on the
    engine's event loop thread would hold up every model call in flight."""
    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager

    nbformat.reads(_EMPTY_NOTEBOOK, as_version=4)  # builds the validator
    TransformerManager()
    spec = assignment.engine.spec if assignment.engine is not None else ""
    if not spec.startswith("anthropic"):
        return None
    sdk = threading.Thread(target=_import_sdk, name="tg-feedback-sdk", daemon=True)
    sdk.start()
    return sdk


def _import_sdk() -> None:
    with contextlib.suppress(ImportError):  # the engine says so, with its fix, at its call
        import anthropic  # noqa: F401


def default_jobs() -> int:
    """Two lanes per core: a lane's time is mostly its sandboxes' CPU, so more lanes only
    contend (benchmarks/feedback.py, 100 notebooks on 2 cores: 4 lanes within 1.11-1.16x the
    CPU floor, 16 lanes no faster)."""
    return 2 * (os.cpu_count() or 1)


def _sandboxes_ahead(
    assignment: Assignment, count: int
) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    """Sandboxes started ahead of the lanes (tests only), and a function that changes how many."""
    if assignment.mode != "tests":
        return contextlib.nullcontext(lambda count: None)
    from .. import sandbox

    return sandbox.ahead(count, allow_unsandboxed=assignment.allow_unsandboxed)


Key = Submission | Path


def run(
    students: Mapping[Submission, str] | Mapping[Path, str],
    assignment: Assignment,
    out_dir: Path,
    *,
    jobs: int | None = None,
    force: bool = False,
    on_done: Callable[[Result, int, int], None] | None = None,
) -> list[Result]:
    """Every notebook (submission or path -> student): `jobs` tested at a time (default_jobs()),
    and beside them `jobs` hints asked at a time, in the order the tests ended; results in the
    order given, `on_done` called from this thread as each notebook finishes."""
    names: dict[Key, str] = dict(students.items())
    files = list(names)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = max(1, jobs or default_jobs())
    finished: queue.SimpleQueue[tuple[Key, Result]] = queue.SimpleQueue()
    # A notebook's tests take up to two sandboxes (visible, hidden); one done before, none.
    # Twice the lanes' worth start while the imports keep one core busy, one per lane after.
    fresh = {key for key in files if force or not result_path(out_dir, names[key]).is_file()}
    ahead = _sandboxes_ahead(assignment, min(2 * jobs, 2 * len(fresh)))
    lock = threading.Lock()

    def failed(key: Key, exc: BaseException) -> Result:
        return Result(names[key], str(key), f"error: {type(exc).__name__}: {str(exc)[:200]}")

    def hint(key: Key, step: Graded) -> None:
        try:
            finished.put((key, guarded_finish(step, assignment, out_dir)))
        except BaseException as exc:  # every notebook is reported, or run() would wait forever
            finished.put((key, failed(key, exc)))
            raise

    def lane(key: Key, hints: ThreadPoolExecutor) -> None:
        try:
            started(key)
            step = guarded_grade(key, names[key], assignment, out_dir, force)
            if isinstance(step, Result):
                finished.put((key, step))
            elif step.hint is None:  # no model call left: its files are written here
                finished.put((key, guarded_finish(step, assignment, out_dir)))
            else:
                hints.submit(hint, key, step)
        except BaseException as exc:
            finished.put((key, failed(key, exc)))
            raise

    def started(key: Key) -> None:
        with lock:
            fresh.discard(key)
            want(min(jobs, 2 * len(fresh)))

    results: dict[Key, Result] = {}
    with ahead as want:
        sdk = warm_up(assignment)
        with (
            ThreadPoolExecutor(jobs, thread_name_prefix="tg-hint") as hints,
            ThreadPoolExecutor(jobs, thread_name_prefix="tg-feedback") as lanes,
        ):
            for key in files:
                lanes.submit(lane, key, hints)
            while len(results) < len(files):
                key, result = finished.get()
                results[key] = result
                if on_done:
                    on_done(result, len(results), len(files))
        if sdk is not None:
            sdk.join()
    return [results[f] for f in files]
