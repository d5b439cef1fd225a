"""Python source parsed and compiled from several threads at once.

CPython 3.11's AST construction is not thread-safe: two threads parsing at the same moment can
fail with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905). Candidates
are scored, hints filtered and test runs prepared in worker threads, so every parse in the parent
process goes through this lock.
"""

from __future__ import annotations

import ast
import threading

_lock = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    with _lock:
        return ast.parse(source, filename)


def check_compiles(source: str, filename: str) -> None:
    """Raise SyntaxError (or ValueError for a NUL byte) when `source` does not compile."""
    with _lock:
        compile(source, filename, "exec", dont_inherit=True)
