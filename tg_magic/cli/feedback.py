"""`tg-magic feedback`: the teacher's tests or rubric over submitted notebooks, a feedback copy of
each and a summary (the work itself is in `tg_magic.classroom`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from . import engine_for, fail


class _Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, one line each otherwise."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.width = 24

    def update(self, done: int, note: str = "") -> None:
        filled = self.width * done // self.total if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{self.label} [{bar}] {done}/{self.total}" + (f"  {note}" if note else "")
        if self.live:
            self.stream.write("\r" + text[:150].ljust(150) + ("\n" if done >= self.total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def cmd_feedback(args: argparse.Namespace) -> int:
    from .. import classroom
    from ..loss import TestLoss

    loss_file = Path(args.tests or args.rubric).expanduser()
    option = "--tests" if args.tests else "--rubric"
    if not loss_file.is_file():
        return fail("feedback", f"{option} {loss_file}: file not found")
    text = loss_file.read_text(encoding="utf-8")
    if not text.strip():
        return fail("feedback", f"{option} {loss_file} is empty")
    if args.tests:
        TestLoss(text)  # tests that do not parse: a one-line input error, before any notebook
    if args.jobs < 1:
        return fail("feedback", "--jobs must be at least 1")
    files = classroom.find_submissions(args.submissions)
    if not files:
        return fail("feedback", "no .ipynb files found in " + " ".join(args.submissions))
    out_dir = Path(args.out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        return fail("feedback", f"--out {out_dir} is a file: give a folder")
    assignment = classroom.Assignment(
        args.target,
        "tests" if args.tests else "rubric",
        text,
        engine=engine_for(args.engine),
        timeout=args.timeout,
    )
    bar = _Progress("feedback", len(files))
    bar.update(0)

    def done(result: classroom.Result, count: int, total: int) -> None:
        state = "done before" if result.skipped else ("ok" if result.ok else "error")
        bar.update(count, f"{result.student}: {state}")

    results = classroom.run(
        files, assignment, out_dir, jobs=args.jobs, force=args.force, on_done=done
    )
    classroom.write_csv(results, assignment.mode, out_dir / "summary.csv")
    classroom.write_html(results, assignment, out_dir / "summary.html")
    width = max(len(r.student) for r in results)
    for r in results:
        score = "  –  " if r.score is None else f"{r.score:.2f}"
        counts = f" ({r.passed}/{r.total} tests)" if r.total is not None else ""
        state = "" if r.ok else "  " + r.status
        again = "  (done before)" if r.skipped else ""
        print(f"{r.student:<{width}}  {score}{counts}{state}{again}")
    skipped = sum(1 for r in results if r.skipped)
    errors = sum(1 for r in results if not r.ok)
    print(
        f"{len(results)} notebooks ({skipped} done before, {errors} with errors): "
        f"{out_dir / 'summary.csv'}, {out_dir / 'summary.html'}"
    )
    return 0


def add_parser(sub: Any) -> None:
    fb = sub.add_parser(
        "feedback",
        help="score submitted notebooks and write a hint into each",
        description="For each notebook: find the answer cell, run the teacher's tests (or a "
        "judge with the rubric), write a copy with a feedback cell (score and a hint that "
        "points at the problem without the solution), and a summary table.",
    )
    fb.add_argument("submissions", nargs="+", metavar="SUBMISSION", help=".ipynb files or folders")
    fb.add_argument(
        "--target",
        required=True,
        metavar="NAME",
        help="the answer cell: %%%%tgvariable NAME, or a cell tagged NAME",
    )
    loss = fb.add_mutually_exclusive_group(required=True)
    loss.add_argument("--tests", metavar="FILE", help="Python tests (asserts or test_* functions)")
    loss.add_argument("--rubric", metavar="FILE", help="a rubric in words, for an LLM judge")
    fb.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    fb.add_argument(
        "--engine", help="engine for hints and the judge (default: Claude with a key, else local)"
    )
    fb.add_argument("--jobs", type=int, default=4, help="notebooks at once (default 4)")
    fb.add_argument("--timeout", type=float, default=20.0, help="seconds per test run")
    fb.add_argument("--force", action="store_true", help="redo notebooks finished before")
    fb.set_defaults(func=cmd_feedback)
