"""The class at a glance: summary.csv and a self-contained summary.html."""

from __future__ import annotations

import csv
import html
import io
import os
from pathlib import Path

from .results import Result, spreadsheet_cell, write_atomic
from .scoring import Assignment


def test_columns(results: list[Result]) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [n for n in r.tests if n not in names]
    return names


def summary_counts(results: list[Result]) -> dict[str, int]:
    """Rows by outcome: ok, timed out, error (they add up to the rows)."""
    timed = sum(1 for r in results if r.status.startswith("timed out"))
    ok = sum(1 for r in results if r.ok)
    return {"ok": ok, "timed out": timed, "error": len(results) - ok - timed}


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def summary_rows(results: list[Result], mode: str) -> tuple[list[str], list[list[str]]]:
    tests = test_columns(results)
    head = ["student", "notebook", "status", "score", "points"]
    if mode == "tests":
        head += ["passed", "total", *tests]
    head += ["hint", "feedback_notebook"]
    rows = []
    for r in results:
        points = "" if r.points is None else f"{r.points:g}"
        row = [r.student, r.notebook, r.status, _score(r.score), points]
        if mode == "tests":
            row += [
                "" if r.passed is None else str(r.passed),
                "" if r.total is None else str(r.total),
            ]
            row += [r.tests.get(t, "") for t in tests]
        row += [r.hint, r.feedback_notebook]
        rows.append(row)
    return head, rows


def write_csv(results: list[Result], mode: str, path: Path) -> None:
    head, rows = summary_rows(results, mode)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(head)
    writer.writerows([spreadsheet_cell(str(c)) for c in row] for row in rows)
    write_atomic(path, buffer.getvalue())


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } p.meta { color: #555; }
table { border-collapse: collapse; margin-top: 1em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pass { background: #e6f4ea; } td.fail { background: #fce8e6; }
td.error { color: #a50e0e; } tr.total td { font-weight: 600; background: #fafafa; }
details summary { cursor: pointer; color: #1a56a8; }
details div { max-width: 40em; white-space: pre-wrap; }
"""


def _relative(target: str, folder: Path) -> str:
    """The link from the summary to a feedback file (beside it, or nbgrader's feedback/)."""
    try:
        return Path(os.path.relpath(target, folder)).as_posix()
    except ValueError:  # another drive
        return Path(target).as_uri()


def write_html(results: list[Result], assignment: Assignment, path: Path) -> None:
    """A self-contained page (inline CSS, nothing external): one row per student, one column
    per test, and how many students passed each test."""
    esc = html.escape
    tests = test_columns(results) if assignment.mode == "tests" else []
    counts = summary_counts(results)
    scores = [r.score for r in results if r.score is not None]
    mean = f"{sum(scores) / len(scores):.2f}" if scores else "–"
    head = ["student", "status", "score"]
    if assignment.mode == "tests":
        head += ["passed", *[f"<code>{esc(t)}</code>" for t in tests]]
    head.append("hint")
    body = []
    for r in results:
        status = "ok" if r.ok else esc(r.status.removeprefix("error: "))
        link = (
            f'<a href="{esc(_relative(r.feedback_notebook, path.parent))}">{esc(r.student)}</a>'
            if r.feedback_notebook
            else esc(r.student)
        )
        cells = [
            f"<td>{link}</td>",
            f'<td class="{"" if r.ok else "error"}">{status}</td>',
            f'<td class="num">{_score(r.score) or "–"}</td>',
        ]
        if assignment.mode == "tests":
            passed = "–" if r.passed is None else f"{r.passed}/{r.total if r.total else 0}"
            cells.append(f'<td class="num">{passed}</td>')
            for t in tests:
                outcome = r.tests.get(t, "")
                cells.append(f'<td class="{outcome}">{outcome or "–"}</td>')
        hint = (
            f"<details><summary>hint</summary><div>{esc(r.hint)}</div></details>" if r.hint else ""
        )
        cells.append(f"<td>{hint}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if tests:
        totals = ['<td colspan="4">passed by</td>']
        for t in tests:
            ran = [r for r in results if t in r.tests]
            passed_by = sum(1 for r in ran if r.tests[t] == "pass")
            totals.append(f'<td class="num">{passed_by}/{len(ran)}</td>')
        totals.append("<td></td>")
        body.append('<tr class="total">' + "".join(totals) + "</tr>")
    title = f"Feedback on {assignment.target}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{esc(title)}</h1>
<p class="meta">{len(results)} notebooks: {counts["ok"]} scored, {counts["timed out"]} timed out,
{counts["error"]} with errors; mean score {mean} over the {len(scores)} rows with a score.
Scored against {esc(assignment.mode)}.</p>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""
    write_atomic(path, page)
