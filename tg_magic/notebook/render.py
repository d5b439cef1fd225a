"""What the magics show: gradients as Markdown, diffs, history tables and the graph (as text
that any frontend displays; the widgets build on the same pieces)."""

from __future__ import annotations

import difflib
import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..train import StepResult
    from .history import Entry
    from .session import CellVariable, Session


def gradients_markdown(name: str, texts: list[str]) -> str:
    if not texts:
        return f"**{name}**: no gradient yet (run `%tgbackward`)"
    items = "\n\n".join(f"{i}. {t.strip()}" for i, t in enumerate(texts, 1))
    return f"### Textual gradient of `{name}`\n\n{items}"


def unified_diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(),
        after.splitlines(),
        f"{name} (cell)",
        f"{name} (candidate)",
        lineterm="",
    )
    return "\n".join(lines) or "(no change)"


def diff_markdown(name: str, before: str, after: str) -> str:
    return f"```diff\n{unified_diff(before, after, name)}\n```"


def score_text(score: float | None) -> str:
    return "–" if score is None else f"{score:.3f}"


def progress_text(result: StepResult, steps: int) -> str:
    gate = "kept" if result.kept else "not kept (validation dropped)"
    val = (
        f", validation {score_text(result.val_before)} → {score_text(result.val_after)}"
        if result.val_after is not None
        else ""
    )
    return (
        f"step {result.step}/{steps}: score {score_text(result.score)}{val}, {gate}; {result.usage}"
    )


def history_html(name: str, entries: list[Entry]) -> str:
    rows = []
    for e in entries:
        first = html.escape(e.value.strip().splitlines()[0][:80] if e.value.strip() else "")
        rows.append(
            f"<tr><td>{e.n}</td><td>{e.status}</td><td>{score_text(e.score)}</td>"
            f"<td>{score_text(e.val_score)}</td><td>{len(e.gradients)}</td>"
            f"<td>{html.escape(e.usage)}</td><td><code>{first}</code></td></tr>"
        )
    head = (
        "<tr><th>#</th><th>status</th><th>score</th><th>validation</th><th>gradients</th>"
        "<th>usage</th><th>value (first line)</th></tr>"
    )
    return (
        f"<b>History of {html.escape(name)}</b> (accept one with <code>%tgaccept {name} N</code>)"
        f"<table>{head}{''.join(rows)}</table>"
    )


def history_text(name: str, entries: list[Entry]) -> str:
    lines = [f"History of {name}:"]
    for e in entries:
        first = e.value.strip().splitlines()[0][:60] if e.value.strip() else ""
        lines.append(
            f"  {e.n:>3} {e.status:<9} score {score_text(e.score):>6} "
            f"val {score_text(e.val_score):>6}  {first}"
        )
    return "\n".join(lines)


def graph_mermaid(session: Session) -> str:
    """The notebook's graph: variables feed losses; edges carry the latest gradient."""
    lines = ["flowchart LR"]
    for v in session.variables.values():
        lines.append(f'  {v.name}["{v.name}<br/><i>{v.kind}</i>"]')
    for loss in session.losses.values():
        lines.append(f'  {loss.name}(["{loss.name}<br/><i>{loss.mode}</i>"])')
        lines.append(f"  {loss.target} --> {loss.name}")
    return "\n".join(lines)


def graph_markdown(session: Session) -> str:
    rows = ["| variable | → loss | latest gradient |", "|---|---|---|"]
    for loss in session.losses.values():
        var: CellVariable | None = session.variables.get(loss.target)
        grad = var.variable.get_gradient_text() if var else ""
        grad = " ".join(grad.split())[:200] or "–"
        rows.append(f"| `{loss.target}` | `{loss.name}` ({loss.mode}) | {grad} |")
    return f"```mermaid\n{graph_mermaid(session)}\n```\n\n" + "\n".join(rows)
