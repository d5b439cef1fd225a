"""Hints without solutions: a textual gradient, filtered before a learner sees it.

In feedback-only (classroom) mode the gradient model is told to point at what is wrong and why
without writing the fix (prompts.HINT_RULE). Models do not always comply, so every hint also
passes `filter_hint`, which takes out what would hand the learner the answer:

- fenced code blocks (```` ``` ```` or ``~~~``) and indented code blocks;
- lines that are code (`def ...:`, `return ...`, assignments, calls...: anything Python parses
  that is not a plain word or number), and the "here is the corrected code:" line before them;
- inline code (`` `...` `` or a `return ...` / `def ...(` fragment in a sentence) that is new,
  i.e. not a name and not quoted from the learner's own cell or the tests;
- paragraphs with a long verbatim run of the learner's cell (a rewritten version of it), or of a
  secret text (the teacher's reference solution, hidden tests);
- code wearing a disguise: behind `#`/`//` comment marks, `>>>` prompts or diff `+`/`-` marks,
  in Markdown table cells, after "just use"/"call"/"write" in a sentence, and code in other
  languages (braces, semicolons, `=>`, Ruby's `def ... end`, lines denser in symbols than words).

Each removal leaves a short note, so the learner knows something was held back. The core knows
nothing of notebooks: the magics' `%tggrad` and the `tg-magic feedback` command both use this.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable

from . import prompts, pysource

__all__ = ["REMOVED_NOTE", "filter_hint", "hint_markdown", "looks_like_code"]

REMOVED_NOTE = "(a code suggestion was removed: hints point at the problem, not the solution)"
INLINE_NOTE = "(…)"

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_INLINE_SPAN = re.compile(r"(`+)(.+?)\1")
_TAGGED = re.compile(rf"{re.escape(prompts.OPEN)}.*?(?:{re.escape(prompts.CLOSE)}|$)", re.DOTALL)
_TOKEN = re.compile(r"\w+|[^\w\s]")
# A fragment of code inside a sentence: `... change it to return x + 1.`, `def f(a): ...`.
_PROSE_CODE = re.compile(
    r"\b(?:return|yield|lambda|def|use|using|call|write|try|replace \S+ with|change \S+ to)\s"
    r"(?:[^.;!?\n]|[.;](?=[\w(\[\d]))+",
    re.IGNORECASE,
)
# Marks in front of code that hide it from a parser: comments, prompts, diff lines.
_CODE_MARK = re.compile(r"^\s*(?:#+|//+|>>>|\.\.\.|[+-](?![+-]))\s?")
_DIFF_HEADER = re.compile(r"^(?:---|\+\+\+) \S|^@@ .*@@")
# Code in other languages: a statement ending in ; or {, a lone closing brace or `end`, arrows,
# declarations, Ruby's `def name(args)` without a colon.
_FOREIGN = re.compile(
    r"[;{]\s*$|^\s*[}\])]+;?\s*$|^\s*end\s*$|=>|===|!==|&&|\|\||"
    r"^\s*(?:function|const|let|var|public|private|static|int|double|float|void|fn|func)\s+\w|"
    r"^\s*def\s+\w+(?:\(.*\))?\s*$|\w\s*\{[^}]*;"
)
_SYMBOLS = re.compile(r"[()\[\]{}=<>+*/%;&|!?]")
# A line that announces the code after it ("Here is the corrected function:").
_LEAD_IN = re.compile(
    r"(correct|fix|solution|here is|here's|rewrit|revis|improv|updat|should (?:look|be|read)|"
    r"like this|as follows|for example|e\.g\.|instead)",
    re.IGNORECASE,
)
_COMPOUND = re.compile(
    r"^(?:async\s+)?(?:def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
# Shared runs of this many tokens with the learner's cell mean the text quotes or rewrites it.
OVERLAP_TOKENS = 12


def _parses(source: str) -> ast.Module | None:
    try:
        return pysource.parse(source)
    except (SyntaxError, ValueError):
        return None


def _trivial(tree: ast.Module) -> bool:
    """Parsed, but prose too: a single word, a number, a dotted name ("Yes", "1.", "os.path")."""
    return all(
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Name | ast.Constant | ast.Attribute)
        for node in tree.body
    )


def looks_like_code(text: str) -> bool:
    """Is this line (or inline fragment) Python code rather than words?"""
    line = text.strip().strip("`").strip()
    if not line or line.startswith("#"):  # a Markdown heading, or a bare comment
        return False
    if re.match(r"^@\w[\w.]*(\(.*\))?$", line):  # a decorator
        return True
    tree = _parses(line)
    if tree is not None:
        return bool(tree.body) and not _trivial(tree)
    if _COMPOUND.match(line) and line.rstrip().endswith(":"):
        # A block header parses with a body under it (and, for else/except..., an opener).
        body = line + "\n    pass\n"
        for opener in ("", "if 1:\n    pass\n", "try:\n    pass\n", "for x in y:\n    pass\n"):
            if _parses(opener + body) is not None:
                return True
        if _parses("match x:\n    " + line + "\n        pass\n") is not None:
            return True
    # A line cut from a longer statement: `return (a +`, `total = sum(`.
    return bool(
        re.match(r"^(?:return|yield|raise|assert|import|from\s+\S+\s+import)\b\s*\S", line)
        and not re.match(r"^\w+\s+(?:the|a|an|this|that|it|its|to|of)\b", line, re.IGNORECASE)
    ) or bool(re.match(r"^[A-Za-z_][\w.\[\]]*\s*(?:[-+*/%@&|^]|//|\*\*)?=\s*[\w(\[{'\"-]", line))


def _dense(text: str) -> bool:
    """More code symbols than words: `s.length.odd? ? s[m] : (s[m - 1] + s[m]) / 2.0`."""
    symbols = len(_SYMBOLS.findall(text))
    return symbols >= 6 and symbols >= len(re.findall(r"[A-Za-z]{2,}", text))


def code_line(line: str) -> bool:
    """Is this line code in any language or disguise (Python, a comment, a prompt, a diff
    line, JavaScript, Ruby, Java...)? Markdown headings and plain sentences are not."""
    content = _LIST_ITEM.sub("", line, count=1) if _LIST_ITEM.match(line) else line
    if looks_like_code(content) or _DIFF_HEADER.match(content):
        return True
    marked = _CODE_MARK.match(content)
    if marked and looks_like_code(content[marked.end() :]):
        return True
    return bool(_FOREIGN.search(content)) or _dense(content)


_OPERATIONS = (ast.Call, ast.Subscript, ast.BinOp, ast.Lambda, ast.comprehension, ast.Dict)


def _code_prefix(fragment: str) -> int | None:
    """Where the code at the start of a sentence fragment ends ("return a + b so that..."), or
    None when it is words ("return the sum", "return a value")."""
    ends = [m.end() for m in re.finditer(r"\S+", fragment)]
    for end in reversed(ends[1:]):
        tree = _parses(fragment[:end])
        if tree is None or len(tree.body) != 1:
            continue
        node = tree.body[0]
        value = getattr(node, "value", None)
        if isinstance(value, ast.Yield | ast.Await):
            value = value.value
        if value is None or not any(isinstance(n, _OPERATIONS) for n in ast.walk(value)):
            return None  # the longest reading that parses is words joined by keywords: prose
        return end
    return None


def _normal(text: str) -> str:
    return " ".join(text.split())


class _Filter:
    def __init__(self, student: str, keep: Iterable[str], secret: Iterable[str]) -> None:
        self.student = student
        self.quoted = _normal("\n".join([student, *keep]))
        self.student_tokens = _TOKEN.findall(student)
        self.secret_tokens = [_TOKEN.findall(text) for text in secret if text.strip()]
        self.removed = False

    # -- inline fragments ----------------------------------------------------------------------
    def _allowed(self, fragment: str) -> bool:
        """A fragment the learner may see: a name, a literal, or a quote of their own cell."""
        text = _normal(fragment)
        if not text:
            return True
        tree = _parses(text)
        if tree is not None and _trivial(tree):
            return True
        return text in self.quoted

    def _span(self, match: re.Match[str]) -> str:
        fragment = match.group(2)
        if self._allowed(fragment) or not looks_like_code(fragment):
            return match.group(0)
        self.removed = True
        return INLINE_NOTE

    def _prose(self, match: re.Match[str]) -> str:
        fragment = match.group(0).rstrip()
        if self._allowed(fragment):
            return match.group(0)
        if re.match(r"def\s+\w+\s*\(", fragment):
            self.removed = True
            return INLINE_NOTE
        verb = re.match(
            r"(?:use|using|call|write|try|replace \S+ with|change \S+ to)\s+", fragment, re.I
        )
        start = verb.end() if verb else 0  # "use EXPR": the expression starts after the verb
        text = match.group(0)
        end = _code_prefix(fragment[start:])
        if end is None or self._allowed(fragment[start : start + end]):
            # no code right after the verb: look further on ("write it as: def f(): ...")
            return text[:start] + _PROSE_CODE.sub(self._prose, text[start:]) if start else text
        self.removed = True
        return text[:start] + INLINE_NOTE + _PROSE_CODE.sub(self._prose, text[start + end :])

    def inline(self, line: str) -> str:
        if line.lstrip().startswith("|") and line.count("|") >= 2:
            return self._table_row(line)
        line = _INLINE_SPAN.sub(self._span, line)
        return _PROSE_CODE.sub(self._prose, line)

    def _table_row(self, line: str) -> str:
        """A Markdown table row: each cell that is code (and not a quote) becomes a note."""
        cells = line.split("|")
        for i, cell in enumerate(cells[1:-1], 1):
            bare = cell.strip().strip("`").strip()
            code = "`" in cell or (code_line(bare) and _SYMBOLS.search(bare) is not None)
            if bare and not self._allowed(bare) and code:
                self.removed = True
                cells[i] = f" {INLINE_NOTE} "
            else:
                cells[i] = self.inline(cell) if "|" not in cell else cell
        return "|".join(cells)

    # -- paragraphs ----------------------------------------------------------------------------
    def rewrites_cell(self, paragraph: str) -> bool:
        """Does the paragraph hold a long verbatim run of the learner's cell, or of a secret
        text that the learner does not already have?"""
        tokens = _TOKEN.findall(paragraph)
        if len(tokens) < OVERLAP_TOKENS:
            return False
        for other in [self.student_tokens, *self.secret_tokens]:
            if not other:
                continue
            matcher = difflib.SequenceMatcher(None, tokens, other, autojunk=False)
            match = matcher.find_longest_match(0, len(tokens), 0, len(other))
            run = " ".join(tokens[match.a : match.a + match.size])
            quoted = other is not self.student_tokens and run in " ".join(self.student_tokens)
            if match.size >= OVERLAP_TOKENS and not quoted:
                return True
        return False


def _announces(line: str) -> bool:
    """A line that only introduces the code after it: "Here is the fix:", "The function is:"."""
    text = line.strip()
    return text.endswith(":") and (bool(_LEAD_IN.search(text)) or len(text.split()) <= 8)


def _blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Split into ("code", lines) and ("text", lines) pieces: fences, indented blocks, code
    lines; a text line in the middle of code lines (a blank) stays with the text."""
    pieces: list[tuple[str, list[str]]] = []
    i = 0
    previous_blank = True
    in_code = False
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            mark = fence.group(1)
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(mark[0] * len(mark)):
                end += 1
            pieces.append(("code", lines[i : end + 1]))
            i, previous_blank, in_code = end + 1, False, True
            continue
        stripped = line.strip()
        indented = line.startswith(("    ", "\t")) and bool(stripped)
        content = _LIST_ITEM.sub("", line, count=1) if _LIST_ITEM.match(line) else line
        table_row = stripped.startswith("|") and stripped.count("|") >= 2  # cells: inline()
        is_code = not table_row and (
            code_line(content) or (in_code and _FOREIGN.search(content) is not None)
        )
        if indented and not _LIST_ITEM.match(line) and (previous_blank or in_code):
            is_code = True
        if is_code:
            pieces.append(("code", [line]))
            in_code = True
        else:
            pieces.append(("text", [line]))
            if stripped:
                in_code = False
        previous_blank = not stripped
        i += 1
    return pieces


def filter_hint(
    text: str, student: str = "", keep: Iterable[str] = (), *, secret: Iterable[str] = ()
) -> str:
    """The hint with code suggestions and rewrites of `student` (the learner's cell) removed.

    `keep`: other texts the learner already has (the tests, the test report), which may be
    quoted in the hint; `secret`: texts it may never quote (a reference solution, hidden tests).
    """
    f = _Filter(student, keep, secret)
    text = _TAGGED.sub("\0", text)
    out: list[str] = []

    def note() -> None:
        f.removed = True
        while out and not out[-1].strip():
            out.pop()
        if out and _announces(out[-1]):
            out.pop()  # "Here is the corrected code:" announces what was removed
        while out and not out[-1].strip():
            out.pop()
        if out and out[-1] == REMOVED_NOTE:
            return
        if out:
            out.append("")
        out.append(REMOVED_NOTE)

    for kind, lines in _blocks(text.splitlines()):
        if kind == "code" or any("\0" in line for line in lines):
            note()
            continue
        line = lines[0]
        if out and out[-1] == REMOVED_NOTE and line.strip():
            out.append("")
        if out and out[-1] == REMOVED_NOTE and not line.strip():
            continue
        out.append(f.inline(line))

    # Paragraphs that quote or rewrite a long stretch of the learner's cell go as a whole.
    paragraphs = "\n".join(out).split("\n\n")
    kept: list[str] = []
    for paragraph in paragraphs:
        if paragraph.strip() != REMOVED_NOTE and f.rewrites_cell(paragraph):
            f.removed = True
            paragraph = REMOVED_NOTE
        if paragraph == REMOVED_NOTE and kept and kept[-1] == REMOVED_NOTE:
            continue
        kept.append(paragraph)
    unique: list[str] = []  # small models repeat themselves
    for paragraph in kept:
        repeated = paragraph in unique and paragraph != REMOVED_NOTE
        double_note = paragraph == REMOVED_NOTE and bool(unique) and unique[-1] == REMOVED_NOTE
        if paragraph.strip() and not repeated and not double_note:
            unique.append(paragraph)
    result = "\n\n".join(unique).strip()
    words = re.findall(r"[A-Za-z]{2,}", result.replace(REMOVED_NOTE, ""))
    if f.removed and len(words) < 4:  # nothing but code was said
        return REMOVED_NOTE
    if f.removed and REMOVED_NOTE not in result:
        result = f"{result}\n\n{REMOVED_NOTE}".strip()
    return result


def hint_markdown(
    name: str, hints: list[str], score: float | None = None, heading: str = "Hint"
) -> str:
    """Hints as Markdown, one numbered paragraph each, after the score when there is one."""
    texts = [h.strip() for h in hints if h.strip()]
    head = f"### {heading} for `{name}`\n\n"
    if score is not None:
        head += f"**Score:** {score:.2f}\n\n"
    if not texts:
        return head + "No hint: there is nothing to point at."
    if len(texts) == 1:
        return head + texts[0]
    return head + "\n\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
