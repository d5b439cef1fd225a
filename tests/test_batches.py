"""Message Batches (engines/batches.py) through the real SDK against the loopback fake's batches
endpoints (tests/fake_batches.py): in-process for the engine, and a real `tg-magic feedback
--batch` killed while its batch runs, then resumed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from benchmarks import quality
from tests.conftest import FAKE_KEY
from tests.fake_api import FakeMessagesAPI
from tests.fake_batches import FakeBatchesAPI
from tests.test_cli import (
    CLASSROOM,
    HAIKU,
    HINT,
    answer_notebook,
    cell_after_answer,
    command,
    give_hints,
    rows,
    run_cli,
)
from tg_magic import runtime
from tg_magic.engines import METER, batches, get_engine
from tg_magic.engines.batches import BatchStatus
from tg_magic.engines.usage import PRICES
from tg_magic.errors import EngineError

RECORD = "batches.json"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBatchesAPI]:
    with FakeBatchesAPI() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        yield server


def half_price(fake: FakeBatchesAPI) -> float:
    """Half of what the answers the fake gave cost at Haiku's list prices."""
    prices = PRICES["claude-haiku-5-5"]
    total = 0.0
    for batch in fake.batches.values():
        for line in batch.results or []:
            if line["result"]["type"] != "succeeded":
                continue
            u = line["result"]["message"]["usage"]
            counts = (
                u["input_tokens"],
                u["output_tokens"],
                u.get("cache_read_input_tokens") or 0,
                u.get("cache_creation_input_tokens") or 0,
            )
            total += sum(n * p for n, p in zip(counts, prices, strict=False)) / 1e6
    return total / 2


def test_calls_in_flight_together_are_one_batch_answered_at_half_price(
    fake: FakeBatchesAPI, tmp_path: Path
) -> None:
    statuses: list[BatchStatus] = []
    assert batches.start(tmp_path / "out" / RECORD, None, statuses.append)
    engine = get_engine(HAIKU)
    prompts = [f"Say {word}." for word in ("one", "two", "three", "four")]
    for prompt in prompts:
        fake.add_rule(prompt, f"reply to {prompt}")
    asked = [*prompts, prompts[0]]  # the same request twice

    async def together() -> list[str]:
        return await asyncio.gather(*(engine.agenerate(p) for p in asked))

    with METER.scope() as scope:
        replies = runtime.run(together())
    assert replies == [f"reply to {p}" for p in asked]
    (batch,) = fake.batches.values()
    assert len(batch.requests) == 4  # the request asked twice is sent once
    assert fake.message_calls == 0
    params = batch.requests[0]["params"]
    assert params["model"] == "claude-haiku-5-5" and "stream" not in params
    assert scope.usage.calls == 5 and scope.usage.cached_calls == 1
    assert scope.usage.cost > 0 and scope.usage.cost == pytest.approx(half_price(fake))
    assert statuses[-1] == BatchStatus(batch.id, succeeded=4)
    record = tmp_path / "out" / RECORD
    assert record.stat().st_mode & 0o777 == 0o600
    (entry,) = json.loads(record.read_text())["batches"]
    assert entry["id"] == batch.id
    assert sorted(entry["requests"]) == sorted(r["custom_id"] for r in batch.requests)
    assert "1 sent with 4 requests" in batches.summary()


def test_an_answer_that_errored_or_expired_is_asked_again_and_a_refused_one_fails_in_one_line(
    fake: FakeBatchesAPI, tmp_path: Path
) -> None:
    batches.start(tmp_path / RECORD, None)
    engine = get_engine(HAIKU)
    fake.add_rule("Say one.", "one")
    fake.batch_faults.extend(["errored", "expired"])
    with METER.scope() as scope:
        assert engine.generate("Say one.") == "one"
    outcomes = [line["result"]["type"] for b in fake.batches.values() for line in b.results or []]
    assert outcomes == ["errored", "expired", "succeeded"]  # three batches of one request
    assert scope.usage.calls == 1 and scope.usage.cost == pytest.approx(half_price(fake))
    fake.batch_faults.append("refused")
    with pytest.raises(EngineError) as refused:
        engine.generate("Say two.")
    message = str(refused.value)
    assert "was refused in Message Batch" in message and "prompt is too long" in message
    assert "\n" not in message
    assert len(fake.batches) == 4  # a refused request is not sent again


def test_a_server_without_batches_is_said_once_and_gets_ordinary_requests(
    fake_api: FakeMessagesAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batches.start(tmp_path / RECORD, None)
    engine = get_engine(HAIKU)
    fake_api.add_rule("Say one.", "one")
    fake_api.add_rule("Say two.", "two")
    assert engine.generate("Say one.") == "one"
    assert engine.generate("Say two.") == "two"
    err = capsys.readouterr().err
    assert err.count("the server has no Message Batches endpoint: sending ordinary requests") == 1
    tried = [r for r in fake_api.requests if "/batches" in r["path"]]
    assert [r["status"] for r in tried] == [404]  # asked once, then ordinary requests
    assert fake_api.calls == 2
    assert "ordinary requests, at the full price" in batches.summary()


@contextmanager
def _started(args: list[Any], key: str) -> Iterator[subprocess.Popen[str]]:
    """`tg-magic ARGS` running with this API key (which the fake records at each poll)."""
    env = {**os.environ, "ANTHROPIC_API_KEY": key}
    pipe = subprocess.PIPE
    with subprocess.Popen(command(*args), env=env, stdout=pipe, stderr=pipe, text=True) as run:
        try:
            yield run
        finally:
            if run.poll() is None:
                run.kill()
            run.communicate()


def test_a_feedback_run_killed_mid_batch_resumes_and_pays_each_call_once(
    fake: FakeBatchesAPI, tmp_path: Path
) -> None:
    give_hints(fake)
    fake.usage_scale = 1000.0  # dollars, so the cost line's 4 decimals measure the rate
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("alice", "bob"):  # alice passes every test: no hint, no call
        shutil.copy(CLASSROOM / "submissions" / f"{name}.ipynb", subs)
    answer_notebook(subs / "gina.ipynb", "def median(values):\n    return values[0]\n")
    answer_notebook(subs / "hal.ipynb", "def median(values):\n    return values[-1]\n")
    hints = 3
    out = tmp_path / "out"
    args = [
        "feedback", subs, "--target", "median", "--tests", CLASSROOM / "median_tests.py",
        "--out", out, "--engine", HAIKU, "--jobs", "4", "--batch",
    ]  # fmt: skip
    first_key, second_key = "test-key-of-the-first-run-01", "test-key-of-the-second-run-02"
    fake.hold_batches = True
    with _started(args, first_key) as first:
        # Every hint request is in a held batch, each polled once (so recorded: the record is
        # written before the first poll). Then the run is killed.
        assert fake.wait_batches(
            lambda bs: sum(len(b.requests) for b in bs) == hints and all(b.polls for b in bs)
        )
        first.kill()
    held = list(fake.batches.values())
    record = out / RECORD
    assert record.stat().st_mode & 0o777 == 0o600
    assert {b["id"] for b in json.loads(record.read_text())["batches"]} == {b.id for b in held}

    fake.hold_batches = False
    with _started(args, second_key) as second:
        # The resumed run waits for the batches the first one paid for, still running.
        assert fake.wait_batches(lambda bs: all(second_key in b.polls for b in held))
        fake.release_batches()
        stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr

    sent = [json.dumps(r["params"], sort_keys=True) for r in fake.batch_requests]
    assert len(sent) == len(set(sent)) == 2 * hints  # each hint and its leak check, once
    assert fake.message_calls == 0
    table = rows(out)
    for name in ("bob", "gina", "hal"):
        assert table[name]["status"] == "ok" and table[name]["hint"] == HINT
        assert HINT in cell_after_answer(out / f"{name}.ipynb").source
    assert f"({hints} answers read from batches sent before)" in stdout
    cost = re.search(r"Message Batches: .*\$(\d+\.\d+) at the batch rate", stdout)
    assert cost, stdout
    assert float(cost.group(1)) == pytest.approx(half_price(fake), abs=1e-4)
    assert half_price(fake) > 0.01
    # A progress line while the batch runs, and when it has ended.
    assert re.search(r"batch msgbatch_fake\w+ \[\.+\] 0/\d  \d processing, 0 succeeded", stderr)
    assert re.search(r"batch msgbatch_fake\w+ \[#+\] (\d)/\1  0 processing, \1 succeeded", stderr)


def test_feedback_batch_with_the_local_model_says_so_in_one_line_and_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    out = tmp_path / "out"
    result = run_cli(
        "feedback", CLASSROOM / "submissions" / "alice.ipynb", "--target", "median",
        "--tests", CLASSROOM / "median_tests.py", "--out", out, "--engine", "local", "--batch",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    note = "tg_magic: local has no Message Batches (only Claude's API has them): sending "
    assert f"{note}ordinary requests\n" in result.stderr
    assert rows(out)["alice"]["status"] == "ok"
    assert not (out / RECORD).exists() and "Message Batches" not in result.stdout


def test_an_unreadable_batch_record_is_a_one_line_error_before_any_call(
    fake: FakeBatchesAPI, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / RECORD).write_text("{half a record", encoding="utf-8")
    result = run_cli(
        "feedback", CLASSROOM / "submissions" / "bob.ipynb", "--target", "median",
        "--tests", CLASSROOM / "median_tests.py", "--out", out, "--engine", HAIKU, "--batch",
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert f"the batch record {out / RECORD} cannot be read" in line and "move it away" in line
    assert fake.requests == []


def test_the_quality_benchmark_sends_each_level_as_a_batch_at_half_price(
    fake: FakeBatchesAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.usage_scale = 1000.0
    out = tmp_path / "q.json"
    argv = ["--engine", HAIKU, "--tasks", "counting", "--iterations", "1", "--limit", "3"]
    assert quality.main([*argv, "--batch", "--json", str(out)]) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["batch"] is True and report["results"][0]["dollars"] > 0
    assert fake.message_calls == 0
    first = next(iter(fake.batches.values()))
    assert len(first.requests) == 3  # the three test questions, asked together
    cost = re.search(r"Message Batches: .*\$(\d+\.\d+) at the batch rate", capsys.readouterr().out)
    assert cost and float(cost.group(1)) == pytest.approx(half_price(fake), abs=1e-4)
    recorded = json.loads((tmp_path / "q.batches.json").read_text())["batches"]
    assert [b["id"] for b in recorded] == list(fake.batches)
