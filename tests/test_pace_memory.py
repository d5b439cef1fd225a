"""A new process starts each provider account at the concurrency its last process reached
(engines/pace_memory.py), through the real SDK against the loopback fake."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import tg_magic as tg
from tests.conftest import FAKE_KEY
from tests.fake_api import FakeMessagesAPI
from tg_magic import runtime
from tg_magic.engines import pace_memory, pacing

HAIKU = "anthropic:claude-haiku-5-5"
ROOT = Path(__file__).resolve().parents[1]

# A new process asking `n` different questions at once, from the `concurrency` setting of 2.
NEW_PROCESS = """
import asyncio, sys
import tg_magic as tg
from tg_magic import runtime
engine = tg.get_engine("{spec}")
async def many():
    asked = (engine.agenerate(f"new process, question {{i}}") for i in range({n}))
    return await asyncio.gather(*asked)
print(len(runtime.run(many())))
"""


def grow(fake: FakeMessagesAPI, calls: int, run: str = "") -> None:
    """A run whose pace grows from 2 to its ceiling (no limits announced: room for all); `run`
    makes its questions differ from another run's (else the reply cache answers them)."""
    engine = tg.get_engine(HAIKU)

    async def many() -> list[str]:
        asked = (engine.agenerate(f"{run} question {i}") for i in range(calls))
        return await asyncio.gather(*asked)

    fake.latency = 0.02
    assert len(runtime.run(many())) == calls
    fake.latency = 0.0


def test_a_new_process_sends_at_once_as_many_as_the_last_one_reached(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    tg.configure(concurrency=2, max_concurrency=24)
    grow(fake_api, 80)
    assert fake_api.max_concurrency > 2
    pacing.forget()  # what config.reset and the end of a process do: remember the cap
    fake_api.reset()
    fake_api.inject("stall", 24)  # held until released: only the pace's first round arrives
    env = {
        **os.environ,
        "TG_MAGIC_CONCURRENCY": "2",
        "TG_MAGIC_MAX_CONCURRENCY": "24",
        "PYTHONPATH": str(ROOT),
    }
    script = NEW_PROCESS.format(spec=HAIKU, n=24)
    child = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        # From the setting alone, 2 would go before a reply; from the memory, all 24 at once.
        assert fake_api.wait_held(24, timeout=60)
    finally:
        fake_api.release()
        out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "24"


def test_the_memory_keeps_no_address_and_is_the_users_alone(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    tg.configure(concurrency=2, max_concurrency=24)
    grow(fake_api, 40)
    pacing.forget()
    memory = tmp_path / pace_memory.FILE  # beside the reply cache
    text = memory.read_text()
    assert stat.S_IMODE(memory.stat().st_mode) == 0o600
    port = fake_api.base_url.rsplit(":", 1)[-1].strip("/")
    assert "127.0.0.1" not in text and port not in text and FAKE_KEY not in text
    assert pace_memory.recall(f"anthropic at {fake_api.base_url}") == 24


def test_a_small_run_keeps_what_a_large_one_reached_and_a_429_lowers_it(
    fake_api: FakeMessagesAPI,
) -> None:
    name = f"anthropic at {fake_api.base_url}"
    tg.configure(concurrency=2, max_concurrency=24)
    grow(fake_api, 80)
    pacing.forget()
    tg.get_engine(HAIKU).generate("one small question")
    pacing.forget()
    assert pace_memory.recall(name) == 24
    fake_api.fail_next(429, 1)  # the provider refuses once: the cap halves
    grow(fake_api, 40, "after a refusal:")
    pacing.forget()
    assert pace_memory.recall(name) < 24


def test_nothing_is_remembered_with_the_cache_off(fake_api: FakeMessagesAPI) -> None:
    tg.configure(concurrency=2, max_concurrency=24)
    tg.set_cache(None)
    tg.configure(cache="off")
    grow(fake_api, 40)
    pacing.forget()
    assert pace_memory.recall(f"anthropic at {fake_api.base_url}") == 0


def test_a_damaged_or_forged_memory_starts_no_more_than_the_ceiling(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    name = f"anthropic at {fake_api.base_url}"
    memory = tmp_path / pace_memory.FILE
    memory.write_text("{not json")
    assert pace_memory.recall(name) == 0
    digest = pace_memory._digest(name)
    memory.write_text(f'{{"{digest}": {{"cap": "many", "saved": 0}}}}')
    assert pace_memory.recall(name) == 0
    pace_memory.remember({name: 1_000_000})  # a forged cap far past any ceiling
    tg.configure(concurrency=2, max_concurrency=24)
    tg.get_engine(HAIKU).generate("one question")
    assert pacing.paces()[0].cap == 24
