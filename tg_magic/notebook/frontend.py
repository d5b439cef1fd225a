"""Accept through JupyterLab: an `apply.Transport` over the `tg_magic` comm of our labextension.

The kernel opens one comm per request, with the request in the open message
(`{"action": "replace_cell", "request_id", "cell_id", "body"}` or `{"action": "ping", ...}`); the
extension edits the cell (keeping its `%%` line, one undo step) and answers on the same comm
(`{"request_id", "ok": true, ...}` or `{"request_id", "ok": false, "error"}`). Answers arrive on
the shell channel, so only after the running cell ends: `replace_cell` returns at once and the
outcome reaches `done(ok, message)` later. When no frontend registered the target, JupyterLab
closes the comm at once with no answer: the extension is absent, the edit falls back to showing
the new cell, and later requests are not sent at all (`replace_cell` returns False).

The other way round, once the kernel has pinged it, the extension reports every edit of a
`%%tgvariable` cell (typing, Ctrl-Z, our own replace) on comms it opens to the kernel's
`tg_magic_cells` target: `{"action": "cell_changed", "cell_id", "source"}`; `listen` hands them
to a callback, so the widgets follow the cell without it being run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

from ..config import settings
from . import where
from .cellwriter import CellRef, Done, Written, to_paste

TARGET = "tg_magic"
CHANGES_TARGET = "tg_magic_cells"

UNKNOWN, PRESENT, ABSENT = "unknown", "present", "absent"

Reply = Callable[[dict[str, Any]], None]


def wanted(shell: Any) -> bool:
    """A kernel whose page may answer (a Jupyter server's), not VS Code (which never answers a
    comm) nor a headless run (nbclient never answers either)."""
    front = where.current(shell, getattr(shell, "user_ns", {}))
    return front.answers_comms and not settings.notebook


def attach(shell: Any) -> CommTransport | None:
    """The transport for this kernel, already pinging (presence is known by the next cell)."""
    if not wanted(shell):
        return None
    transport = CommTransport()
    transport.ping()
    return transport


class CommTransport:
    """Edits cells in JupyterLab; remembers whether the extension answers at all."""

    def __init__(self, target: str = TARGET) -> None:
        self.target = target
        self.state = UNKNOWN
        self.version: str | None = None
        self.app: str | None = None  # the frontend's name, as the extension gives it
        self.pending: dict[str, Any] = {}  # request_id -> its comm, until answered or closed

    # -- the Transport protocol -----------------------------------------------------------
    def replace_cell(self, ref: CellRef, body: str, done: Done) -> bool:
        """Only once the extension has answered the ping: a frontend that never answers a comm
        (VS Code, nbclassic) would leave the edit under way for ever."""
        if self.state != PRESENT:
            return False
        request = {
            "action": "replace_cell",
            "request_id": uuid.uuid4().hex,
            "cell_id": ref.cell_id,
            "body": body,
        }

        def answered(data: dict[str, Any]) -> None:
            app = self.app or "the notebook"
            if data.get("ok"):
                done(Written(True, f"updated in {app}; Ctrl-Z in the cell undoes it", True))
                return
            error = str(data.get("error") or "no reason given").rstrip(".")
            text = f"{app} could not edit the cell ({error}), so nothing changed: "
            done(Written(False, text + to_paste(ref, body), False))

        def closed() -> None:  # the page went away: the cell takes the text when it next runs
            done(Written(True, "the tg-magic extension did not answer", False, next_run=True))

        self._send(request, answered, closed)
        return True

    # -- presence -------------------------------------------------------------------------
    def ping(self) -> None:
        def answered(data: dict[str, Any]) -> None:
            version, app = data.get("version"), data.get("app")
            self.version = str(version) if version is not None else None
            self.app = str(app)[:40] if isinstance(app, str) and app.strip() else None

        self._send({"action": "ping", "request_id": uuid.uuid4().hex}, answered, lambda: None)

    # -- the comm -------------------------------------------------------------------------
    def _send(self, request: dict[str, Any], answered: Reply, closed: Callable[[], None]) -> None:
        """Open a comm carrying `request`; `answered(data)` or `closed()` runs once, later."""
        import comm

        request_id = request["request_id"]
        channel = comm.create_comm(target_name=self.target, data=request)
        self.pending[request_id] = channel

        def on_msg(msg: dict[str, Any]) -> None:
            data = (msg.get("content") or {}).get("data") or {}
            if not isinstance(data, dict) or data.get("request_id") not in (request_id, None):
                return  # not the answer to this request
            if self.pending.pop(request_id, None) is None:
                return  # already settled
            self.state = PRESENT
            try:
                channel.close()
            finally:
                answered(data)

        def on_close(msg: dict[str, Any]) -> None:
            if self.pending.pop(request_id, None) is None:
                return
            if self.state == UNKNOWN:
                self.state = ABSENT  # closed without a word: nobody registered the target
            closed()

        channel.on_msg(on_msg)
        channel.on_close(on_close)


CellChanged = Callable[[str, str], None]


def listen(on_change: CellChanged) -> Callable[[], None]:
    """Take the extension's reports of cell edits: `on_change(cell_id, source)`. Returns the
    function that stops listening (for %unload_ext)."""
    import comm

    def handle(data: Any) -> None:
        if (
            isinstance(data, dict)
            and data.get("action") == "cell_changed"
            and isinstance(data.get("cell_id"), str)
            and isinstance(data.get("source"), str)
        ):
            on_change(data["cell_id"], data["source"])

    def opened(channel: Any, msg: dict[str, Any]) -> None:
        channel.on_msg(lambda m: handle((m.get("content") or {}).get("data")))
        handle((msg.get("content") or {}).get("data"))

    manager = comm.get_comm_manager()
    manager.register_target(CHANGES_TARGET, opened)

    def stop() -> None:
        if manager.targets.get(CHANGES_TARGET) is opened:
            manager.unregister_target(CHANGES_TARGET, opened)

    return stop


# -- where this kernel runs -----------------------------------------------------------


def kernel_cell_id(shell: Any) -> str:
    kernel = getattr(shell, "kernel", None)
    try:
        return str(kernel.get_parent()["metadata"].get("cellId", "")) if kernel else ""
    except (AttributeError, KeyError, TypeError):
        return ""


def find_notebook(namespace: dict[str, Any]) -> str | None:
    """The .ipynb this kernel runs: explicit, Jupyter server session, or VS Code."""
    for candidate in (
        settings.notebook,
        namespace.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
        namespace.get("__vsc_ipynb_file__"),
    ):
        if (
            isinstance(candidate, str)
            and candidate.endswith(".ipynb")
            and os.path.exists(candidate)
        ):
            return candidate
    return None
