"""`tg-magic feedback`: the teacher's tests or rubric over submitted notebooks, a feedback copy of
each and a summary (the work itself is in `tg_magic.classroom`)."""

from __future__ import annotations

import argparse
import atexit
import gc
import sys
from pathlib import Path
from typing import Any, TextIO

from . import EXIT_FAILED, engine_for, fail


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


def _batch_progress(status: Any) -> None:
    """A line each time a Message Batch's counts change (they move when the batch ends)."""
    _Progress(f"batch {status.id}", status.total).update(status.ended, str(status))


def cmd_feedback(args: argparse.Namespace) -> int:
    from .. import classroom, sandbox
    from ..classroom import gradebook
    from ..classroom.nbgrader import find_config
    from ..classroom.teacher_tests import TeacherTests

    if args.nbgrader is not None or (not args.submissions and find_config(Path.cwd())):
        from .feedback_nbgrader import cmd_nbgrader

        return cmd_nbgrader(args)
    for value, what in ((args.submissions, "SUBMISSION"), (args.target, "--target NAME")):
        if not value:
            return fail("feedback", f"{what} is required (or --nbgrader COURSE_DIR for nbgrader)")
    if not (args.tests or args.rubric):
        return fail(
            "feedback",
            "one of the arguments --tests --rubric is required "
            "(or --nbgrader COURSE_DIR for an nbgrader course)",
        )
    if not args.out:
        return fail("feedback", "--out DIR is required: the folder for the results")
    loss_file = Path(args.tests or args.rubric).expanduser()
    option = "--tests" if args.tests else "--rubric"
    if not loss_file.is_file():
        return fail("feedback", f"{option} {loss_file}: file not found")
    text = loss_file.read_text(encoding="utf-8")
    if not text.strip():
        return fail("feedback", f"{option} {loss_file} is empty")
    if args.tests and loss_file.suffix == ".ipynb":
        return fail("feedback", _notebook_as_tests(loss_file))
    if args.tests:
        TeacherTests.parse(text)  # tests that do not parse: one line, before any notebook
        if not args.unsandboxed and not sandbox.available():
            return fail(
                "feedback",
                "student code runs only in the sandbox, and bubblewrap is not installed: "
                "sudo apt-get install bubblewrap (or pass --unsandboxed for code you trust)",
            )
    solution = ""
    if args.solution:
        solution_file = Path(args.solution).expanduser()
        if not solution_file.is_file():
            return fail("feedback", f"--solution {solution_file}: file not found")
        solution = solution_file.read_text(encoding="utf-8")
    if args.jobs is not None and args.jobs < 1:
        return fail("feedback", "--jobs must be at least 1")
    students, layout_name = classroom.discover(args.submissions, args.target, args.assignment)
    if not students:
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
        solution=solution,
        name=args.assignment or layout_name or args.target,
        allow_unsandboxed=args.unsandboxed,
    )
    batching = False
    if args.batch:  # the record in --out lets an interrupted run read its batches' answers
        from ..engines import batches

        batching = batches.start(out_dir / batches.RECORD_NAME, assignment.engine, _batch_progress)
    bar = _Progress("feedback", len(students))
    bar.update(0)
    # The interpreter's last collection at exit walks every object the SDK and nbformat made
    # (0.3 s on one core, the run's whole tail); a process about to end need not free them.
    atexit.register(gc.freeze)

    def done(result: classroom.Result, count: int, total: int) -> None:
        state = "done before" if result.skipped else ("ok" if result.ok else "error")
        bar.update(count, f"{result.student}: {state}")

    results = classroom.run(
        students, assignment, out_dir, jobs=args.jobs, force=args.force, on_done=done
    )
    classroom.write_csv(results, assignment.mode, out_dir / "summary.csv")
    classroom.write_html(results, assignment, out_dir / "summary.html")
    gradebook.update_gradebook(
        out_dir / "gradebook.csv", assignment.title, {r.student: r.points for r in results}
    )
    width = max(len(r.student) for r in results)
    for r in results:
        score = "  –  " if r.score is None else f"{r.score:.2f}"
        counts = f" ({r.passed}/{r.total} tests)" if r.total is not None else ""
        state = "" if r.ok else "  " + r.status
        again = "  (done before)" if r.skipped else ""
        print(f"{r.student:<{width}}  {score}{counts}{state}{again}")
    counted = classroom.summary_counts(results)
    skipped = sum(1 for r in results if r.skipped)
    print(
        f"{len(results)} notebooks ({skipped} done before, {counted['timed out']} timed out, "
        f"{counted['error']} with errors): {out_dir / 'summary.csv'}, "
        f"{out_dir / 'summary.html'}, {out_dir / 'gradebook.csv'}"
    )
    if batching:
        print(batches.summary())
    if counted["ok"] == 0:
        return fail("feedback", "no notebook could be scored (see the rows above)", EXIT_FAILED)
    return 0


def _notebook_as_tests(path: Path) -> str:
    """Why a notebook given as --tests is refused, and what to do instead."""
    from ..classroom.nbgrader import is_test_cell
    from ..classroom.submissions import BrokenSubmission, read_notebook

    try:
        cells = read_notebook(path.read_bytes()).cells
    except (OSError, BrokenSubmission):
        cells = []
    if any(is_test_cell(c) for c in cells):
        return (
            f"--tests {path} is an nbgrader notebook: run over the course with --nbgrader "
            "COURSE_DIR --assignment NAME (its test cells, hidden tests and points are read there)"
        )
    return f"--tests {path} is a notebook with no nbgrader test cells: give a .py tests file"


HELP = "score submitted notebooks and write a hint into each"
DESCRIPTION = (
    "For each notebook: find the answer cell, run the teacher's tests (or a "
    "judge with the rubric), write a copy with a feedback cell (score and a hint that "
    "points at the problem without the solution), and a summary table."
)


def arguments(p: Any) -> None:
    p.add_argument("submissions", nargs="*", metavar="SUBMISSION", help=".ipynb files or folders")
    p.add_argument(
        "--target",
        metavar="NAME",
        help="the answer cell: %%%%tgvariable NAME, or a cell tagged NAME (nbgrader: a solution "
        "cell's grade_id; default: every solution cell the test cells use)",
    )
    p.add_argument(
        "--nbgrader",
        nargs="?",
        const="",
        metavar="COURSE_DIR",
        help="an nbgrader course (default: the one whose nbgrader_config.py is here or above): "
        "tests from source/NAME/, answers from submitted/, pages to feedback/",
    )
    loss = p.add_mutually_exclusive_group()
    loss.add_argument("--tests", metavar="FILE", help="Python tests (asserts or test_* functions)")
    loss.add_argument("--rubric", metavar="FILE", help="a rubric in words, for an LLM judge")
    p.add_argument(
        "--out", metavar="DIR", help="folder for the results (nbgrader: COURSE/tg-magic/NAME)"
    )
    p.add_argument(
        "--engine", help="engine for hints and the judge (default: Claude with a key, else local)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        help="notebooks tested at once, and hints asked at once beside them (default: 2 per core)",
    )
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per test run")
    p.add_argument("--force", action="store_true", help="redo notebooks finished before")
    p.add_argument(
        "--solution", metavar="FILE", help="the reference solution (the hint's leak check)"
    )
    p.add_argument(
        "--assignment",
        metavar="NAME",
        help="the gradebook column; with nbgrader's submitted/ layout, which assignment",
    )
    p.add_argument(
        "--unsandboxed",
        action="store_true",
        help="run the tests without bubblewrap (only for code you trust)",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="send the model calls as Message Batches: half the price, answers in minutes; "
        "an interrupted run reads the batches it sent (recorded in --out) instead of paying again",
    )
    p.set_defaults(func=cmd_feedback)
