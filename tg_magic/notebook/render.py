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


def latest_gradient(session: Session, name: str) -> str:
    """The variable's gradient now, else the last one stored (e.g. before a kernel restart)."""
    var: CellVariable | None = session.variables.get(name)
    text = var.variable.get_gradient_text() if var else ""
    if not text:
        with_gradients = [e for e in session.history.entries(name) if e.gradients]
        text = "\n\n".join(with_gradients[-1].gradients) if with_gradients else ""
    return text


def graph_markdown(session: Session) -> str:
    rows = ["| variable | → loss | latest gradient |", "|---|---|---|"]
    for loss in session.losses.values():
        grad = " ".join(latest_gradient(session, loss.target).split())[:200] or "–"
        rows.append(f"| `{loss.target}` | `{loss.name}` ({loss.mode}) | {grad} |")
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
            f"{html.escape(loss.target)}</title>"
            f'<rect x="{right}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="{box_h / 2}" '
            f'fill="rgba(255, 152, 0, 0.12)" stroke="var(--jp-warn-color1, #f57c00)"/>'
            f'<text x="{right + box_w / 2}" y="{y + 19:.0f}" text-anchor="middle" '
            f'font-weight="bold" fill="{ink}">{html.escape(loss.name)}</text>'
            f'<text x="{right + box_w / 2}" y="{y + 36:.0f}" text-anchor="middle" '
            f'font-size="11" font-style="italic" fill="{muted}">{loss.mode}</text></g>'
        )
        if loss.target not in where:
            continue
        y1, y2 = where[loss.target], y + box_h / 2
        x1, x2 = left + box_w, right
        mid = (x1 + x2) / 2
        path = f"M{x1},{y1:.0f} C{mid},{y1:.0f} {mid},{y2:.0f} {x2 - 6},{y2:.0f}"
        gradient = latest_gradient(session, loss.target)
        tip = (
            f"{loss.target} → {loss.name}: latest gradient\n\n{gradient[:1500]}"
            if gradient
            else f"{loss.target} → {loss.name}: no gradient yet (run %tgbackward)"
        )
        edges.append(
            f'<g class="tg-magic-edge"><title>{html.escape(tip)}</title>'
            f'<path d="{path}" fill="none" stroke="{muted}" stroke-width="2" '
            f'marker-end="url(#tg-arrow)"/>'
            f'<path d="{path}" fill="none" stroke="transparent" stroke-width="14"/></g>'
        )
    svg = (
        f'<svg class="tg-magic-graph" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="var(--jp-ui-font-family, sans-serif)" font-size="13">'
        f'<defs><marker id="tg-arrow" viewBox="0 0 10 10" refX="4" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{muted}"/></marker>'
        f"</defs>{''.join(edges)}{''.join(shapes)}</svg>"
    )
    table = "".join(
        f"<tr><td><code>{html.escape(loss.target)}</code></td><td><code>"
        f"{html.escape(loss.name)}</code> ({loss.mode})</td><td>"
        f"{html.escape(' '.join(latest_gradient(session, loss.target).split())[:300]) or '–'}"
        "</td></tr>"
        for loss in losses
    )
    return (
        f'<div>{svg}<div style="color: {muted}; font-size: 12px">hover an arrow for the '
        "latest gradient it carried</div>"
        f"<table><tr><th>variable</th><th>→ loss</th><th>latest gradient</th></tr>{table}"
        "</table></div>"
    )


# -- HTML for the widgets: diffs (side by side and unified), folded, highlighted ---------------

CONTEXT = 3  # unchanged lines kept around each change; longer stretches are folded

_MONO = (
    "font-family: var(--jp-code-font-family, monospace); "
    "font-size: var(--jp-code-font-size, 13px); line-height: 1.4"
)
_BG = {
    "delete": "background: rgba(255, 80, 80, 0.18)",
    "insert": "background: rgba(40, 180, 70, 0.20)",
    "fold": "background: rgba(128, 128, 128, 0.10); color: var(--jp-ui-font-color2, #777)",
}
_CELL = "padding: 0 6px; vertical-align: top; white-space: pre-wrap; overflow-wrap: anywhere"
_NUM = (
    "padding: 0 6px; vertical-align: top; text-align: right; user-select: none; "
    "color: var(--jp-ui-font-color3, #999); width: 1%; white-space: nowrap"
)


def text_lines(text: str) -> list[str]:
    """Lines as the diff and the highlighter both count them."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _token_style(ttype: object) -> str:
    from pygments import token as t

    # JupyterLab's editor colours (so dark themes work), with light-theme fallbacks elsewhere.
    table: list[tuple[object, str, str, str]] = [
        (t.Comment, "comment", "#408080", "font-style: italic"),
        (t.String, "string", "#ba2121", ""),
        (t.Number, "number", "#008800", ""),
        (t.Operator.Word, "keyword", "#008000", "font-weight: bold"),
        (t.Keyword, "keyword", "#008000", "font-weight: bold"),
        (t.Name.Builtin, "builtin", "#008000", ""),
        (t.Name.Decorator, "meta", "#aa22ff", ""),
        (t.Name.Function, "def", "#0000ff", ""),
        (t.Name.Class, "def", "#0000ff", "font-weight: bold"),
        (t.Operator, "operator", "#aa22ff", ""),
    ]
    for kind, var, fallback, extra in table:
        if ttype in kind:  # type: ignore[operator]
            return f"color: var(--jp-mirror-editor-{var}-color, {fallback}); {extra}".strip()
    return ""


def highlight_lines(text: str, kind: str) -> list[str]:
    """The text as HTML, one string per line of `text_lines(text)`; Python is highlighted."""
    lines = text_lines(text)
    if kind != "code":
        return [html.escape(line) for line in lines]
    try:
        from pygments.lexers import PythonLexer
    except ImportError:  # pragma: no cover - pygments comes with IPython
        return [html.escape(line) for line in lines]
    out: list[str] = [""]
    lexer = PythonLexer(stripnl=False, ensurenl=False)
    for ttype, value in lexer.get_tokens("\n".join(lines)):
        style = _token_style(ttype)
        for i, piece in enumerate(value.split("\n")):
            if i:
                out.append("")
            if piece:
                escaped = html.escape(piece)
                out[-1] += f'<span style="{style}">{escaped}</span>' if style else escaped
    out += [""] * (len(lines) - len(out))
    return out[: len(lines)]


def _fold_text(n: int) -> str:
    return f"… {n} unchanged line{'s' if n != 1 else ''}"


def diff_rows(before: str, after: str, context: int = CONTEXT) -> list[tuple[str, int, int]]:
    """Rows of a diff as (tag, index in before, index in after), tag one of equal, delete,
    insert, replace (a changed line on both sides) or fold (then the indices are the start and
    the number of unchanged lines left out). Empty when the texts are equal."""
    a, b = text_lines(before), text_lines(after)
    if a == b:
        return []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    rows: list[tuple[str, int, int]] = []
    shown_to = 0  # lines of `before` accounted for so far
    for group in matcher.get_grouped_opcodes(context):
        start = group[0][1]
        if start > shown_to:
            rows.append(("fold", shown_to, start - shown_to))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [("equal", i1 + k, j1 + k) for k in range(i2 - i1)]
            elif tag == "delete":
                rows += [("delete", i, -1) for i in range(i1, i2)]
            elif tag == "insert":
                rows += [("insert", -1, j) for j in range(j1, j2)]
            else:
                for k in range(max(i2 - i1, j2 - j1)):
                    i = i1 + k if i1 + k < i2 else -1
                    j = j1 + k if j1 + k < j2 else -1
                    rows.append(
                        ("replace" if i >= 0 and j >= 0 else "delete" if i >= 0 else "insert", i, j)
                    )
        shown_to = group[-1][2]
    if shown_to < len(a):
        rows.append(("fold", shown_to, len(a) - shown_to))
    return rows


def _td(content: str, style: str) -> str:
    return f'<td style="{style}">{content}</td>'


def diff_html(before: str, after: str, *, kind: str = "text", mode: str = "side") -> str:
    """The diff as an HTML table (inline styles only): `mode` is "side" (side by side) or
    "unified"; unchanged stretches longer than the context are folded into one marker row."""
    rows = diff_rows(before, after)
    if not rows:
        return f'<div style="{_MONO}; padding: 4px">(no change)</div>'
    left, right = highlight_lines(before, kind), highlight_lines(after, kind)
    out = []
    for tag, i, j in rows:
        if tag == "fold":
            out.append(
                f'<tr style="{_BG["fold"]}"><td colspan="4" style="{_CELL}; '
                f'font-style: italic">{_fold_text(j)}</td></tr>'
            )
            continue
        if mode == "side":
            lstyle = _BG["delete"] if tag in ("delete", "replace") else ""
            rstyle = _BG["insert"] if tag in ("insert", "replace") else ""
            out.append(
                "<tr>"
                + _td(str(i + 1) if i >= 0 else "", f"{_NUM}; {lstyle}")
                + _td(left[i] if i >= 0 else "", f"{_CELL}; width: 50%; {lstyle}")
                + _td(str(j + 1) if j >= 0 else "", f"{_NUM}; {rstyle}")
                + _td(right[j] if j >= 0 else "", f"{_CELL}; width: 50%; {rstyle}")
                + "</tr>"
            )
            continue
        lines = []
        if tag == "equal":
            lines.append(("", i, j, " ", left[i]))
        if tag in ("delete", "replace"):
            lines.append((_BG["delete"], i, -1, "-", left[i]))
        if tag in ("insert", "replace"):
            lines.append((_BG["insert"], -1, j, "+", right[j]))
        for style, li, rj, sign, code in lines:
            out.append(
                f'<tr style="{style}">'
                + _td(str(li + 1) if li >= 0 else "", _NUM)
                + _td(str(rj + 1) if rj >= 0 else "", _NUM)
                + _td(sign, _NUM)
                + _td(code, _CELL)
                + "</tr>"
            )
    table_style = f"border-collapse: collapse; width: 100%; table-layout: auto; {_MONO}"
    return f'<table class="tg-magic-diff-{mode}" style="{table_style}">{"".join(out)}</table>'


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
