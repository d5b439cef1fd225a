"""What the service remembers per student: a log of every request (logs/STUDENT.jsonl: the
cell, the score, the per-test results and the hint given, or why it was refused), the rate
limits read from it, and the class table for the teacher's page and the gradebook. A teacher's
trial hints ("trial": true) count against their own limits but are never in the class table."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import TEACHER

_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")


@dataclass
class Standing:
    """One student on one assignment."""

    attempts: int = 0
    hints: int = 0
    best_score: float | None = None
    best_points: float | None = None
    tests: dict[str, bool] = field(default_factory=dict)  # of the best attempt


class Records:
    def __init__(self, folder: Path, per_hour: int, per_assignment: int) -> None:
        self.folder = folder
        self.per_hour = per_hour
        self.per_assignment = per_assignment
        self._lock = threading.Lock()
        self._hint_times: dict[tuple[str, str], list[float]] = {}
        self._held: dict[tuple[str, str], int] = {}  # hints being made now, not yet recorded
        self.table: dict[str, dict[str, Standing]] = {}
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # a student's log is private
        for log in sorted(folder.glob("*.jsonl")):  # a restart keeps the limits and the table
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    self._count(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue

    def _path(self, student: str) -> Path:
        safe = _SAFE.sub("_", student)[:80] or "_"
        if safe != student:  # changed to fit a file name: a suffix keeps a+b and a_b apart
            safe += "-" + hashlib.sha256(student.encode("utf-8", "replace")).hexdigest()[:10]
        return self.folder / f"{safe}.jsonl"

    def refusal(self, student: str, assignment: str, *, hold: bool = False) -> str:
        """Why this student may not have another hint now ("" when they may). With `hold`, a
        hint that may be given is counted at once (until `unhold`), so requests sent together
        cannot all pass the check before the first is recorded."""
        now = time.time()
        with self._lock:
            times = self._hint_times.get((student, assignment), [])
            all_times = [t for (s, _), ts in self._hint_times.items() if s == student for t in ts]
            held = {a: n for (s, a), n in self._held.items() if s == student}
            all_times += [now] * sum(held.values())
            why = ""
            if len(times) + held.get(assignment, 0) >= self.per_assignment:
                why = f"hint limit reached: {self.per_assignment} hints for {assignment}"
            recent = sorted(t for t in all_times if now - t < 3600)
            if not why and len(recent) >= self.per_hour:
                wait = int(3600 - (now - recent[0])) // 60 + 1
                why = f"hint limit reached: {self.per_hour} hints per hour; try again in {wait} min"
            if hold and not why:
                self._held[(student, assignment)] = held.get(assignment, 0) + 1
        return why

    def unhold(self, student: str, assignment: str) -> None:
        """The held hint is recorded (or was not given): it no longer counts as held."""
        with self._lock:
            left = self._held.pop((student, assignment), 1) - 1
            if left > 0:
                self._held[(student, assignment)] = left

    def left(self, student: str, assignment: str) -> tuple[int, int]:
        """(hints left this hour, hints left for `assignment`): the next hint needs both."""
        now = time.time()
        with self._lock:
            used = len(self._hint_times.get((student, assignment), []))
            recent = sum(
                1
                for (s, _), ts in self._hint_times.items()
                if s == student
                for t in ts
                if now - t < 3600
            )
        return max(0, self.per_hour - recent), max(0, self.per_assignment - used)

    def record(self, student: str, entry: dict[str, Any]) -> None:
        entry = {"time": time.time(), "student": student, **entry}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            fd = os.open(self._path(student), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(fd, "a", encoding="utf-8", errors="replace") as handle:
                handle.write(line)
            self._count(entry)

    def _count(self, entry: dict[str, Any]) -> None:
        if entry.get("status") != "served":
            return
        student, assignment = entry["student"], entry["assignment"]
        self._hint_times.setdefault((student, assignment), []).append(float(entry["time"]))
        if entry.get("trial") or student == TEACHER:  # the teacher trying hints: not the class
            return
        standing = self.table.setdefault(student, {}).setdefault(assignment, Standing())
        standing.attempts += 1
        standing.hints += 1 if entry.get("hint") else 0
        score = entry.get("score")
        if score is not None and (standing.best_score is None or score > standing.best_score):
            standing.best_score = float(score)
            standing.best_points = entry.get("points")
            standing.tests = {t["name"]: bool(t["passed"]) for t in entry.get("tests", [])}

    def best_points(self, assignment: str) -> dict[str, float | None]:
        with self._lock:
            return {
                student: row[assignment].best_points
                for student, row in self.table.items()
                if assignment in row
            }
