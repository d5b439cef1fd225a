"""The classroom: the teacher's tests or rubric over submitted notebooks (`tg-magic feedback`).

    submissions  find the notebooks, name the students, find the answer cell
    grading      score one notebook, write its hint and feedback copy; the class, a few at once
    results      one student's result and its file
    summary      summary.csv and summary.html

This package sits with the command line above the library (it reads and writes notebooks with
nbformat); the library itself knows nothing of notebooks.
"""

from __future__ import annotations

from .grading import (
    ALL_PASS,
    FEEDBACK_TAG,
    Assignment,
    feedback_markdown,
    process,
    rubric_score,
    run,
)
from .results import Result
from .submissions import find_answer, find_submissions, student_names
from .summary import summary_rows, test_columns, write_csv, write_html

__all__ = [
    "ALL_PASS",
    "FEEDBACK_TAG",
    "Assignment",
    "Result",
    "feedback_markdown",
    "find_answer",
    "find_submissions",
    "process",
    "rubric_score",
    "run",
    "student_names",
    "summary_rows",
    "test_columns",
    "write_csv",
    "write_html",
]
