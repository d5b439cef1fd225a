"""Does a hint carry a secret in some disguise? The last check before a hint leaves the
teacher's side (`classroom.hinting`): forms of the hint against every secret text (the
reference solution, each hidden test).

The forms of a hint: as written; URL-decoded; every base64 (standard or URL-safe), base32 and
hex blob decoded, also when split by spaces, glued to a word, cut into pieces with words between
them, or one inside another; the character codes in it read in order (`[100, 101, 102]`,
`chr(100)+chr(101)`, `0x64`, `\\x64`, `\\u0064`, `&#100;`); letters spelled one per word with
the names of spaces and signs dropped (`d e f space m e d i a n`), also with words between their
runs; the first letters of its words and of its lines; and each of these again without the words
the hint repeats most (a template put between pieces: "Step 1 is ZG. Step 2 is Vm."). Each form
is folded (NFKC, case folded, every character but letters and digits dropped), and it carries a
secret when it holds WINDOW folded characters in a row of that secret, read forwards or
backwards, in any Caesar shift (rot13 among them), that are not also in a text the student
already has (their cell, the visible tests, their report): quoting those is allowed.

Apart from the secrets, a hint is not prose, and is withheld, when it holds a token of more than
LONG_RUN characters of the base64/hex alphabet that is not words (`test_list_unchanged` is
words; `ZGVmIG1l...` is not), or more than SPELLED_RUN one-character words in a row. Neither
check can prove a negative: a model that knows a secret can still say it in a way no pattern
finds (pieces with varied words between them, a translation, a paraphrase). What holds by
construction is that no model that is shown a secret writes what a student reads
(`classroom.hinting`).
"""

from __future__ import annotations

import base64
import binascii
import re
import string
import unicodedata
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

__all__ = ["LONG_RUN", "SPELLED_RUN", "WINDOW", "leak"]

WINDOW = 20  # folded characters of a secret in a row that make a leak
SHORTEST = 12  # a secret shorter than this (folded) is not told from prose: not checked
LONG_RUN = 24  # a longer token of the base64/hex alphabet that is not words is not prose
SPELLED_RUN = 12  # more one-character words in a row than this are not prose

# Words a model uses for a space or a sign when it spells text one character per word.
_NAMES = frozenset(
    re.findall(
        r"\w+",
        "space spaces blank newline linebreak line break tab indent colon semicolon comma dot "
        "period point stop open close opening closing left right paren parens parenthesis "
        "bracket brackets brace braces curly square round quote quotes apostrophe double single "
        "equals equal sign plus minus dash hyphen star asterisk times slash backslash percent "
        "underscore hash pound less greater than at caret tilde bar pipe ampersand exclamation "
        "question mark",
    )
)
_FOLD = re.compile(r"[\W_]+")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}")
_BASE32_RUN = re.compile(r"[A-Za-z2-7]{16,}")
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}")
_HEX_SEPARATORS = re.compile(r"0x|\\x|[\s,:;.'\"\[\]()-]", re.IGNORECASE)
_CODE = re.compile(
    r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|&#x([0-9a-fA-F]+);|&#(\d+);|\\([0-7]{3})"
    r"|0x([0-9a-fA-F]+)|(\d+)"
)
_LONG_TOKEN = re.compile(rf"[A-Za-z0-9+/=_-]{{{LONG_RUN + 1},}}")
_ROT = [
    str.maketrans(string.ascii_lowercase, string.ascii_lowercase[k:] + string.ascii_lowercase[:k])
    for k in range(26)
]


def leak(text: str, secrets: Iterable[str], known: Iterable[str] = ()) -> str | None:
    """Why `text` may not be shown (the form a secret is in, or the run that is not prose), or
    None when it may. `known`: texts the student already has, which it may quote."""
    text = _clean(text)
    known = [_clean(k) for k in known]
    why = _not_prose(text, known)
    if why:
        return why
    windows = _secret_windows([_clean(s) for s in secrets], known)
    if not windows:
        return None
    for form, shown in _forms(text):
        folded = _fold(shown)
        for width, grams in windows.items():
            if any(folded[i : i + width] in grams for i in range(len(folded) - width + 1)):
                return f"a secret, {form}"
    return None


def _clean(text: str) -> str:
    """NFKC, without the invisible format characters (zero-width spaces, direction marks)."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def _fold(text: str) -> str:
    return _FOLD.sub("", text.casefold())


def _secret_windows(secrets: list[str], known: list[str]) -> dict[int, set[str]]:
    """Width -> every run of that many folded characters of a secret that the student does not
    already have, in all 26 shifts, forwards and backwards."""
    known_folded = [_fold(k) for k in known]
    seen: dict[int, set[str]] = {}
    windows: dict[int, set[str]] = {}
    for secret in secrets:
        folded = _fold(secret)
        width = min(WINDOW, len(folded))
        if width < SHORTEST:
            continue
        if width not in seen:
            seen[width] = {
                k[i : i + width] for k in known_folded for i in range(len(k) - width + 1)
            }
        own = {folded[i : i + width] for i in range(len(folded) - width + 1)} - seen[width]
        grams = windows.setdefault(width, set())
        for gram in own:
            for table in _ROT:
                shifted = gram.translate(table)
                grams.update((shifted, shifted[::-1]))
    return {width: grams for width, grams in windows.items() if grams}


def _not_prose(text: str, known: list[str]) -> str | None:
    for token in _LONG_TOKEN.findall(text):
        if not _words(token) and not any(token in k for k in known):
            return f"a run that is not prose ({len(token)} characters of base64/hex alphabet)"
    run = 0
    for word in text.split():
        bare = _FOLD.sub("", word)
        run = run + 1 if len(bare) <= 1 or bare.casefold() in _NAMES else 0
        if run > SPELLED_RUN:
            return f"a run that is not prose (more than {SPELLED_RUN} one-character words)"
    return None


def _words(token: str) -> bool:
    """Does a long token read as words: an identifier, a path, a setting (`tg_magic/notebook`,
    `LLMCall_with_in_context_examples`, `TG_MAGIC_ALLOW_UNSANDBOXED=1`)? A blob does not: its
    letters fall into humps of one or two (`ZGVmIG1l`: ZG Vm IG l), digits among them, and
    words have more vowels."""
    humps: list[str] = []
    for part in re.split(r"[+/=_-]+", token):
        if not part or (part.isdigit() and len(part) <= 12):
            continue
        shaped = re.fullmatch(r"([A-Za-z]+)\d{0,3}", part)  # python3, sha256: digits at the end
        if shaped is None:
            return False
        humps += re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", shaped.group(1))
    letters = "".join(humps)
    vowels = len(re.findall(r"[aeiouy]", letters, re.IGNORECASE))
    return (
        all(len(h) <= 20 for h in humps)
        and len(letters) >= 3 * len(humps)
        and vowels >= 0.25 * len(letters)
    )


def _forms(text: str, depth: int = 2) -> Iterator[tuple[str, str]]:
    """(name, text) for each reading of `text`, and of `text` without the words it repeats (a
    template put between pieces: "Step 1 is ZG. Step 2 is Vm."); decoded blobs are read
    again, `depth` deep."""
    yield from _readings(text, depth)
    bare = _without_fillers(text)
    if depth > 1 and bare != text:
        for name, form in _readings(bare, depth - 1):
            yield f"{name}, without the words it repeats", form


def _without_fillers(text: str) -> str:
    """The text without the words it repeats most (of two letters or more, twice or more, and
    at least half as often as its most repeated word), and without the count (1, 2, 3...)
    right after one: what is left of pieces with a template put between them."""
    words = re.findall(r"[\w+/=%-]+", text)
    counts = Counter(w.casefold() for w in words if w.isalpha())
    top = max(counts.values(), default=0)
    kept, count, after_filler = [], 1, False
    for word in words:
        times = counts[word.casefold()] if word.isalpha() and len(word) > 1 else 0
        if (word.islower() or word.istitle()) and times >= 2 and 2 * times >= top:
            after_filler = True
            continue
        if after_filler and word == str(count):
            count += 1
            continue
        after_filler = False
        kept.append(word)
    return " ".join(kept)


def _readings(text: str, depth: int) -> Iterator[tuple[str, str]]:
    yield "as written", text
    spelled = [w for w in text.split() if _FOLD.sub("", w).casefold() not in _NAMES]
    yield "spelled one character per word", " ".join(spelled)
    # the one-character words alone: spelled letters with other words put between their runs
    yield "spelled between other words", "".join(w for w in spelled if len(_fold(w)) == 1)
    yield "as first letters", _initials(text)
    yield "as character codes", _char_codes(text)
    decoded = text
    for _ in range(3):  # %2564 is %64 is d
        once = urllib.parse.unquote_plus(decoded)
        if once == decoded:
            break
        decoded = once
    if decoded != text:
        yield "URL-encoded", decoded
    # blob pieces with words put between them: the pieces alone, glued, and one by one
    pieces = [
        w
        for w in re.findall(r"[\w+/=-]{4,}", decoded)
        if w.isdigit() or w.isupper() or not _words(w)
    ]
    blobs = [*_blobs(decoded), *_blobs(" ".join(pieces)), *_piecewise(pieces)]
    for name, blob in blobs:
        yield name, blob
        if depth > 1 and _readable(blob):
            for inner, again in _forms(blob, depth - 1):
                yield f"{inner} {name}", again


def _initials(text: str) -> str:
    words = "".join(w[0] for w in re.findall(r"[^\W_]+", text))
    lines = "".join(line.strip()[:1] for line in text.splitlines())
    return f"{words} {lines}"


def _char_codes(text: str) -> str:
    out = []
    for match in _CODE.finditer(text):
        index = next(i for i, group in enumerate(match.groups()) if group is not None)
        value = int(match.group(index + 1), (16, 16, 16, 10, 8, 16, 10)[index])
        printable = 32 <= value < 0x110000 and not 0xD800 <= value < 0xE000
        out.append(chr(value) if printable else " ")
    return "".join(out)


def _blobs(text: str) -> Iterator[tuple[str, str]]:
    """Base64, base32 and hex blobs decoded at every alignment (a blob glued to the word before
    it decodes from the right offset on)."""
    glued = re.sub(r"\s+", "", text)
    for run in _BASE64_RUN.findall(glued):
        for offset in range(4):
            part = run[offset:]
            if len(part) >= 4:
                yield "in base64", _decoded(_base64, part[: len(part) // 4 * 4])
    for run in _BASE32_RUN.findall(glued):
        for offset in range(8):
            part = run[offset:]
            if len(part) >= 8:
                yield "in base32", _decoded(_base32, part[: len(part) // 8 * 8])
    for run in _HEX_RUN.findall(_HEX_SEPARATORS.sub("", text)):
        for offset in range(2):
            part = run[offset:]
            yield "in hex", _decoded(bytes.fromhex, part[: len(part) // 2 * 2])


def _piecewise(pieces: list[str]) -> Iterator[tuple[str, str]]:
    """Blob pieces of whole groups decoded one by one and put together: what the words put
    between them do not change."""
    for name, decode, size in (
        ("in base64", _base64, 4),
        ("in base32", _base32, 8),
        ("in hex", bytes.fromhex, 2),
    ):
        whole = [p for p in pieces if len(p) % size == 0]
        if whole:
            yield f"{name}, piece by piece", "".join(_decoded(decode, p) for p in whole)


def _base64(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "/"))


def _base32(text: str) -> bytes:
    return base64.b32decode(text.upper())


def _decoded(decode: Callable[[str], bytes], part: str) -> str:
    try:
        return decode(part).decode("utf-8", "ignore")
    except (binascii.Error, ValueError):
        return ""


def _readable(text: str) -> bool:
    """Mostly printable: worth reading again (garbage from a misaligned blob is not)."""
    if len(text) < 8:
        return False
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t")
    return printable >= 0.9 * len(text)
