"""The labelled hint set (tests/data/hints/): leaks in many disguises and fair hints, and how a
leak filter is scored on it. Used by tests/test_hints.py and benchmarks/hints.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "data" / "hints"


def items() -> list[dict[str, Any]]:
    return list(json.loads((HERE / "hints.json").read_text(encoding="utf-8")))


def tasks() -> dict[str, dict[str, str]]:
    return dict(json.loads((HERE / "tasks.json").read_text(encoding="utf-8")))


def leaked(item: dict[str, Any], shown: str) -> bool:
    """A leak item leaked when any of its solution fragments is still in what is shown."""
    flat = " ".join(shown.split())
    return any(" ".join(m.split()) in flat for m in item["markers"])


@dataclass
class Figures:
    leaks: int  # leak items that got through
    leak_total: int
    damaged: int  # fair items changed in any way
    fair_total: int
    leaked_ids: list[str]
    damaged_ids: list[str]

    def line(self, label: str) -> str:
        return (
            f"{label}: leaks caught {self.leak_total - self.leaks}/{self.leak_total} "
            f"(through: {', '.join(self.leaked_ids) or 'none'}), fair hints kept "
            f"{self.fair_total - self.damaged}/{self.fair_total} "
            f"(damaged: {', '.join(self.damaged_ids) or 'none'})"
        )


def measure(shown: Callable[[dict[str, Any]], str], layer: str | None = None) -> Figures:
    """Run `shown(item)` (what the student would see) over the set; `layer="syntactic"` keeps
    only the leaks the syntactic filter is meant for (code in some form) and every fair hint."""
    chosen = [i for i in items() if i["kind"] == "fair" or layer in (None, i["layer"])]
    leaks = [i for i in chosen if i["kind"] == "leak"]
    fair = [i for i in chosen if i["kind"] == "fair"]
    leaked_ids = [i["id"] for i in leaks if leaked(i, shown(i))]
    damaged_ids = [i["id"] for i in fair if shown(i) != i["hint"]]
    return Figures(
        len(leaked_ids), len(leaks), len(damaged_ids), len(fair), leaked_ids, damaged_ids
    )


def scripted_check(body: dict[str, Any], text: str) -> str:
    """The fake model's leak check, as scripted in the set: the verdict written for the hint
    being checked (a fair hint is kept, a leak withheld or rewritten as the item says)."""
    for item in items():
        if " ".join(item["hint"].split())[:60] in " ".join(text.split()):
            verdict = item["scripted_check"]
            if verdict.startswith("REWRITE:"):
                return f"VERDICT: REWRITE\n<HINT>{verdict.removeprefix('REWRITE:')}</HINT>"
            return f"VERDICT: {verdict}"
    return "VERDICT: KEEP"  # a hint the set does not know (a rewritten one): the model keeps it


def both_layers(engine: Any) -> Callable[[dict[str, Any]], str]:
    """What a student sees after the syntactic filter and the model's check (the service)."""
    from tg_magic.classroom.hinting import checked_hint
    from tg_magic.classroom.scoring import Assignment

    def shown(item: dict[str, Any]) -> str:
        task = tasks()[item["task"]]
        assignment = Assignment(
            item["task"], "tests", task["tests"], engine=engine, solution=task["reference"]
        )
        return checked_hint(item["hint"], task["student"], assignment, [task["tests"]])

    return shown


def syntactic_layer(item: dict[str, Any]) -> str:
    from tg_magic.hints import filter_hint

    task = tasks()[item["task"]]
    return filter_hint(item["hint"], task["student"], [task["tests"]], secret=[task["reference"]])
