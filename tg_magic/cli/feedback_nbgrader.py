"""`tg-magic feedback --nbgrader [COURSE_DIR] --assignment NAME`: nbgrader's course as it is.

The tests, points and hidden tests come from the teacher's `source/NAME/*.ipynb`, the answers
from `submitted/STUDENT/NAME/*.ipynb`, and each student's page goes to
`feedback/STUDENT/NAME/*.html`, where `nbgrader release_feedback NAME` hands it back. The
summary, the result files and the gradebook (nbgrader's points) go to --out (default
COURSE/tg-magic/NAME).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import EXIT_FAILED, engine_for, fail

if TYPE_CHECKING:
    from ..classroom.submissions import Submission


def _assignment(course: object, given: str | None) -> str:
    from ..classroom.nbgrader import Course, assignments
    from ..errors import InputError

    assert isinstance(course, Course)
    names = assignments(course)
    if given:
        if given not in names:
            where = course.folder("source")
            raise InputError(f"--assignment {given}: no {where / given}; it has {', '.join(names)}")
        return given
    if len(names) == 1:
        return names[0]
    raise InputError(f"which assignment? --assignment NAME, one of: {', '.join(names) or 'none'}")


def _students(submitted: Path, name: str, notebook: str) -> dict[Submission, str]:
    """submitted/STUDENT/NAME/NOTEBOOK.ipynb -> STUDENT, for every student who submitted NAME;
    every part is read later without following a link (a linked folder gets a row saying so)."""
    from ..classroom.submissions import Submission

    if not submitted.is_dir():
        return {}
    root = os.path.realpath(submitted)
    found: dict[Submission, str] = {}
    for student in sorted(os.listdir(root)):
        folder = os.path.join(root, student, name)
        if os.path.islink(os.path.join(root, student)) or os.path.lexists(folder):
            parts = (student, name, f"{notebook}.ipynb")
            found[Submission(submitted.joinpath(*parts), root, parts)] = student
    return found


def cmd_nbgrader(args: argparse.Namespace) -> int:
    from .. import classroom, sandbox
    from ..classroom import gradebook, nbgrader, nbgrader_feedback
    from ..errors import InputError
    from .feedback import _batch_progress, _Progress

    if args.submissions or args.tests or args.rubric:
        return fail(
            "feedback",
            "with --nbgrader the tests come from source/NAME/ and the answers from submitted/: "
            "drop the SUBMISSION, --tests and --rubric arguments",
        )
    course = nbgrader.find_course(args.nbgrader or None, Path.cwd())
    name = _assignment(course, args.assignment)
    notebooks = sorted(course.folder("source", name).glob("*.ipynb"))
    sources = []
    for path in notebooks:
        try:
            sources.append(nbgrader.read_source(path, args.target))
        except InputError:
            if len(notebooks) == 1:
                raise
    if not sources:
        raise InputError(f"no notebook in {course.folder('source', name)} has nbgrader test cells")
    nbgrader_feedback.template_dirs()  # nbgrader's template is there, before any notebook
    if args.jobs is not None and args.jobs < 1:
        return fail("feedback", "--jobs must be at least 1")
    if not args.unsandboxed and not sandbox.available():
        return fail(
            "feedback",
            "student code runs only in the sandbox, and bubblewrap is not installed: "
            "sudo apt-get install bubblewrap (or pass --unsandboxed for code you trust)",
        )
    extra = Path(args.solution).expanduser().read_text(encoding="utf-8") if args.solution else ""
    out_dir = Path(args.out).expanduser() if args.out else course.root / "tg-magic" / name
    engine = engine_for(args.engine)
    nbgrader_feedback.load_exporter()  # nbconvert loads once, before the lanes start
    batching = False
    if getattr(args, "batch", False):  # as without --nbgrader: the record is kept in --out
        from ..engines import batches

        batching = batches.start(out_dir / batches.RECORD_NAME, engine, _batch_progress)
    totals: dict[str, float | None] = {}
    scored = 0
    for source in sources:
        out = out_dir / source.name if len(sources) > 1 else out_dir
        assignment = classroom.Assignment(
            source.target,
            "tests",
            source.tests_text,
            engine=engine,
            timeout=args.timeout,
            solution="\n\n".join(t for t in (source.reference, extra) if t.strip()),
            name=name,
            allow_unsandboxed=args.unsandboxed,
            nbgrader=source,
            feedback=str(course.folder("feedback")),
        )
        students = _students(course.folder("submitted"), name, source.name)
        if not students:
            raise InputError(f"nobody submitted {name}: no {course.folder('submitted')}/*/{name}/")
        bar = _Progress(f"feedback {source.name}", len(students))

        def done(result: classroom.Result, count: int, total: int, bar: _Progress = bar) -> None:
            bar.update(count, f"{result.student}: {'ok' if result.ok else 'error'}")

        results = classroom.run(
            students,
            assignment,
            out,
            jobs=args.jobs,
            force=args.force,
            on_done=done,
        )
        classroom.write_csv(results, "tests", out / "summary.csv")
        classroom.write_html(results, assignment, out / "summary.html")
        scored += classroom.summary_counts(results)["ok"]
        width = max(len(r.student) for r in results)
        print(f"{name}/{source.name}.ipynb: {source.target}")
        for r in results:
            points = "  –  " if r.points is None else f"{r.points:g}/{r.possible or 0:g}"
            state = "" if r.ok else "  " + r.status
            again = "  (done before)" if r.skipped else ""
            print(f"  {r.student:<{width}}  {points} points{state}{again}")
            before = totals.get(r.student, 0.0)
            totals[r.student] = None if r.points is None or before is None else before + r.points
    gradebook.update_gradebook(out_dir / "gradebook.csv", name, totals)
    print(
        f"pages: {course.folder('feedback')}/STUDENT/{name}/ (hand them back with "
        f"nbgrader release_feedback {name}); summary and gradebook: {out_dir}"
    )
    if batching:
        print(batches.summary())
    if scored == 0:
        return fail("feedback", "no notebook could be scored (see the rows above)", EXIT_FAILED)
    return 0
