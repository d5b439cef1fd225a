"""The diffs the widgets show: side by side or unified, as HTML tables with inline styles only,
unchanged stretches folded, Python highlighted in JupyterLab's editor colours."""

from __future__ import annotations

import difflib
import html

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
