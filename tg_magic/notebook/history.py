"""Every candidate, with its gradients, scores and usage, in `.tg_magic/` beside the
notebook: written as it is produced, so a kernel restart or a crash loses nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path


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
    status: str  # original | candidate | accepted | rejected
    usage: str
    cell_id: str
    created: float


def history_path(notebook: Path | None) -> Path:
    """`.tg_magic/<notebook>.history.sqlite` beside the notebook (one file per notebook, so two
    notebooks of a folder never mix their variables); `.tg_magic/history.sqlite` in the working
    folder when the notebook is unknown."""
    if notebook is None:
        return Path.cwd() / ".tg_magic" / "history.sqlite"
    return notebook.parent / ".tg_magic" / f"{notebook.stem}.history.sqlite"


class History:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (variable TEXT, n INTEGER, value TEXT, "
            "gradients TEXT, score REAL, val_score REAL, kept INTEGER, status TEXT, usage TEXT, "
            "cell_id TEXT, created REAL, PRIMARY KEY (variable, n))"
        )

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
    ) -> int:
        """Append an iteration; returns its number."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(MAX(n), -1) FROM entries WHERE variable = ?", (variable,)
            ).fetchone()
            n = int(row[0]) + 1
            self._db.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    variable,
                    n,
                    value,
                    json.dumps(gradients or []),
                    score,
                    val_score,
                    int(kept),
                    status,
                    usage,
                    cell_id,
                    time.time(),
                ),
            )
        return n

    def entries(self, variable: str) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM entries WHERE variable = ? ORDER BY n", (variable,)
            ).fetchall()
        return [
            Entry(
                r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], bool(r[6]), r[7], r[8], r[9], r[10]
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
