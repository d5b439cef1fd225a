"""The teacher's tests file: which tests are hidden and how many points each is worth.

A comment on the line right above a test function (above its decorators) marks it, as Otter's
`# HIDDEN` and nbgrader's hidden tests do, in one line a teacher can read:

    # hidden, 2 points
    def test_even_length():
        assert median([4, 1, 3, 2]) == 2.5

`# hidden` alone, `# 3 points` alone, or both in either order; unmarked tests are visible and
worth 1 point. A hidden test runs and scores like any other; the student sees its name and
whether it passed, never its body or its failure message (not in the result, not in the hint:
the hint model is shown the visible tests only). The same file serves `tg-magic feedback` and
`tg-magic serve`. Markers apply to top-level `test_*` functions; a file of bare asserts is one
visible test.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from .. import pysource
from ..errors import InputError
from ..text import first_line

_MARK = re.compile(
    r"^#\s*(?:(?P<h1>hidden)\s*(?:[,;]\s*)?)?(?:(?P<pts>\d+(?:\.\d+)?)\s*points?)?"
    r"\s*(?:[,;]\s*(?P<h2>hidden))?\s*$",
    re.IGNORECASE,
)
HIDDEN_MESSAGE = "hidden test: its body and message are not shown"


@dataclass(frozen=True)
class TestSpec:
    __test__ = False  # not a pytest class

    name: str
    hidden: bool = False
    points: float = 1.0
    source: str = ""


@dataclass(frozen=True)
class TeacherTests:
    """The tests text and what its markers say about each test."""

    text: str
    specs: dict[str, TestSpec]

    @classmethod
    def parse(cls, text: str) -> TeacherTests:
        if not text.strip():
            raise InputError("the tests file is empty: write test_* functions or asserts")
        try:
            tree = pysource.parse(text)
        except SyntaxError as exc:
            raise InputError(
                f"the tests file does not parse: line {exc.lineno}: {exc.msg}; fix the tests"
            ) from None
        lines = text.splitlines()
        specs: dict[str, TestSpec] = {}
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not node.name.startswith("test"):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            hidden, points = False, 1.0
            row = first - 1
            while row >= 0 and lines[row].strip().startswith("#"):
                mark = _MARK.match(lines[row].strip())
                if mark and (mark["h1"] or mark["h2"] or mark["pts"]):
                    hidden = hidden or bool(mark["h1"] or mark["h2"])
                    points = float(mark["pts"]) if mark["pts"] else points
                row -= 1
            source = "\n".join(lines[first : node.end_lineno])
            specs[node.name] = TestSpec(node.name, hidden, points, source)
        return cls(text, specs)

    def spec(self, name: str) -> TestSpec:
        return self.specs.get(name.split("::")[-1].split("[")[0], TestSpec(name))

    @property
    def hidden_sources(self) -> list[str]:
        return [s.source for s in self.specs.values() if s.hidden]

    @property
    def visible_text(self) -> str:
        """The tests with the hidden ones taken out: what the hint model may be shown."""
        text = self.text
        for source in self.hidden_sources:
            text = text.replace(source, "# (a hidden test)")
        return text

    @property
    def hidden_text(self) -> str:
        """The hidden tests with what they share (imports, helpers), without the visible tests:
        run apart, so nothing the code sees in a hidden test reaches a visible test's message."""
        tree = pysource.parse(self.text)
        lines = self.text.splitlines()
        kept = []
        for node in tree.body:
            name = getattr(node, "name", "")
            if isinstance(node, ast.Assert) or (name in self.specs and not self.specs[name].hidden):
                continue
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
        return "\n\n\n".join(kept) + "\n"

    @property
    def has_visible(self) -> bool:
        """Whether any test is shown (a visible test_* function or a top-level assert)."""
        tree = pysource.parse(self.text)
        return any(not s.hidden for s in self.specs.values()) or any(
            isinstance(n, ast.Assert) for n in tree.body
        )

    def public_outcomes(self, outcomes: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Per test: name, passed, points, earned, hidden, and the message (empty if hidden)."""
        shown = []
        for o in outcomes:
            spec = self.spec(o.name)
            message = "" if spec.hidden or o.passed else first_line(o.message, 200)
            shown.append(
                {
                    "name": o.name,
                    "passed": bool(o.passed),
                    "points": spec.points,
                    "earned": spec.points if o.passed else 0.0,
                    "hidden": spec.hidden,
                    "message": message,
                }
            )
        return shown
