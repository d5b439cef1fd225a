"""The classroom: the teacher's tests or rubric over submitted notebooks (`tg-magic feedback`).

    submissions    find the notebooks (flat, or nbgrader's layout), name the students, find
                   the answer cell
    teacher_tests  hidden tests and points in the teacher's tests file
    scoring        one answer against the tests (sandboxed) or the rubric
    hinting        the hint, through both leak layers
    grading        one notebook: score, hint, feedback copy; the class, a few at once
    results        one student's result and its file
    summary        summary.csv and summary.html
    gradebook      the CSV an LMS imports
    nbgrader       an nbgrader course: its config, source/ tests, submitted/ answers
    nbgrader_feedback  pages in nbgrader's feedback/ folder, for `nbgrader release_feedback`
    service, auth, records, teacher_page, class_folder: `tg-magic serve`
    roster, hub_api, hub_oauth: who is in the class, and the teacher's login, under JupyterHub
    private        the class folder stays the service's own (modes, checks, --key-file)
    client         the student's side of the service (%tghint)

This package sits with the command line above the library (it reads and writes notebooks with
nbformat); the library itself knows nothing of notebooks.
"""

from __future__ import annotations

from ..objectives import rubric_score
from .grading import FEEDBACK_TAG, feedback_markdown, process
from .hinting import ALL_PASS
from .lanes import run
from .results import Result
from .scoring import Assignment
from .submissions import discover, find_answer, find_submissions, student_names
from .summary import summary_counts, summary_rows, test_columns, write_csv, write_html

__all__ = [
    "ALL_PASS",
    "FEEDBACK_TAG",
    "Assignment",
    "Result",
    "discover",
    "feedback_markdown",
    "find_answer",
    "find_submissions",
    "process",
    "rubric_score",
    "run",
    "student_names",
    "summary_counts",
    "summary_rows",
    "test_columns",
    "write_csv",
    "write_html",
]
