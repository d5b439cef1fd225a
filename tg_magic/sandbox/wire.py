"""Plain data across the process boundary: what the candidate returns becomes real builtins.

Runs on both sides of the sandbox and imports only the standard library. A value crosses as
JSON with tags for the types JSON lacks; decoding builds exact builtin types only, so a test's
`==` always compares real values, never an object the candidate made.
"""

from __future__ import annotations

import base64
import json
import os
import struct

TYPE_CHECKING = False  # typing is not imported here: every sandbox would pay for it
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 8 * 1024 * 1024  # bytes; a larger value does not cross
MAX_DEPTH = 200
PLAIN = "numbers, strings, bytes, None, bool, lists, tuples, dicts, sets"


class Uncrossable(Exception):
    """A value that is not plain data (or too large or deep) and so cannot cross."""


def encode(value: Any, depth: int = 0) -> Any:
    """A JSON-able form of plain data; subclasses of builtins cross as their builtin value."""
    if depth > MAX_DEPTH:
        raise Uncrossable(f"a value nested deeper than {MAX_DEPTH} levels")
    if value is None or type(value) is bool:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes | bytearray):
        kind = "ba" if isinstance(value, bytearray) else "b"
        return {kind: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, complex):
        return {"c": [value.real, value.imag]}
    if isinstance(value, list):
        return [encode(item, depth + 1) for item in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"t": [encode(item, depth + 1) for item in tuple.__iter__(value)]}
    if isinstance(value, frozenset):
        return {"f": [encode(item, depth + 1) for item in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"s": [encode(item, depth + 1) for item in set.__iter__(value)]}
    if isinstance(value, dict):
        pairs = dict.items(value)
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in pairs]}
    kind = type(value).__name__
    raise Uncrossable(f"a {kind} object")


def decode(data: Any) -> Any:
    """Build exact builtins from encoded data; anything unexpected raises Uncrossable."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(item) for item in data]
    if type(data) is dict and len(data) == 1:
        ((tag, body),) = data.items()
        if tag in ("b", "ba") and type(body) is str:
            raw = base64.b64decode(body.encode("ascii"), validate=True)
            return bytearray(raw) if tag == "ba" else raw
        if tag == "c" and type(body) is list and len(body) == 2:
            return complex(float(body[0]), float(body[1]))
        if type(body) is list:
            if tag == "t":
                return tuple(decode(item) for item in body)
            if tag == "s":
                return {decode(item) for item in body}
            if tag == "f":
                return frozenset(decode(item) for item in body)
            if tag == "d":
                return {decode(k): decode(v) for k, v in body}
    raise Uncrossable("malformed data")


# ----------------------------------------------------------------- framed messages on pipes


def send(fd: int, message: dict[str, Any]) -> None:
    """Write one length-prefixed JSON message."""
    try:
        data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError) as exc:
        raise Uncrossable(f"a value JSON cannot hold ({exc})") from None
    if len(data) > MAX_MESSAGE:
        raise Uncrossable(f"a value larger than {MAX_MESSAGE // (1024 * 1024)} MB")
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, min(1 << 20, size - len(chunks)))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks += chunk
    return bytes(chunks)


def receive(fd: int) -> dict[str, Any]:
    """Read one message; EOFError when the writer is gone, ValueError when it is not ours."""
    (size,) = struct.unpack(">I", _read_exact(fd, 4))
    if size > MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes (more than {MAX_MESSAGE})")
    message = json.loads(_read_exact(fd, size).decode("utf-8"))
    if type(message) is not dict:
        raise ValueError("a message that is not an object")
    return message
