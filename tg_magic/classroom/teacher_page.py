"""The teacher's page (/teacher): per assignment, a row per student with attempts, best score,
hints used and the tests of the best attempt. Self-contained HTML, nothing external."""

from __future__ import annotations

import html

from .records import Standing
from .summary import STYLE


def teacher_page(
    table: dict[str, dict[str, Standing]], assignments: list[str], names: dict[str, str]
) -> str:
    esc = html.escape
    parts = []
    for assignment in assignments:
        rows = {s: r[assignment] for s, r in sorted(table.items()) if assignment in r}
        tests: list[str] = []
        for standing in rows.values():
            tests += [t for t in standing.tests if t not in tests]
        head = ["student", "attempts", "best score", "points", "hints used"]
        head += [f"<code>{esc(t)}</code>" for t in tests]
        body = []
        for student, s in rows.items():
            name = names.get(student, "")
            who = esc(student) + (f" ({esc(name)})" if name and name != student else "")
            score = "–" if s.best_score is None else f"{s.best_score:.2f}"
            points = "–" if s.best_points is None else f"{s.best_points:g}"
            cells = [who, str(s.attempts), score, points, str(s.hints)]
            marks = [("pass" if s.tests[t] else "fail") if t in s.tests else "" for t in tests]
            row = "".join(f"<td>{c}</td>" for c in cells)
            row += "".join(f'<td class="{m}">{m or "–"}</td>' for m in marks)
            body.append(f"<tr>{row}</tr>")
        parts.append(
            f"<h2>{esc(assignment)}</h2><p class=meta>{len(rows)} students asked</p>"
            f"<table><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Class hints</title>'
        f"<style>{STYLE}</style></head><body><h1>Class hints</h1>{''.join(parts)}</body></html>"
    )
