"""A class's lanes (`tg_magic.classroom.lanes`): notebooks are tested while another's hint waits
on the model, sandboxes started ahead still serve one run each, and a class whose notebooks
were all done before starts none."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.fake_api import FakeMessagesAPI
from tests.test_cli import CLASSROOM, CORRECT, HAIKU, answer_notebook, give_hints
from tg_magic import classroom, sandbox
from tg_magic.engines import get_engine
from tg_magic.sandbox import run_tests
from tg_magic.sandbox.pool import pool

WRONG = "def median(values):\n    return sorted(values)[len(values) // 2]\n"
pytestmark = pytest.mark.skipif(not sandbox.available(), reason="needs bubblewrap")


def _assignment() -> classroom.Assignment:
    tests = (CLASSROOM / "median_tests.py").read_text()
    return classroom.Assignment("median", "tests", tests, engine=get_engine(HAIKU))


def _our_sandboxes() -> int:
    """Sandboxed candidates this process has started and not ended: its children whose command
    (sh, setpriv, then bubblewrap, the same process) runs child.py as the candidate."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        count += parent == os.getpid() and b"child.py\0candidate" in cmdline
    return count


def _filled() -> None:
    """Wait until the pool's thread has started every pair asked for so far."""
    assert pool.wait_filled(timeout=120)


def test_other_notebooks_are_tested_while_a_hint_waits_on_the_model(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    """One lane: the wrong answer's hint is held at the model, and the right answers after it
    are tested and finished meanwhile (a lane that waited on the hint would hold them all)."""
    give_hints(fake_api)
    folder = tmp_path / "submissions"
    folder.mkdir()
    answer_notebook(folder / "ann.ipynb", WRONG)
    for name in ("ben", "cat", "dan"):
        answer_notebook(folder / f"{name}.ipynb", CORRECT)
    found, _ = classroom.discover([folder], "median")
    fake_api.inject("stall")  # the first model call: ann's hint
    done: list[str] = []
    right_done = threading.Event()

    def on_done(result: classroom.Result, count: int, total: int) -> None:
        done.append(result.student)
        if {"ben", "cat", "dan"} <= set(done):
            right_done.set()

    out = tmp_path / "out"
    results: list[classroom.Result] = []
    worker = threading.Thread(
        target=lambda: results.extend(
            classroom.run(found, _assignment(), out, jobs=1, on_done=on_done)
        )
    )
    worker.start()
    try:
        assert fake_api.wait_held(1, timeout=120)
        assert right_done.wait(120), f"the held hint kept the others waiting: done {done}"
        assert "ann" not in done
    finally:
        fake_api.release()
        worker.join()
    by_name = {r.student: r for r in results}
    assert [r.student for r in results] == ["ann", "ben", "cat", "dan"]  # the order given
    assert by_name["ann"].hint and by_name["ann"].hint != classroom.ALL_PASS
    assert all(by_name[n].hint == classroom.ALL_PASS for n in ("ben", "cat", "dan"))
    assert all((out / f"{n}.ipynb").is_file() for n in by_name)


def test_sandboxes_started_ahead_serve_one_run_each_and_the_spares_end() -> None:
    """Each run meets a fresh sandbox (nothing another run left in /tmp or the scratch folder),
    also when several were started ahead; after the block only the usual warm one is left."""
    code = (
        "import os\n"
        "LEFT = sorted(os.listdir('/tmp')) + sorted(os.listdir('.'))\n"
        "open('/tmp/left-by-a-run', 'w').write('x')\n"
        "open('left-by-a-run', 'w').write('x')\n"
        "def left():\n"
        "    return LEFT\n"
        "# run {n}\n"
    )
    tests = "def test_fresh():\n    assert left() == []\n"
    _filled()
    pool.close()
    with sandbox.ahead(3):
        _filled()
        assert _our_sandboxes() == 3
        reports = [run_tests(code.format(n=n), tests) for n in range(5)]
    assert [r.score for r in reports] == [1.0] * 5, [r.text() for r in reports]
    _filled()
    assert _our_sandboxes() == 1


def test_a_class_done_before_starts_no_sandbox(fake_api: FakeMessagesAPI, tmp_path: Path) -> None:
    give_hints(fake_api)
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("ann", "ben"):
        answer_notebook(folder / f"{name}.ipynb", WRONG if name == "ann" else CORRECT)
    found, _ = classroom.discover([folder], "median")
    out = tmp_path / "out"
    first = classroom.run(found, _assignment(), out)
    assert [r.ok for r in first] == [True, True]
    _filled()
    pool.close()
    again = classroom.run(found, _assignment(), out)
    assert [r.skipped for r in again] == [True, True]
    _filled()
    assert _our_sandboxes() == 0
