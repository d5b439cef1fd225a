"""Labelled data sets (JSONL or CSV with `input` and `target`) and the metrics that score them."""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class Example:
    """One labelled example: its input is a text, or a dict of texts when the data set has
    several input columns (and no `input` column)."""

    input: str | dict[str, str]
    target: str
    row: int = field(default=0, compare=False)  # its row in the data file, 1-based (0: not read)

    @property
    def text(self) -> str:
        """The input as one text (a dict as `name: value` lines), for a single-prompt loss."""
        if isinstance(self.input, str):
            return self.input
        return "\n".join(f"{k}: {v}" for k, v in self.input.items())


def load_examples(path: str | Path) -> list[Example]:
    """Read a data set; every problem is reported with the file, the line and the fix."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"data file {str(path)!r} not found: give a JSONL or CSV file path")
    text = file.read_text(encoding="utf-8")
    rows: list[dict[str, object]] = []
    if file.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{file.name}, line {n}: not JSON ({exc.msg}); write one "
                    '{"input": ..., "target": ...} object per line'
                ) from None
            if not isinstance(row, dict):
                raise InputError(f"{file.name}, line {n}: expected an object with input and target")
            rows.append(row)
    elif file.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        raise InputError(f"data file {file.name}: use a .jsonl or .csv file")
    examples = []
    for n, row in enumerate(rows, 1):
        columns = {str(k): str(v) for k, v in row.items() if k != "target"}
        if "target" not in row or not columns:
            raise InputError(
                f"{file.name}, row {n}: needs the fields 'input' and 'target' (or several "
                f"input fields and 'target') (has {sorted(row)})"
            )
        given = columns.get("input", columns)
        examples.append(Example(given, str(row["target"]), n))
    if not examples:
        raise InputError(f"data file {file.name} has no examples")
    return examples


def split(
    examples: list[Example], fraction: float, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """A reproducible train/validation split."""
    if not 0 < fraction < 1:
        raise InputError("--val-frac must be between 0 and 1, e.g. 0.2")
    shuffled = examples[:]
    random.Random(seed).shuffle(shuffled)
    k = max(1, round(len(shuffled) * fraction))
    return shuffled[k:], shuffled[:k]


def _last_number(text: str) -> float | None:
    found = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return float(found[-1]) if found else None


def _exact(prediction: str, target: str) -> bool:
    return prediction.strip().lower() == target.strip().lower()


def _number(prediction: str, target: str) -> bool:
    got, want = _last_number(prediction), _last_number(target)
    return got is not None and want is not None and abs(got - want) < 1e-9


def _contains(prediction: str, target: str) -> bool:
    return target.strip().lower() in prediction.lower()


METRICS: dict[str, Callable[[str, str], bool]] = {
    "exact": _exact,
    "number": _number,
    "contains": _contains,
}

METRIC_PURPOSE = {
    "exact": "1 if the prediction equals the target answer exactly, else 0",
    "number": "1 if the last number in the prediction equals the target number, else 0",
    "contains": "1 if the prediction contains the target answer, else 0",
}
