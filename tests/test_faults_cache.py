"""A cache that fails never loses a paid reply; any text is a valid cache key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tg_magic.engines import get_cache

HAIKU = "anthropic:claude-haiku-5-5"


def test_a_full_disk_warns_once_and_every_paid_reply_reaches_the_caller(
    fake_api: FakeMessagesAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = get_cache()
    assert cache is not None
    engine = tg.get_engine(HAIKU)
    assert engine.generate("warm up the cache")  # the engine loop's connection now exists
    # SQLite's own "database or disk is full", on the connection the engine loop writes with
    tg.runtime.run(_limit_pages(cache))
    capsys.readouterr()
    fake_api.add_rule("question", "a long paid reply " * 400)
    replies = [engine.generate(f"question {i}") for i in range(8)]
    assert all(r.strip() for r in replies) and fake_api.calls == 9
    err = capsys.readouterr().err
    assert err.count("tg_magic: cannot write to the cache") == 1
    assert "database or disk is full" in err and err[-1] == "\n" and err.count("\n") == 1


async def _limit_pages(cache: object) -> None:
    conn = cache._connection()  # type: ignore[attr-defined]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_locked_cache_warns_once_and_the_run_goes_on(
    fake_api: FakeMessagesAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = get_cache()
    assert cache is not None
    cache.busy_timeout = 0.2
    holder = sqlite3.connect(cache.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the file
    try:
        assert tg.get_engine(HAIKU).generate("first") and tg.get_engine(HAIKU).generate("second")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert fake_api.calls == 2
    assert capsys.readouterr().err.count("tg_magic: cannot") == 1


def test_a_read_only_cache_file_warns_and_the_run_goes_on(
    fake_api: FakeMessagesAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ro.sqlite"
    tg.set_cache(path)
    cache = get_cache()
    assert cache is not None
    tg.runtime.run(_read_only(cache))
    assert tg.get_engine(HAIKU).generate("hello")
    assert "cannot write to the cache" in capsys.readouterr().err


async def _read_only(cache: object) -> None:
    cache._connection().execute("PRAGMA query_only = ON")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "odd", ["lone \ud800 surrogate", "NUL \x00 byte", "\u202eright-to-left\u202c", "\udfff"]
)
def test_any_unicode_in_a_value_is_handled(fake_api: FakeMessagesAPI, odd: str) -> None:
    engine = tg.get_engine(HAIKU)
    first = engine.generate(f"Summarize: {odd}", f"system {odd}")
    again = engine.generate(f"Summarize: {odd}", f"system {odd}")
    assert first == again and fake_api.calls == 1  # cached under a valid key
    fake_api.add_rule("Echo", lambda body, text: "reply with \ud800 inside")
    assert "reply with" in engine.generate("Echo this")
