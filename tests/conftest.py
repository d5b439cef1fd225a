"""Shared fixtures: a loopback Messages API, and a clean tg_magic state per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import tg_magic as tg
from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tg_magic import config as tg_config
from tg_magic import engines
from tg_magic.engines import base

FAKE_KEY = "test-key-for-the-fake-server-0001"


@pytest.fixture(autouse=True)
def clean_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own cache file, no budget, no shared engines or settings."""
    monkeypatch.setenv("TG_MAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    for name in ("TG_MAGIC_ENGINE", "TG_MAGIC_BACKWARD_ENGINE", "TG_MAGIC_FEEDBACK_ONLY"):
        monkeypatch.delenv(name, raising=False)
    tg_config.reset()
    tg.set_cache(tmp_path / "cache.sqlite")
    tg.set_budget(None, None)
    tg.set_backward_engine(None)
    engines._engines.clear()
    base.set_concurrency(16)
    yield
    engines._engines.clear()
    tg_config.reset()


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        yield fake


@pytest.fixture
def cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cells]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("TG_MAGIC_NOTEBOOK", raising=False)
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    runner = Cells(shell, capsys)
    runner.run("%load_ext tg_magic")
    assert runner.error is None
    yield runner
    shell.run_cell("%unload_ext tg_magic")
    InteractiveShell.clear_instance()
