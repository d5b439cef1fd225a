"""Text cut to fit one line of a table, a message or a progress bar (one owner for every layer)."""

from __future__ import annotations


def first_line(text: str, width: int = 120) -> str:
    """The first non-blank line, stripped and cut at `width` characters ("" when blank)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return one_line(lines[0], width) if lines else ""


def one_line(text: str, width: int = 88) -> str:
    """`text` with its whitespace folded into single spaces, cut at `width` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
