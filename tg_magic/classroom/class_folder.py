"""The teacher's class folder: everything the hint service knows, none of it sent to a student.

    DIR/class.toml                settings (all optional; defaults below)
    DIR/assignments/NAME/tests.py the teacher's tests (hidden tests and points: teacher_tests)
    DIR/assignments/NAME/rubric.md  or a rubric, for free-text answers
    DIR/assignments/NAME/solution.py  optional reference solution (the leak check)
    DIR/tokens.json               hashes of the students' and the teacher's tokens, expiry dates
    DIR/logs/STUDENT.jsonl        every request, score and hint, per student
    DIR/cache.sqlite              the model's reply cache
    DIR/gradebook.csv             best points per student and assignment (Canvas / Moodle)

An assignment's NAME is the student's variable (`%%tgvariable NAME`, `%tghint NAME`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .scoring import Assignment

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ClassSettings:
    engine: str | None = None  # None: Claude with the service's ANTHROPIC_API_KEY
    concurrency: int = 16  # model calls in flight at once (the provider's limit)
    hints_per_hour: int = 10  # per student
    hints_per_assignment: int = 30  # per student and assignment
    max_cell_chars: int = 20_000
    timeout: float = 20.0  # seconds per test run


class ClassFolder:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        if not self.root.is_dir():
            raise InputError(f"--class {root}: no such folder (make it with the assignments in it)")
        self.settings = self._settings()
        self.assignments = self._assignments()
        if not self.assignments:
            raise InputError(
                f"--class {root}: no assignment: add assignments/NAME/tests.py (or rubric.md)"
            )

    tokens = property(lambda self: self.root / "tokens.json")
    logs = property(lambda self: self.root / "logs")
    cache = property(lambda self: self.root / "cache.sqlite")
    gradebook = property(lambda self: self.root / "gradebook.csv")

    def _settings(self) -> ClassSettings:
        path = self.root / "class.toml"
        if not path.is_file():
            return ClassSettings()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not valid TOML: {exc}") from None
        known = set(ClassSettings.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{path}: unknown setting {unknown[0]!r}; known: {sorted(known)}")
        return ClassSettings(**data)

    def _assignments(self) -> dict[str, Assignment]:
        found: dict[str, Assignment] = {}
        folder = self.root / "assignments"
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not path.is_dir() or not _NAME.match(path.name):
                continue
            tests, rubric = path / "tests.py", path / "rubric.md"
            solution = path / "solution.py"
            if not tests.is_file() and not rubric.is_file():
                continue
            mode = "tests" if tests.is_file() else "rubric"
            assignment = Assignment(
                path.name,
                mode,
                (tests if mode == "tests" else rubric).read_text(encoding="utf-8"),
                timeout=self.settings.timeout,
                solution=solution.read_text(encoding="utf-8") if solution.is_file() else "",
            )
            if mode == "tests":
                assignment.teacher_tests()  # a broken tests file: one line at start
            found[path.name] = assignment
        return found
