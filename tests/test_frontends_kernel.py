"""Accept in frontends without the tg-magic extension, at the protocol: a real ipykernel driven
through jupyter_client, each execute_request carrying `metadata.cellId` as JupyterLab sends it.

Three kernels as their frontends leave them: a Jupyter server without the extension
(JPY_SESSION_NAME names the notebook; nobody answers the `tg_magic` comm), VS Code (a first cell
sets `__vsc_ipynb_file__`; its cell ids are its own cell addresses) and a Colab-like kernel
(COLAB_RELEASE_TAG, no notebook path). In each: the variable cell, a tests loss,
`%tgoptimize --steps 1`, `%tgaccept add`, then the variable cell again. Exactly the run that
should rewrite the cell carries IPython's `set_next_input` payload with `replace: true` in its
execute_reply; a run after a hand edit carries none; the .ipynb on disk is never written.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.conftest import FAKE_KEY
from tests.fake_api import FakeMessagesAPI
from tests.test_notebook import BUGGY_ADD, FIXED_ADD, TESTS, add_notebook, fix_add

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.timeout(180)

MAGIC = "%%tgvariable add --kind code"
REWRITE = {"source": "set_next_input", "text": f"{MAGIC}\n{FIXED_ADD}".rstrip("\n")}
WAIT = 60.0  # s: the longest one cell may take (an optimization step against the fake)


@dataclass
class Ran:
    """One executed cell as a frontend sees it: the reply's content, and what it showed."""

    reply: dict[str, Any]
    shown: str
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def payload(self) -> list[dict[str, Any]]:
        return list(self.reply.get("payload") or [])

    @property
    def status(self) -> str:
        return str(self.reply.get("status"))


class Frontend:
    """A frontend of one kernel: sends cells with ids, collects replies and outputs."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.count = 0
        self.ran: list[tuple[str, Ran]] = []  # every cell run, in order

    def run(self, code: str, cell_id: str | None = None, *, ok: bool = True) -> Ran:
        self.count += 1
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        metadata = {"cellId": cell_id} if cell_id is not None else {}
        msg = self.client.session.msg("execute_request", content, metadata=metadata)
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        reply = self._reply(msg_id)
        outputs = self._outputs(msg_id)
        shown = "".join(_text(o) for o in outputs)
        ran = Ran(reply["content"], shown, outputs)
        self.ran.append((code, ran))
        if ok:
            assert ran.status == "ok", f"{code!r} failed: {ran.reply}\n{shown}"
        return ran

    def payloads(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The runs whose execute_reply carried a payload: (the cell's code, the payload)."""
        return [(code, ran.payload) for code, ran in self.ran if ran.payload]

    def _reply(self, msg_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no execute_reply for {msg_id} in {WAIT} s")
            msg = self.client.get_shell_msg(timeout=left)
            if msg["parent_header"].get("msg_id") == msg_id:
                assert msg["msg_type"] == "execute_reply", msg["msg_type"]
                return dict(msg)

    def _outputs(self, msg_id: str) -> list[dict[str, Any]]:
        """The iopub messages of the request, up to its `idle` status (sent after the reply)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no idle status for {msg_id} in {WAIT} s")
            try:
                msg = self.client.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return found
            found.append(msg)


def _text(msg: dict[str, Any]) -> str:
    content = msg["content"]
    if msg["msg_type"] == "stream":
        return str(content["text"])
    if msg["msg_type"] in ("display_data", "execute_result", "update_display_data"):
        return str(content.get("data", {}).get("text/plain", "")) + "\n"
    if msg["msg_type"] == "error":
        return "\n".join(content.get("traceback", [])) + "\n"
    return ""


@pytest.fixture
def fake() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as api:
        fix_add(api)
        yield api


@contextmanager
def start_kernel(workdir: Path, fake: FakeMessagesAPI, **env: str) -> Iterator[Frontend]:
    """An ipykernel of this venv in `workdir`, its environment that of the frontend at hand."""
    from jupyter_client.manager import KernelManager

    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VSCODE_", "COLAB_", "TG_MAGIC_", "JPY_", "ANTHROPIC_"))
        and k not in ("PYTEST_CURRENT_TEST",)
    }
    clean.update(
        ANTHROPIC_BASE_URL=fake.base_url,
        ANTHROPIC_API_KEY=FAKE_KEY,
        TG_MAGIC_CACHE=str(workdir / "cache.sqlite"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **env,
    )
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=clean, cwd=str(workdir))
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=WAIT)
        yield Frontend(client)
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture
def notebook(tmp_path: Path) -> tuple[Path, nbformat.NotebookNode, bytes]:
    path = tmp_path / "median.ipynb"
    nb = add_notebook(path)
    return path, nb, path.read_bytes()


@pytest.fixture
def jupyter_server(
    tmp_path: Path, fake: FakeMessagesAPI, notebook: tuple[Path, Any, bytes]
) -> Iterator[Frontend]:
    """A kernel as a Jupyter server starts it; nobody answers the `tg_magic` comm."""
    with start_kernel(tmp_path, fake, JPY_SESSION_NAME=str(notebook[0])) as front:
        yield front


def optimize(front: Frontend, ids: tuple[str, str] | tuple[None, None]) -> None:
    """%load_ext, the variable cell (cell ids[0]), its tests (ids[1]), one step."""
    front.run("%load_ext tg_magic")
    first = front.run(f"{MAGIC}\n{BUGGY_ADD}", ids[0])
    assert first.payload == [] and "add: code variable registered" in first.shown
    front.run(f"%%tgloss add_tests --target add --tests\n{TESTS}", ids[1])
    step = front.run("%tgoptimize --steps 1")
    assert step.payload == []
    assert front.run("print(add(1, 2))").shown.strip() == "-1"  # still the bug


def accept(front: Frontend, frontend_name: str) -> None:
    shown = front.run("%tgaccept add").shown
    assert (
        "add: accepted #1; the kernel runs it; the cell still shows #0: run the cell of add "
        f"once to write #1 into it ({frontend_name} has no tg-magic extension)"
    ) in shown, shown
    assert "JupyterLab" not in shown and "updated in" not in shown
    assert front.run("print(add(1, 2))").shown.strip() == "3"  # the kernel runs the fix at once


def rewritten(front: Frontend, cell_id: str | None) -> None:
    """The variable cell runs still showing #0: its reply rewrites it; the next run does not."""
    ran = front.run(f"{MAGIC}\n{BUGGY_ADD}", cell_id)
    assert ran.payload == [{**REWRITE, "replace": True}], ran.payload
    assert "add: wrote #1 into this cell (accepted #1); the kernel runs it" in ran.shown
    assert front.run("print(add(1, 2))").shown.strip() == "3"
    # The frontend applied it: the cell now holds #1, and running it again changes nothing.
    again = front.run(f"{MAGIC}\n{FIXED_ADD}", cell_id)
    assert again.payload == [], again.payload
    assert "wrote" not in again.shown
    assert front.run("print(add(1, 2))").shown.strip() == "3"
    # Of every run so far, only that one asked the frontend to rewrite its cell.
    assert front.payloads() == [(f"{MAGIC}\n{BUGGY_ADD}", [{**REWRITE, "replace": True}])]


def accept_in_jupyter_server(front: Frontend, nb: nbformat.NotebookNode) -> str:
    """optimize with the notebook's cell ids (as JupyterLab sends them), then accept as a
    Jupyter server's kernel; the cell id of the variable."""
    ids = (nb.cells[1].id, nb.cells[2].id)
    optimize(front, ids)
    accept(front, "this Jupyter frontend")
    return str(ids[0])


def test_jupyter_server_without_the_extension(
    jupyter_server: Frontend, notebook: tuple[Path, nbformat.NotebookNode, bytes]
) -> None:
    path, nb, before = notebook
    var = accept_in_jupyter_server(jupyter_server, nb)
    assert path.read_bytes() == before
    rewritten(jupyter_server, var)
    assert path.read_bytes() == before  # the frontend holds the file: only it saves it


def test_jupyter_server_a_hand_edit_before_the_run_wins(
    jupyter_server: Frontend, notebook: tuple[Path, nbformat.NotebookNode, bytes]
) -> None:
    path, nb, before = notebook
    var = accept_in_jupyter_server(jupyter_server, nb)
    mine = "def add(a, b):\n    return b + a + 0  # mine\n"
    ran = jupyter_server.run(f"{MAGIC}\n{mine}", var)
    assert ran.payload == [], ran.payload  # the user's text is never replaced
    assert (
        "add: your edit of the cell wins; #1 (accepted #1) was set aside "
        "(%tgaccept add 1 brings it back)"
    ) in ran.shown, ran.shown
    assert jupyter_server.run("import inspect; print(inspect.getsource(add))").shown.strip() == (
        mine.strip()
    )
    # A later run of the edited cell sends nothing either; no run ever did.
    assert jupyter_server.run(f"{MAGIC}\n{mine}", var).payload == []
    assert jupyter_server.payloads() == []
    assert path.read_bytes() == before


def test_vs_code(
    tmp_path: Path, fake: FakeMessagesAPI, notebook: tuple[Path, nbformat.NotebookNode, bytes]
) -> None:
    path, _nb, before = notebook
    # VS Code's cell ids are its own cell addresses, not the .ipynb's ids.
    ids = (f"vscode-notebook-cell:{path}#W1sZmlsZQ%3D%3D", f"vscode-notebook-cell:{path}#W2sZmlsZQ")
    with start_kernel(tmp_path, fake) as front:
        front.run(f"__vsc_ipynb_file__ = {str(path)!r}", f"vscode-notebook-cell:{path}#W0")
        optimize(front, ids)
        accept(front, "VS Code")
        assert path.read_bytes() == before
        rewritten(front, ids[0])
        # A hand edit after a second accept wins there too.
        front.run("%tgrevert add")
        mine = "def add(a, b):\n    return a + b  # typed in VS Code\n"
        ran = front.run(f"{MAGIC}\n{mine}", ids[0])
        assert ran.payload == [] and "your edit of the cell wins" in ran.shown, ran.shown
        assert len(front.payloads()) == 1  # the rewrite after the accept, no other
    assert path.read_bytes() == before


def test_colab_like(
    tmp_path: Path, fake: FakeMessagesAPI, notebook: tuple[Path, nbformat.NotebookNode, bytes]
) -> None:
    """Colab: no notebook path in the kernel; its cell ids are not checked here (unmeasured),
    so none is sent and the variable is found by its name."""
    path, _nb, before = notebook
    with start_kernel(tmp_path, fake, COLAB_RELEASE_TAG="release-colab-test") as front:
        optimize(front, (None, None))
        accept(front, "Colab")
        rewritten(front, None)
    assert path.read_bytes() == before


def test_headless_run_sends_no_payload(
    tmp_path: Path, fake: FakeMessagesAPI, notebook: tuple[Path, nbformat.NotebookNode, bytes]
) -> None:
    """For contrast, a kernel as nbclient runs it (no notebook path, no frontend that applies
    payloads): the new cell is shown to paste, and no run asks for a rewrite."""
    path, _nb, before = notebook
    with start_kernel(tmp_path, fake) as front:
        optimize(front, (None, None))
        shown = front.run("%tgaccept add").shown
        assert "so the cell was not edited: replace the cell of add with" in shown, shown
        assert FIXED_ADD.strip() in shown
        ran = front.run(f"{MAGIC}\n{BUGGY_ADD}")
        assert "wrote" not in ran.shown
        assert front.payloads() == []
    assert path.read_bytes() == before
