"""The SDKs' HTTP clients (engines/http.py) end cleanly: a program that used the engines, from
the synchronous API or from loops of its own, exits without a complaint about an unclosed
client or connection, in a real subprocess against the loopback fake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_api import FakeMessagesAPI

ROOT = Path(__file__).resolve().parents[1]

PROGRAMS = {
    "the synchronous API": """
import tg_magic as tg
print(tg.get_engine("anthropic:claude-haiku-5-5").generate("a question"))
""",
    "two loops of its own": """
import asyncio
import tg_magic as tg
engine = tg.get_engine("anthropic:claude-haiku-5-5")
async def ask(text):
    return await asyncio.gather(*(engine.agenerate(f"{text} {i}") for i in range(3)))
print(asyncio.run(ask("first loop")))
print(asyncio.run(ask("second loop")))
""",
    "both, and a loop left open": """
import asyncio
import tg_magic as tg
engine = tg.get_engine("anthropic:claude-haiku-5-5")
print(engine.generate("a question"))
loop = asyncio.new_event_loop()
print(loop.run_until_complete(engine.agenerate("on a loop never closed")))
""",
}


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_a_program_ends_without_a_complaint_about_its_connections(
    fake_api: FakeMessagesAPI, program: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAMS[program]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # (a loop the program leaves open is its own affair: Python says so when warnings are on)
    for complaint in ("client session", "connector", "transport", "Task was destroyed"):
        assert complaint not in done.stderr, done.stderr
    assert done.stdout.count("\n") >= 2 or program == "the synchronous API"


def test_the_sdk_talks_http_through_aiohttp(fake_api: FakeMessagesAPI) -> None:
    """The SDK's aiohttp client (not httpx's pool, which looks at every open connection for
    each request: benchmarks/scale.py)."""
    from tg_magic import runtime
    from tg_magic.engines import get_engine

    engine = get_engine("anthropic:claude-haiku-5-5")

    async def transport() -> str:
        client = engine._sdk_client()  # type: ignore[attr-defined]
        return type(client._client._transport).__module__

    assert engine.generate("a question")
    assert "aiohttp" in runtime.run(transport())
