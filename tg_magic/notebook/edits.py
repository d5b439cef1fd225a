"""What accept, revert, reject and a hand edit do to a variable: its cell, the kernel's
namespace, the history, and every widget that shows it.

One truth: after an accept or a revert, the cell holds the chosen iteration, the kernel has run
it (code) or bound it (prompt, text), and the history says so; a hand edit or an undo in the
cell, reported by the JupyterLab extension, is known at once; listeners (the widgets) are told
after each change, so they all show the state now.
"""

from __future__ import annotations

import ast
import contextlib
import io
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..nbfile import cell_body
from .cellwriter import Written, write_to_cell

if TYPE_CHECKING:
    from .history import Entry
    from .session import CellVariable, Session


@dataclass(frozen=True)
class Outcome:
    """What an accept, revert or reject did, for the user: one line (then the cell to paste,
    where no cell could be edited), and what the accepted code printed when it ran."""

    ok: bool
    message: str
    output: str = ""


Done = Callable[[Outcome], None]


@dataclass(frozen=True)
class Waiting:
    """An accepted (or reverted) iteration that no extension could put in the cell: the kernel
    uses it, and the cell takes it when it next runs, if it still shows what it showed then."""

    n: int
    value: str
    cell_then: str  # what the cell showed at the accept
    verb: str  # "accepted #1", "reverted to #0"


@dataclass(frozen=True)
class Ran:
    """What a run of the variable's cell did with a waiting iteration: the text registered
    (`body`), whether the cell is to be rewritten with it, and one line for the user."""

    body: str
    rewrite: bool = False
    note: str = ""
    waiting: Waiting | None = None


def same(a: str, b: str) -> bool:
    """Two cell texts are the same content (line endings and blank lines around aside)."""
    return norm(a) == norm(b)


def norm(text: str) -> str:
    return text.replace("\r\n", "\n").strip("\n").rstrip()


def first_line(text: str, width: int = 60) -> str:
    """The first non-blank line, cut to `width` (for labels and tables)."""
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def first_changed_line(before: str, after: str, width: int = 60) -> str:
    """The first line of `after` that `before` does not have: what tells iterations apart."""
    old = {x.strip() for x in before.splitlines()}
    changed = next((x.strip() for x in after.splitlines() if x.strip() not in old), "")
    line = changed or first_line(after, width)
    return line if len(line) <= width else line[: width - 1] + "…"


def run_code(namespace: dict[str, Any], code: str, name: str) -> tuple[str, str | None]:
    """Run a code cell's text in the kernel's namespace, as running the cell would; returns what
    it printed and, when it failed, the failure in one line."""
    out = io.StringIO()
    try:
        tree = ast.parse(code, filename=f"<cell of {name}>")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(tree, f"<cell of {name}>", "exec"), namespace)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        line = getattr(exc, "lineno", None) or _line_of(exc)
        where = f" (line {line})" if line else ""
        return out.getvalue(), f"{type(exc).__name__}: {exc}{where}".strip()
    return out.getvalue(), None


def _line_of(exc: BaseException) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<cell of "):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class CellEdits:
    """Accept, revert, reject and hand edits of the session's variables."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pending: set[str] = set()  # variables whose cell edit is under way
        self._listeners: list[weakref.WeakMethod[Callable[[str], None]]] = []

    # -- listeners (the widgets) ----------------------------------------------------------
    def subscribe(self, method: Callable[[str], None]) -> None:
        """`method(name)` runs after each change of a variable (held weakly: a widget that is
        gone stops listening)."""
        self._listeners.append(weakref.WeakMethod(method))

    def changed(self, name: str) -> None:
        self._listeners = [ref for ref in self._listeners if ref() is not None]
        for ref in list(self._listeners):
            method = ref()
            if method is not None:
                method(name)

    # -- what is in the cell ----------------------------------------------------------------
    def in_cell(self, name: str) -> Entry | None:
        """The iteration the cell holds now (the latest with that text), else None."""
        cell = self.session.variable(name)
        found = [e for e in self.session.history.entries(name) if same(e.value, cell.cell_value)]
        return found[-1] if found else None

    def in_kernel(self, name: str) -> Entry | None:
        cell = self.session.variable(name)
        found = [e for e in self.session.history.entries(name) if same(e.value, cell.kernel_value)]
        return found[-1] if found else None

    def state(self, name: str) -> str:
        """The state of the cell now, in one line (what every widget of the variable shows)."""
        cell = self.session.variable(name)
        entry = self.in_cell(name)
        holds = f"#{entry.n} ({entry.status})" if entry else "text edited by hand"
        text = f"the cell holds {holds}"
        if cell.last_action:
            text = f"{cell.last_action}; {text}"
        if cell.waiting is not None:
            return f"{text}; {self._run_to_write(cell, cell.waiting)}"
        if not same(cell.cell_value, cell.kernel_value):
            ran = self.in_kernel(name)
            uses = f"#{ran.n}" if ran else "the text it ran last"
            text += f"; the kernel still uses {uses} until the cell runs"
        return text

    def waiting(self, names: list[str]) -> list[str]:
        """Of `names`, the variables whose latest candidate (or accepted iteration, after an
        undo in the cell) is not what their cell holds: what Accept all would write."""
        found = []
        for name in names:
            cell = self.session.variables.get(name)
            chosen = [
                e
                for e in self.session.history.entries(name)
                if e.status in ("candidate", "accepted")
            ]
            if cell is not None and chosen and not same(chosen[-1].value, cell.cell_value):
                found.append(name)
        return found

    def changed_names(self) -> list[str]:
        """Every variable Accept all would write; none is one line."""
        names = self.waiting(list(self.session.variables))
        if not names:
            raise InputError(
                "nothing to accept: no variable has a kept candidate that its cell does not hold"
            )
        return names

    # -- accept, revert, reject -------------------------------------------------------------
    def accept(self, name: str, n: int | None = None, done: Done | None = None) -> str:
        """Make iteration n (default: the latest candidate) the cell's content and the kernel's."""
        entry = self.session.entry(name, n, default="latest")
        return self._put(name, entry, "accepted", done)

    def revert(self, name: str, n: int | None = None, done: Done | None = None) -> str:
        """Go back to iteration n (default: the original cell)."""
        entry = self.session.entry(name, n, default="original")
        return self._put(name, entry, "reverted", done)

    def reject(self, name: str) -> str:
        """Drop the candidate: the variable takes what the kernel ran from the cell again."""
        cell = self.session.variable(name)
        self._not_pending(name)
        latest = self.session.history.latest(name)
        dropped = latest.n if latest and latest.status == "candidate" else None
        if dropped is not None:
            self.session.history.set_status(name, dropped, "rejected")
        cell.variable.value = cell.kernel_value
        ran = self.in_kernel(name)
        holds = f"#{ran.n} (the cell's text)" if ran else "the cell's text"
        what = f"rejected #{dropped}" if dropped is not None else "dropped the candidate"
        cell.last_action = what
        self.changed(name)
        return f"{name}: {what}; the variable holds {holds} again"

    def _run_to_write(self, cell: CellVariable, waiting: Waiting) -> str:
        return f"run the cell of {cell.name} once to write #{waiting.n} into it"

    def cell_ran(self, name: str, body: str) -> Ran | None:
        """The variable's cell runs with `body`. A waiting iteration goes in when the cell still
        shows what it showed at the accept (the cell is rewritten, the kernel registers the
        iteration); a cell edited by hand since is the user's: it wins, and one line says what
        was set aside."""
        cell = self.session.variables.get(name)
        waiting = cell.waiting if cell is not None else None
        if cell is None or waiting is None:
            return None
        cell.waiting = None
        if same(body, waiting.value):
            return Ran(body, waiting=waiting)
        if same(body, waiting.cell_then):
            note = f"{name}: wrote #{waiting.n} into this cell ({waiting.verb}); the kernel runs it"
            return Ran(waiting.value.strip("\n"), True, note, waiting)
        note = (
            f"{name}: your edit of the cell wins; #{waiting.n} ({waiting.verb}) was set aside "
            f"(%tgaccept {name} {waiting.n} brings it back)"
        )
        return Ran(body, note=note, waiting=waiting)

    def _not_pending(self, name: str) -> None:
        if name in self.pending:
            raise InputError(f"an edit of {name} is under way: wait for it to finish")

    def _put(self, name: str, entry: Entry, status: str, done: Done | None) -> str:
        session = self.session
        cell = session.variable(name)
        self._not_pending(name)
        before = cell.cell_value
        verb = f"accepted #{entry.n}" if status == "accepted" else f"reverted to #{entry.n}"
        result: list[Outcome] = []

        def finished(written: Written) -> None:
            self.pending.discard(name)
            if not written.ok:
                outcome = Outcome(False, f"{name}: not {status}: {written.text}")
            else:
                # The cell holds the value only when it was edited (the extension's answer, the
                # file); otherwise it still shows what it showed, and the kernel says so.
                showed = self.in_cell(name)
                if written.edited:
                    cell.previous_value, cell.cell_value, cell.waiting = before, entry.value, None
                elif written.next_run:
                    cell.waiting = Waiting(entry.n, entry.value, before, verb)
                cell.last_action = verb
                session.history.set_status(name, entry.n, status)
                outcome = self._use(cell, entry, verb, written, showed)
            result.append(outcome)
            self.changed(name)
            if done is not None:
                done(outcome)

        self.pending.add(name)
        try:
            under_way = write_to_cell(
                cell.cell,
                entry.value,
                notebook=session.notebook,
                where=session.where(),
                frontend=session.frontend,
                done=finished,
            )
        except BaseException:
            self.pending.discard(name)
            raise
        if under_way:
            self.changed(name)
            return f"{name}: sending #{entry.n} to the notebook…"
        return result[0].message

    def _use(
        self, cell: CellVariable, entry: Entry, verb: str, written: Written, showed: Entry | None
    ) -> Outcome:
        """The kernel takes the new value: code runs in the namespace, text is rebound; the
        message says where the value is now (the cell, or the kernel only, and what to do)."""
        namespace = self.session.namespace
        cell.variable.value = entry.value
        cell.kernel_value = entry.value
        namespace[cell.name] = cell.variable  # as the %%tgvariable cell does, before its code
        ran = ""
        failure = None
        output = ""
        if cell.kind == "code":
            output, failure = run_code(namespace, entry.value, cell.name)
            ran = ", and the kernel ran it"
        if written.edited:
            where, tail = f"the cell holds it now ({written.text}){ran}", ""
        elif written.next_run and cell.waiting is not None:
            shows = f"#{showed.n}" if showed else "your text"
            uses = "runs" if cell.kind == "code" else "uses"
            where = (
                f"the kernel {uses} it; the cell still shows {shows}: "
                f"{self._run_to_write(cell, cell.waiting)}"
            )
            tail = f" ({written.text})"
        else:
            where = "the kernel ran it" if ran else "the variable holds it now"
            tail = f"; {written.text}"
        if failure:
            holds = "the cell holds the accepted text" if written.edited else where
            failed = f"{cell.name}: {verb}, but running it failed: {failure} ({holds}){tail}"
            return Outcome(False, failed, output)
        return Outcome(True, f"{cell.name}: {verb}; {where}{tail}", output)

    # -- hand edits -------------------------------------------------------------------------
    def cell_changed(self, cell_id: str, source: str) -> None:
        """The extension saw the cell change in the editor (typing, Ctrl-Z, our own edit)."""
        cell = next((v for v in self.session.variables.values() if v.cell.cell_id == cell_id), None)
        if cell is None:
            return
        body = norm(cell_body(source))
        if same(body, cell.cell_value):
            return
        cell.cell_value = body
        entry = self.in_cell(cell.name)
        cell.last_action = (
            f"edited in the cell: back to #{entry.n}" if entry else "edited in the cell"
        )
        self.changed(cell.name)
