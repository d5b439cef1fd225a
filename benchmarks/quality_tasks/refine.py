"""Solution refinement: a model answers a word problem, an LLM judge criticises the answer (it
is not told the result), and TGD rewrites the answer. Scored by the final number."""

from __future__ import annotations

import random
from collections.abc import Callable

from tg_magic.data import METRICS, Example

JUDGE = (
    "You check a worked answer to a word problem. Redo each calculation; say exactly which "
    "step is wrong and why, or say that every step is right. Be brief."
)
ANSWER_SYSTEM = "Solve the problem. Show the calculation, then give the final number last."
METRIC = METRICS["number"]

Template = Callable[[random.Random], tuple[str, int]]


def _muffins(r: random.Random) -> tuple[str, int]:
    a, b = r.randint(3, 9), r.randint(6, 12)
    c = r.randint(1, a * b - 1)
    return f"A baker bakes {a} trays of {b} muffins and sells {c}. How many muffins are left?", (
        a * b - c
    )


def _marbles(r: random.Random) -> tuple[str, int]:
    b, c = r.randint(2, 6), r.randint(2, 5)
    a = b * c + r.randint(1, 20)
    return (
        f"Tom has {a} marbles. He gives {b} marbles to each of his {c} friends. "
        "How many marbles does he have left?",
        a - b * c,
    )


def _train(r: random.Random) -> tuple[str, int]:
    a, b, c = r.randint(40, 90), r.randint(2, 5), r.randint(5, 30)
    return (
        f"A train travels at {a} km per hour for {b} hours, then {c} km more. "
        "How many km does it travel in total?",
        a * b + c,
    )


def _change(r: random.Random) -> tuple[str, int]:
    a, b = r.randint(2, 9), r.randint(2, 6)
    c = 50 if a * b < 50 else 100
    return (
        f"Pens cost {a} dollars each. Ana buys {b} pens and pays with a {c} dollar note. "
        "How many dollars of change does she get?",
        c - a * b,
    )


def _seats(r: random.Random) -> tuple[str, int]:
    rows, per, taken = r.randint(5, 15), r.randint(8, 20), r.randint(10, 60)
    return (
        f"A hall has {rows} rows of {per} seats. {taken} seats are taken. How many seats are free?",
        rows * per - taken,
    )


TEMPLATES: list[Template] = [_muffins, _marbles, _train, _change, _seats]


def problems(n: int, seed: int = 0) -> list[Example]:
    """n problems, templates in turn, numbers from the seed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text, answer = TEMPLATES[i % len(TEMPLATES)](rng)
        out.append(Example(text, str(answer)))
    return out


def correct(answer: str, target: str) -> bool:
    return bool(METRIC(answer, target))
