"""A persistent cache of model replies: re-running a notebook costs nothing and repeats itself.

SQLite in WAL mode, keyed by a hash of the engine and the full request; safe across threads and
processes. Keys and values hold prompts and replies only, never credentials. A cache that cannot
be read or written (full disk, read-only file, a lock held too long) is said once and skipped:
the reply, already paid for, goes on to the caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
from pathlib import Path

from ..errors import InputError, valid_text


def default_path() -> Path | None:
    """The `cache` setting (a file, or 'off'), else the user's cache folder."""
    from ..config import settings

    chosen = settings.cache
    if chosen is not None:
        text = str(chosen).strip()
        return None if text.lower() in ("", "off", "none", "0") else Path(text).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "tg_magic" / "cache.sqlite"


class Cache:
    """Reply cache; one connection per thread, all writing to the same file."""

    busy_timeout = 5.0  # seconds to wait for another writer before giving up on a write

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._warned = False
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Prompts and replies are the user's own: 0600 from the start (SQLite gives its
            # -wal and -shm files the database file's mode).
            with contextlib.suppress(FileExistsError):  # made before: its mode stays
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._connection()
        except (OSError, sqlite3.Error) as exc:
            raise InputError(
                f"cannot open the cache at {path}: {exc}; "
                "choose another file with tg.set_cache(PATH) or TG_MAGIC_CACHE, or 'off'"
            ) from None

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS replies "
                "(key TEXT PRIMARY KEY, engine TEXT, reply TEXT, usage TEXT)"
            )
            self._local.conn = conn
        return conn

    def get(self, key: str) -> tuple[str, dict[str, int]] | None:
        """The cached reply, or None (also when the cache cannot be read: said once)."""
        try:
            row = (
                self._connection()
                .execute("SELECT reply, usage FROM replies WHERE key = ?", (key,))
                .fetchone()
            )
            return None if row is None else (row[0], json.loads(row[1]))
        except (sqlite3.Error, OSError, ValueError) as exc:
            self._warn("read", exc)
            return None

    def put(self, key: str, engine: str, reply: str, usage: dict[str, int]) -> None:
        """Keep a reply; a failed write is said once and the run goes on without it."""
        try:
            self._connection().execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                (key, engine, valid_text(reply), json.dumps(usage)),
            )
        except (sqlite3.Error, OSError) as exc:
            self._warn("write to", exc)

    def _warn(self, action: str, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            print(
                f"tg_magic: cannot {action} the cache {self.path} ({exc}); the run goes on "
                "and keeps its replies, uncached; free space or choose another file with "
                "tg.set_cache(PATH)",
                file=sys.stderr,
            )

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM replies").fetchone()[0])


_cache: Cache | None = None
_configured = False


def get_cache() -> Cache | None:
    """The active cache, opened on first use; None when caching is off."""
    global _cache, _configured
    if not _configured:
        path = default_path()
        _cache = Cache(path) if path is not None else None
        _configured = True
    return _cache


def reset_cache() -> None:
    """The `cache` setting changed: open the cache it names at the next call."""
    global _configured
    _configured = False


def set_cache(path: str | os.PathLike[str] | None) -> None:
    """Use another cache file, or None to turn caching off (the `cache` setting)."""
    from ..config import configure

    configure(cache="off" if path is None else str(Path(path).expanduser()))


class _MappingCache:
    """One engine's own reply store (TextGrad's `cache=diskcache.Cache(...)`): key -> reply."""

    def __init__(self, mapping: object) -> None:
        self.mapping = mapping

    def get(self, key: str) -> tuple[str, dict[str, int]] | None:
        hit = self.mapping.get(key)  # type: ignore[attr-defined]
        return None if hit is None else (str(hit), {})

    def put(self, key: str, engine: str, reply: str, usage: dict[str, int]) -> None:
        self.mapping[key] = reply  # type: ignore[index]


def own_cache(reply_cache: object) -> Cache | _MappingCache | None:
    """An engine's `reply_cache`: False for none, True for the shared cache, else a mapping."""
    if reply_cache is False:
        return None
    if reply_cache is True:
        return get_cache()
    return _MappingCache(reply_cache)
