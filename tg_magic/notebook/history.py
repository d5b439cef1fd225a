"""Every candidate, with its gradients, scores and usage, in `.tg_magic/` beside the
notebook: written as it is produced, so a kernel restart or a crash loses nothing.

Durable by construction: a rollback journal (not WAL), so each committed write is in the
`.sqlite` file itself (copying that one file copies everything); each append numbers its row
inside one write transaction, so several kernels writing the same notebook lose nothing; a file
that cannot be read is moved aside, said in one line, and a fresh history starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, valid_text

BUSY_SECONDS = 30  # how long a write waits for another kernel's write to finish


@dataclass(frozen=True)
class Entry:
    """Iteration `n` of a variable: 0 is the cell as the user wrote it."""

    variable: str
    n: int
    value: str
    gradients: list[str]
    score: float | None
    val_score: float | None
    kept: bool
    status: str  # original | candidate | alternative | accepted | rejected | reverted
    usage: str
    cell_id: str
    created: float
    step: int | None = None  # the %tgoptimize step that made it (None: not a step's)


def history_path(notebook: Path | None) -> Path:
    """`.tg_magic/<notebook>.history.sqlite` beside the notebook (one file per notebook, so two
    notebooks of a folder never mix their variables); `.tg_magic/history.sqlite` in the working
    folder when the notebook is unknown."""
    if notebook is None:
        return Path.cwd() / ".tg_magic" / "history.sqlite"
    return notebook.parent / ".tg_magic" / f"{notebook.stem}.history.sqlite"


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (variable TEXT, n INTEGER, value TEXT, "
    "gradients TEXT, score REAL, val_score REAL, kept INTEGER, status TEXT, usage TEXT, "
    "cell_id TEXT, created REAL, step INTEGER, PRIMARY KEY (variable, n))"
)


class History:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InputError(
                f"cannot keep the history: {path.parent} is a file, not a folder; rename or "
                "remove it (tg_magic keeps its history in that folder)"
            ) from None
        self.path = path
        self._lock = threading.Lock()
        try:
            self._create()
            self._db = self._open()
        except sqlite3.OperationalError as exc:  # locked, read-only, no space: not damage
            raise InputError(
                f"cannot open the history {path}: {exc}; close other programs using it, or "
                "check the folder's space and permissions"
            ) from None
        except sqlite3.DatabaseError as exc:
            backup = self._move_aside()
            print(
                f"tg_magic: the history {path} could not be read ({exc}); moved it to "
                f"{backup.name} and started a fresh one",
                file=sys.stderr,
            )
            self._db = self._open()

    def _create(self) -> None:
        """A new history appears complete or not at all, so a kernel opening it at the same
        moment never sees a half-made (empty) file."""
        if self.path.exists():
            return
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        try:
            db = sqlite3.connect(temporary, isolation_level=None)
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute(SCHEMA)
            db.close()
            with contextlib.suppress(FileExistsError):
                os.link(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)

    def _open(self) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size == 0:
            raise sqlite3.DatabaseError("the file is empty")
        db = sqlite3.connect(
            self.path, timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None
        )
        try:
            db.execute("PRAGMA journal_mode=DELETE")  # committed means in the .sqlite file
            db.execute("PRAGMA synchronous=FULL")
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"damaged: {verdict}")
            db.execute(SCHEMA)
            columns = [row[1] for row in db.execute("PRAGMA table_info(entries)")]
            if "step" not in columns:  # a history written before steps were kept
                db.execute("ALTER TABLE entries ADD COLUMN step INTEGER")
            db.execute("SELECT COUNT(*) FROM entries").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        for suffix in ("", "-wal", "-shm", "-journal"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                side.replace(Path(f"{backup}{suffix}"))
        return backup

    def add(
        self,
        variable: str,
        value: str,
        *,
        cell_id: str = "",
        gradients: list[str] | None = None,
        score: float | None = None,
        val_score: float | None = None,
        kept: bool = True,
        status: str = "candidate",
        usage: str = "",
        step: int | None = None,
    ) -> int:
        """Append an iteration; returns its number."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # numbering and insert: one writer at a time
            try:
                row = self._db.execute(
                    "SELECT COALESCE(MAX(n), -1) FROM entries WHERE variable = ?", (variable,)
                ).fetchone()
                n = int(row[0]) + 1
                self._db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        variable,
                        n,
                        valid_text(value),
                        json.dumps([valid_text(g) for g in gradients or []]),
                        score,
                        val_score,
                        int(kept),
                        status,
                        valid_text(usage),
                        cell_id,
                        time.time(),
                        step,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    def entries(self, variable: str) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM entries WHERE variable = ? ORDER BY n", (variable,)
            ).fetchall()
        return [
            Entry(
                r[0],
                r[1],
                r[2],
                json.loads(r[3]),
                r[4],
                r[5],
                bool(r[6]),
                r[7],
                r[8],
                r[9],
                r[10],
                r[11],
            )
            for r in rows
        ]

    def latest(self, variable: str) -> Entry | None:
        found = self.entries(variable)
        return found[-1] if found else None

    def set_status(self, variable: str, n: int, status: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE entries SET status = ? WHERE variable = ? AND n = ?", (status, variable, n)
            )

    def variables(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT variable FROM entries ORDER BY variable")
            return [r[0] for r in rows.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
