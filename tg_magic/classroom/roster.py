"""The class list: `roster.csv` (login, optional name and expires columns). `tg-magic tokens`
makes a token per row; under JupyterHub the roster is who may ask for hints, and its names are
the gradebook's Student column.

Logins are compared exactly (no case or Unicode folding): a Hub user "Alice" or "ａlice" is not
the roster's "alice", so no one reaches another student's records by a look-alike name.
"""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

from ..errors import InputError


def read_roster(path: Path) -> list[tuple[str, str, str]]:
    """(login, name, expires) per row: columns login (or student / username / the first one),
    optional name and expires (YYYY-MM-DD)."""
    if not path.is_file():
        raise InputError(f"--students {path}: file not found (a CSV with a login column)")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if not fields:
            raise InputError(f"--students {path} is empty: one row per student, a login column")
        key = next((f for f in ("login", "student", "username", "email") if f in fields), fields[0])
        rows = []
        for raw in reader:
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            if row.get(key):
                rows.append((row[key], row.get("name", "") or row[key], row.get("expires", "")))
    return rows


class Roster:
    """login -> name of the roster file, read again when the file changes (a student the teacher
    adds gets hints without a restart). No file: an empty class."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[float, int] | None = None
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def names(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            stat = os.stat(self.path)
        except OSError:
            return {}
        with self._lock:
            if self._seen != (stat.st_mtime, stat.st_size):
                try:
                    self._names = {login: name for login, name, _ in read_roster(self.path)}
                    self._seen = (stat.st_mtime, stat.st_size)
                except (InputError, OSError, UnicodeDecodeError, csv.Error):
                    pass  # a file being saved: keep the last good roster, read it again next time
            return dict(self._names)
