"""Shared fixtures: a loopback Messages API, and a clean tg_magic state per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tg_magic import engines
from tg_magic.engines import base

FAKE_KEY = "test-key-for-the-fake-server-0001"


@pytest.fixture(autouse=True)
def clean_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own cache file, no budget, no shared engines or settings."""
    monkeypatch.setenv("TG_MAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    tg.set_cache(tmp_path / "cache.sqlite")
    tg.set_budget(None, None)
    tg.set_backward_engine(None)
    engines._engines.clear()
    base.set_concurrency(16)
    yield
    engines._engines.clear()


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        yield fake
