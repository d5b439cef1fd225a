"""The gradebook a learning-management system imports: one row per student, one column per
assignment, points as plain numbers.

Columns: `Student` (the name), `SIS Login ID` (the login: the token roster's, or nbgrader's
folder name), then one column per assignment. Canvas matches rows on `SIS Login ID` and columns
on the assignment's name; Moodle's "Import from CSV" maps `SIS Login ID` to the username and each
assignment column to a grade item. Writing an assignment's column keeps the other columns and
rows, so `tg-magic feedback` and the service can fill the same file over a term.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Mapping
from pathlib import Path

from .results import from_spreadsheet_cell, spreadsheet_cell, write_atomic

NAME, LOGIN = "Student", "SIS Login ID"
_lock = threading.Lock()


def read_gradebook(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """(assignment columns, login -> row) of a gradebook file; empty when there is none."""
    if not path.is_file():
        return [], {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in (reader.fieldnames or []) if c not in (NAME, LOGIN)]
        rows = {}
        for row in reader:
            if row.get(LOGIN):
                row[NAME] = from_spreadsheet_cell(row.get(NAME) or "")
                row[LOGIN] = from_spreadsheet_cell(row[LOGIN])
                rows[row[LOGIN]] = dict(row)
    return columns, rows


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def update_gradebook(
    path: Path,
    assignment: str,
    points: Mapping[str, float | None],
    names: Mapping[str, str] | None = None,
) -> None:
    """Set `assignment`'s column to `points` (login -> points; None: no grade)."""
    with _lock:
        columns, rows = read_gradebook(path)
        if assignment not in columns:
            columns.append(assignment)
        for login, value in points.items():
            row = rows.setdefault(login, {NAME: login, LOGIN: login})
            row[NAME] = (names or {}).get(login) or row[NAME]  # the roster's name wins
            row[assignment] = _number(value)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, [NAME, LOGIN, *columns], restval="", extrasaction="ignore")
        writer.writeheader()
        for login in sorted(rows):
            row = rows[login]
            writer.writerow(
                {**row, NAME: spreadsheet_cell(row[NAME]), LOGIN: spreadsheet_cell(row[LOGIN])}
            )
        write_atomic(path, buffer.getvalue())
