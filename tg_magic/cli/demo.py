"""`tg-magic demo`: buggy functions fixed against their tests, end to end (tests run for real,
textual gradients, k candidate versions per step, the tests pick), then held-back tests that the
optimization never saw. Tests judge every candidate, so even the small keyless model's rare good
proposal is found and kept, and a wrong one never is."""

from __future__ import annotations

import argparse
import difflib
import time
import warnings
from dataclasses import dataclass
from typing import Any

from . import engine_for, fail


@dataclass(frozen=True)
class Bug:
    name: str
    code: str
    tests: str  # what the optimization runs
    held_back: str  # run once before and once after, never shown to a model


BUGS = [
    Bug(
        "average",
        "def average(numbers):\n    return sum(numbers) / (len(numbers) - 1)\n",
        "def test_three():\n    assert average([1, 2, 3]) == 2\n\n"
        "def test_two():\n    assert average([2, 4]) == 3\n",
        "assert average([10]) == 10 and average([1, 2, 3, 6]) == 3\n",
    ),
    Bug(
        "factorial",
        "def factorial(n):\n    if n == 0:\n        return 0\n    return n * factorial(n - 1)\n",
        "def test_zero():\n    assert factorial(0) == 1\n\n"
        "def test_four():\n    assert factorial(4) == 24\n",
        "assert factorial(1) == 1 and factorial(5) == 120\n",
    ),
    Bug(
        "is_palindrome",
        "def is_palindrome(text):\n    return text == text[::1]\n",
        "def test_word():\n    assert is_palindrome('level')\n\n"
        "def test_not():\n    assert not is_palindrome('python')\n",
        "assert is_palindrome('racecar') and not is_palindrome('ab')\n",
    ),
    Bug(
        "range_sum",
        'def range_sum(a, b):\n    """The sum of the integers from a to b, both included."""\n'
        "    return sum(range(a, b))\n",
        "def test_range():\n    assert range_sum(1, 3) == 6\n\n"
        "def test_one_number():\n    assert range_sum(5, 5) == 5\n",
        "assert range_sum(-2, 2) == 0 and range_sum(10, 12) == 33\n",
    ),
]
BAR = 12


def bar(done: int, total: int) -> str:
    filled = round(BAR * done / total)
    return "[" + "#" * filled + "-" * (BAR - filled) + "]"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def fix(bug: Bug, args: argparse.Namespace) -> str:
    """Optimize one function against its tests, printing a progress bar per step; the new code."""
    import tg_magic as tg
    from tg_magic.candidates import python_prefix
    from tg_magic.loss import TestLoss
    from tg_magic.objectives import constraints
    from tg_magic.train import Objective, optimize

    code = tg.Variable(bug.code, role_description=f"Python code defining {bug.name}")
    tests = TestLoss(bug.tests)

    def scores(values: list[str]) -> list[float]:
        run = TestLoss.report(tests(tg.Variable(values[0], role_description="code")))
        return [float(o.passed) for o in run.outcomes] or [0.0]

    objective: Objective[Any] = Objective(
        lambda _: tests(code), validate=lambda: tests(code).score, validate_each=scores
    )
    first = TestLoss.report(tests(code))
    total = len(first.outcomes) or 1
    passed = sum(o.passed for o in first.outcomes)
    print(f"{bug.name:<14}{bar(passed, total)} tests {passed}/{total} pass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unusable replies are candidates that lose
        steps = optimize(
            [code],
            objective,
            steps=args.steps,
            candidates=args.candidates,
            constraints=constraints({"code"}),
            tidy=python_prefix,
        )
        for result in steps:
            passed = round((result.val_after or 0.0) * total)
            better = result.val_after != result.val_before
            print(
                f"{'':<14}{bar(passed, total)} tests {passed}/{total} pass  step "
                f"{result.step}/{args.steps}: {plural(len(result.candidates), 'candidate')}, "
                f"{'kept a better version' if better else 'no candidate was better'}  "
                f"[{result.usage}]"
            )
            if result.val_after == 1.0:
                break
    return code.value


def cmd_demo(args: argparse.Namespace) -> int:
    import tg_magic as tg
    from tg_magic.sandbox import run_tests

    if args.steps < 1 or args.candidates < 1:
        return fail("demo", "--steps and --candidates must be at least 1")
    engine = engine_for(args.engine) or tg.get_engine(None)
    tg.set_backward_engine(engine)
    print(f"tg-magic demo: fix {len(BUGS)} buggy functions against their tests on {engine.spec}")
    print(
        f"each step: the tests run, the model explains the failures (the gradient) and writes "
        f"{args.candidates} new versions; the tests keep the best, never a worse one\n"
    )
    start = time.perf_counter()
    held_before = held_after = 0
    diffs = []
    for bug in BUGS:
        held_before += run_tests(bug.code, bug.held_back).score == 1.0
        new = fix(bug, args)
        held_after += run_tests(new, bug.held_back).score == 1.0
        if new != bug.code:
            diffs.append((bug, new))
    print(
        f"\nheld-back tests (never shown to a model): {held_before}/{len(BUGS)} functions pass "
        f"before, {held_after}/{len(BUGS)} after"
    )
    for bug, new in diffs:
        diff = difflib.unified_diff(
            bug.code.splitlines(), new.splitlines(), "before", "after", lineterm=""
        )
        print(f"\n{bug.name}:\n" + "\n".join(diff))
    print(f"\ntotal: {tg.usage()}, {time.perf_counter() - start:.0f} s")
    if engine.small:
        print(
            "a small local model writes mostly wrong versions, and the tests reject them; a "
            "stronger model (set ANTHROPIC_API_KEY, or --engine) writes better gradients and "
            "candidates: benchmarks/quality.py measures both"
        )
    return 0


HELP = "fix buggy functions against their tests, end to end"
DESCRIPTION = (
    "Fix four buggy functions against real tests: gradients, k candidates "
    "per step, the tests pick, held-back tests after. No API key: the embedded local model."
)


def arguments(p: Any) -> None:
    p.add_argument(
        "--engine",
        help="e.g. anthropic:claude-haiku-5-5 or local (default: "
        "Claude if ANTHROPIC_API_KEY is set, else local)",
    )
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per function (3)")
    p.add_argument("--candidates", type=int, default=6, help="candidate versions per step (6)")
    p.set_defaults(func=cmd_demo)
