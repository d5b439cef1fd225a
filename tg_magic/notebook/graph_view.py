"""The notebook's graph as `%tggraph` shows it: variables feed the losses that train them (a
program's loss has several), and each arrow carries the latest gradient it delivered."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from .render import _table

if TYPE_CHECKING:
    from .loss_cells import LossCell
    from .session import CellVariable, Session


def graph_mermaid(session: Session) -> str:
    """The notebook's graph: variables feed losses; edges carry the latest gradient."""
    lines = ["flowchart LR"]
    for v in session.variables.values():
        lines.append(f'  {v.name}["{v.name}<br/><i>{v.kind}</i>"]')
    for loss in session.losses.values():
        lines.append(f'  {loss.name}(["{loss.name}<br/><i>{loss.mode}</i>"])')
        lines += [f"  {target} --> {loss.name}" for target in loss.targets]
    return "\n".join(lines)


def latest_gradient(session: Session, name: str) -> str:
    """The variable's gradient now, else the last one stored (e.g. before a kernel restart)."""
    var: CellVariable | None = session.variables.get(name)
    text = var.variable.get_gradient_text() if var else ""
    if not text:
        with_gradients = [e for e in session.history.entries(name) if e.gradients]
        text = "\n\n".join(with_gradients[-1].gradients) if with_gradients else ""
    return text


def _edges(session: Session) -> list[tuple[LossCell, str]]:
    """(loss, variable it trains): one a variable, a program's loss has several."""
    return [(loss, t) for loss in session.losses.values() for t in loss.targets]


def graph_markdown(session: Session) -> str:
    rows = ["| variable | → loss | latest gradient |", "|---|---|---|"]
    for loss, target in _edges(session):
        grad = " ".join(latest_gradient(session, target).split())[:200] or "–"
        rows.append(f"| `{target}` | `{loss.name}` ({loss.mode}) | {grad} |")
    return f"```mermaid\n{graph_mermaid(session)}\n```\n\n" + "\n".join(rows)


def graph_html(session: Session) -> str:
    """The graph as inline SVG (variables left, losses right): hovering an edge shows the latest
    gradient it carried, hovering a node its role; the same table as the Markdown follows."""
    variables, losses = list(session.variables.values()), list(session.losses.values())
    box_w, box_h, gap, left, right = 170, 46, 18, 10, 330
    rows = max(len(variables), len(losses), 1)
    height = rows * (box_h + gap) + gap
    width = right + box_w + 10
    ink, muted = "var(--jp-ui-font-color1, #222)", "var(--jp-ui-font-color2, #666)"
    accent = "var(--jp-brand-color1, #1976d2)"

    def top(i: int, count: int) -> float:
        offset = (height - count * (box_h + gap) + gap) / 2
        return offset + i * (box_h + gap)

    where: dict[str, float] = {}
    shapes: list[str] = []
    for i, v in enumerate(variables):
        y = top(i, len(variables))
        where[v.name] = y + box_h / 2
        shapes.append(
            f"<g><title>{html.escape(v.name)}: {html.escape(v.variable.role_description)} "
            f"({v.kind})</title>"
            f'<rect x="{left}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="4" '
            f'fill="rgba(25, 118, 210, 0.10)" stroke="{accent}"/>'
            f'<text x="{left + box_w / 2}" y="{y + 19:.0f}" text-anchor="middle" '
            f'font-weight="bold" fill="{ink}">{html.escape(v.name)}</text>'
            f'<text x="{left + box_w / 2}" y="{y + 36:.0f}" text-anchor="middle" '
            f'font-size="11" font-style="italic" fill="{muted}">{v.kind}</text></g>'
        )
    edges: list[str] = []
    for i, loss in enumerate(losses):
        y = top(i, len(losses))
        shapes.append(
            f"<g><title>{html.escape(loss.name)}: {loss.mode} loss on "
            f"{html.escape(', '.join(loss.targets))}</title>"
            f'<rect x="{right}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="{box_h / 2}" '
            f'fill="rgba(255, 152, 0, 0.12)" stroke="var(--jp-warn-color1, #f57c00)"/>'
            f'<text x="{right + box_w / 2}" y="{y + 19:.0f}" text-anchor="middle" '
            f'font-weight="bold" fill="{ink}">{html.escape(loss.name)}</text>'
            f'<text x="{right + box_w / 2}" y="{y + 36:.0f}" text-anchor="middle" '
            f'font-size="11" font-style="italic" fill="{muted}">{loss.mode}</text></g>'
        )
        for target in [t for t in loss.targets if t in where]:
            y1, y2 = where[target], y + box_h / 2
            edges.append(_edge(session, loss.name, target, (left + box_w, y1, right, y2), muted))
    svg = (
        f'<svg class="tg-magic-graph" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="var(--jp-ui-font-family, sans-serif)" font-size="13">'
        f'<defs><marker id="tg-arrow" viewBox="0 0 10 10" refX="4" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{muted}"/></marker>'
        f"</defs>{''.join(edges)}{''.join(shapes)}</svg>"
    )
    table = [
        [
            f"<code>{html.escape(target)}</code>",
            f"<code>{html.escape(loss.name)}</code> ({loss.mode})",
            html.escape(" ".join(latest_gradient(session, target).split())[:300]) or "–",
        ]
        for loss, target in _edges(session)
    ]
    return (
        f'<div>{svg}<div style="color: {muted}; font-size: 12px">hover an arrow for the '
        "latest gradient it carried</div>"
        + _table(["variable", "→ loss", "latest gradient"], table)
        + "</div>"
    )


def _edge(
    session: Session, loss: str, target: str, ends: tuple[float, float, float, float], muted: str
) -> str:
    """An arrow from a variable to a loss; hovering it shows the latest gradient it carried."""
    x1, y1, x2, y2 = ends
    mid = (x1 + x2) / 2
    path = f"M{x1},{y1:.0f} C{mid},{y1:.0f} {mid},{y2:.0f} {x2 - 6},{y2:.0f}"
    gradient = latest_gradient(session, target)
    tip = (
        f"{target} → {loss}: latest gradient\n\n{gradient[:1500]}"
        if gradient
        else f"{target} → {loss}: no gradient yet (run %tgbackward)"
    )
    return (
        f'<g class="tg-magic-edge"><title>{html.escape(tip)}</title>'
        f'<path d="{path}" fill="none" stroke="{muted}" stroke-width="2" '
        f'marker-end="url(#tg-arrow)"/>'
        f'<path d="{path}" fill="none" stroke="transparent" stroke-width="14"/></g>'
    )
