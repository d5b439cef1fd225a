"""What the magics show: gradients as Markdown, diffs, history tables and the graph (as text
that any frontend displays; the widgets build on the same pieces)."""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import scores
from .edits import first_line

if TYPE_CHECKING:
    from ..sandbox import TestReport
    from ..train import StepResult
    from .history import Entry
    from .session import Session


def gradients_markdown(name: str, texts: list[str]) -> str:
    if not texts:
        return f"**{name}**: no gradient yet (run `%tgbackward`)"
    items = "\n\n".join(f"{i}. {t.strip()}" for i, t in enumerate(texts, 1))
    return f"### Textual gradient of `{name}`\n\n{items}"


def unified_diff(
    before: str, after: str, name: str, labels: tuple[str, str] = ("cell", "candidate")
) -> str:
    lines = difflib.unified_diff(
        before.splitlines(),
        after.splitlines(),
        f"{name} ({labels[0]})",
        f"{name} ({labels[1]})",
        lineterm="",
    )
    return "\n".join(lines) or "(no change)"


def diff_markdown(name: str, before: str, after: str) -> str:
    return f"```diff\n{unified_diff(before, after, name)}\n```"


def score_text(score: float | None) -> str:
    return "–" if score is None else f"{score:.3f}"


def progress_text(result: StepResult, steps: int, changed: list[str] | None = None) -> str:
    """One step in one line; `changed`: the variables it changed, when the run trains several."""
    gate = "kept" if result.kept else "not kept (validation dropped)"
    val = (
        f", validation {score_text(result.val_before)} → {score_text(result.val_after)}"
        if result.val_after is not None
        else ""
    )
    failed = f" ({'; '.join(result.failures)})" if result.failures else ""
    moved = "" if changed is None else f"; changed: {', '.join(changed) or 'nothing'}"
    return (
        f"step {result.step}/{steps}: score {score_text(result.score)}{val}, {gate}{moved}; "
        f"{result.usage}{failed}"
    )


@dataclass(frozen=True)
class HistoryRow:
    """One iteration as %tghistory shows it."""

    entry: Entry
    in_cell: bool  # the cell holds this iteration now
    tests: str  # "2 of 3 tests pass" ("" when unknown)
    failures: list[str]  # "✗ name: first line" for each failed test


def history_rows(session: Session, name: str) -> list[HistoryRow]:
    entries = session.history.entries(name)
    here = session.edits.in_cell(name) if name in session.variables else None
    rows = []
    for e in entries:
        report = session.test_report(name, e.value) if name in session.variables else None
        failed = [line for line in scores.outcome_lines(report) if line.startswith("✗")]
        rows.append(
            HistoryRow(e, here is not None and e.n == here.n, scores.summary(report), failed)
        )
    return rows


_LEFT = ' style="text-align: left; vertical-align: top"'


def _table(head: list[str], rows: list[list[str]]) -> str:
    """An HTML table, every cell left-aligned (JupyterLab right-aligns them by default)."""
    th = "".join(f"<th{_LEFT}>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{_LEFT}>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def history_html(name: str, rows: list[HistoryRow]) -> str:
    cells = []
    for r in rows:
        e = r.entry
        tests = html.escape(r.tests) + "".join(f"<br>{html.escape(f)}" for f in r.failures)
        cells.append(
            [
                f"{e.n}" + (" ◀ in the cell" if r.in_cell else ""),
                "–" if e.step is None else str(e.step),
                e.status,
                score_text(e.score),
                score_text(e.val_score),
                tests or "–",
                html.escape(e.usage),
                f"<code>{html.escape(first_line(e.value, 80))}</code>",
            ]
        )
    head = ["#", "step", "status", "score before", "score after", "tests", "usage", "first line"]
    return (
        f"<b>History of {html.escape(name)}</b> (accept one with <code>%tgaccept {name} N</code>)"
        + _table(head, cells)
    )


def history_text(name: str, rows: list[HistoryRow]) -> str:
    lines = [f"History of {name} (score before → score after each step):"]
    for r in rows:
        e = r.entry
        mark = "◀ in the cell" if r.in_cell else ""
        step = f"step {e.step}" if e.step is not None else ""
        lines.append(
            f"  {e.n:<3} {step:<7} {e.status:<11} score before {score_text(e.score):<6} "
            f"score after {score_text(e.val_score):<6} {r.tests:<18} {first_line(e.value)} {mark}"
        )
        lines += [f"        {f}" for f in r.failures]
        lines += [f"        usage: {e.usage}"] if e.usage else []
    return "\n".join(line.rstrip() for line in lines)


def tests_text(report: TestReport | None) -> str:
    """The tests one a line, with the first line of each failure ("" when none ran)."""
    head = scores.summary(report)
    return (
        "\n".join([f"tests: {head}", *(f"  {x}" for x in scores.outcome_lines(report))])
        if head
        else ""
    )


def tests_markdown(name: str, report: TestReport | None) -> str:
    head = scores.summary(report)
    items = "\n".join(
        f"- {'✓' if t.passed else '✗'} `{t.name}`" + (f": {md_escape(t.why)}" if t.why else "")
        for t in scores.outcomes(report)
    )
    return f"**tests of `{name}`**: {head}\n\n{items}" if head else ""


def tests_html(report: TestReport | None) -> str:
    head = scores.summary(report)
    if not head:
        return ""
    items = "".join(
        f'<li style="color: {_PASS if t.passed else _FAIL}">{"✓" if t.passed else "✗"} '
        f"<code>{html.escape(t.name)}</code>{': ' + html.escape(t.why) if t.why else ''}</li>"
        for t in scores.outcomes(report)
    )
    return (
        f'<div class="tg-magic-tests">tests: <b>{html.escape(head)}</b>'
        f'<ul style="margin: 2px 0; padding-left: 18px; list-style: none">{items}</ul></div>'
    )


_PASS = "var(--jp-success-color1, #388e3c)"
_FAIL = "var(--jp-error-color1, #d32f2f)"


def md_escape(text: str) -> str:
    return text.replace("`", "\\`").replace("*", "\\*").replace("_", "\\_")


def final_score(results: list[StepResult]) -> str:
    """`; score 0.000 → 1.000` over a whole run ("" when no step scored)."""
    if not results:
        return ""
    first, last = results[0], results[-1]
    start = first.val_before if first.val_before is not None else first.score
    # A last step the validation gate undid left the values it found: their score stands.
    kept = last.val_after if last.kept else last.val_before
    end = kept if kept is not None else last.score
    return f"; score {score_change(start, end)}" if end is not None else ""


def engine_spec(setting: str) -> str:
    """The engine a setting names, as a spec; the default says which engine it is."""
    from ..config import settings
    from ..engines import default_spec

    value = getattr(settings, setting)
    if value:
        return str(getattr(value, "spec", value))
    if setting == "backward_engine":
        return f"(the engine: {engine_spec('engine').removeprefix('(default: ').rstrip(')')})"
    return f"(default: {default_spec()})"


def engines_text() -> str:
    return f"engine {engine_spec('engine')}, backward {engine_spec('backward_engine')}"


def containment_line() -> str:
    """What a %%tgloss --tests cell says about where the tests run, in one line; without the
    sandbox and without consent, how to get one or the other."""
    from .. import sandbox
    from ..config import settings

    if sandbox.available() or settings.allow_unsandboxed:
        return f"tests run in a child process; {sandbox.containment(settings.allow_unsandboxed)}"
    from ..config import RUN_UNSANDBOXED

    if RUN_UNSANDBOXED is False:
        return (
            "the tests will not run: bubblewrap is missing here (install it with apt-get "
            "install bubblewrap), and only the person running this notebook can allow running "
            "them without it: tg-magic run --allow-unsandboxed"
        )
    return (
        "the tests will not run until you choose: bubblewrap is missing here (install it with "
        "apt-get install bubblewrap), or run them without the sandbox with "
        "%tgconfig --allow-unsandboxed on"
    )


def score_change(before: float | None, after: float | None) -> str:
    return f"{score_text(before)} → {score_text(after)}"


def score_curve_svg(points: list[float], *, width: int = 300, height: int = 80) -> str:
    """A small line chart of scores over steps: an inline SVG polyline, one point per value."""
    if not points:
        return '<i style="color: var(--jp-ui-font-color2, #777)">no score yet</i>'
    left, pad = 40, 8
    low, high = min(0.0, *points), max(1.0, *points)
    span = (high - low) or 1.0
    step = (width - left - pad) / max(len(points) - 1, 1)
    xy = [
        (left + k * step, height - pad - (p - low) / span * (height - 2 * pad))
        for k, p in enumerate(points)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    color = "var(--jp-brand-color1, #1976d2)"
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
        f"<title>step {k}: {score_text(points[k])}</title></circle>"
        for k, (x, y) in enumerate(xy)
    )
    axis = "var(--jp-border-color1, #bbb)"
    label = "var(--jp-ui-font-color2, #777)"
    return (
        f'<svg class="tg-magic-curve" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{left}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="{axis}"/><line x1="{left}" y1="{pad}" x2="{left}" y2="{height - pad}" '
        f'stroke="{axis}"/>'
        f'<text x="{left - 4}" y="{pad + 4}" font-size="10" text-anchor="end" fill="{label}">'
        f"{score_text(high)}</text>"
        f'<text x="{left - 4}" y="{height - pad}" font-size="10" text-anchor="end" '
        f'fill="{label}">{score_text(low)}</text>'
        f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>{dots}</svg>'
    )


def settings_text(session: Session) -> str:
    """What %tgconfig shows: every setting, as the library reads it now."""
    from ..config import settings
    from ..engines import METER, get_cache

    cache = get_cache()
    return "\n".join(
        [
            f"engine:           {engine_spec('engine')}",
            f"backward engine:  {engine_spec('backward_engine')}",
            f"concurrency:      {settings.concurrency}",
            f"max concurrency:  {settings.max_concurrency}",
            f"request timeout:  {_seconds(settings.request_timeout, 'the provider default')}",
            f"idle timeout:     {_seconds(settings.idle_timeout, '30 s (the default)')}",
            f"run deadline:     {_seconds(settings.run_deadline, 'none')}",
            f"budget:           {budget_text(METER.budget_dollars, METER.budget_tokens)}",
            f"cache:            {cache.path if cache is not None else 'off'}",
            f"notebook:         {session.notebook or '(unknown)'}",
            f"history:          {session.history.path}",
            f"feedback-only:    {'on' if settings.feedback_only else 'off'}",
            f"unsandboxed ok:   {'on' if settings.allow_unsandboxed else 'off'}",
            f"usage so far:     {METER.total}",
            *rate_limits_lines(),
        ]
    )


def rate_limits_lines() -> list[str]:
    """Each provider account called so far: its pace in force and the limits last seen."""
    from ..engines import pacing

    lines = [line for pace in pacing.paces() for line in pace.lines()]
    return ["rate limits:      " + (lines[0] if lines else "none seen yet"), *lines[1:]]


def _seconds(value: float | None, unset: str) -> str:
    return unset if value is None else f"{value:g} s"


def budget_text(dollars: float | None, tokens: int | None) -> str:
    parts = ([f"${dollars}"] if dollars is not None else []) + (
        [f"{tokens:,} tokens"] if tokens is not None else []
    )
    return " and ".join(parts) or "none"
