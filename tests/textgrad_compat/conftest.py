"""TextGrad's own tests and tutorials against loopback servers, as a TextGrad user runs them.

- claude-* engines talk to the fake Messages API (tests/fake_api.py), gpt-* and ollama engines
  to the loopback chat-completions server of tests/test_openai_engine.py, answering from the
  same fake's rules and default responder;
- keys are fakes; the OpenAI key is absent when test_basics.py starts (it checks that);
- the one image URL TextGrad's tests fetch is answered from tests/data/ant.jpg (no network);
- BIG-Bench Hard is not on this machine: tg-magic's own counting examples (examples/data, made by
  make_counting.py) are put where TextGrad keeps BBH_object_counting, in a temporary cache, so
  the prompt-optimization tutorial has data. tg_magic itself never writes them.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_api import FakeMessagesAPI, default_reply
from tests.test_openai_engine import _Chat, serve_chat

ROOT = Path(__file__).resolve().parents[2]
ANT = ROOT / "tests" / "data" / "ant.jpg"
ANT_URL = "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
FAKE_ANTHROPIC_KEY = "test-key-for-the-fake-server-0001"
FAKE_OPENAI_KEY = "test-key-for-the-fake-openai-0001"

# What the scripted model proposes when asked to improve the LIS code (TextGrad's test_api
# checks that the optimized code passes its asserts).
LIS_SOLUTION = """
def longest_increasing_subsequence(nums):
    import bisect
    tails = []
    for x in nums:
        i = bisect.bisect_left(tails, x)
        if i == len(tails):
            tails.append(x)
        else:
            tails[i] = x
    return len(tails)
"""


def lis_rule(body: dict[str, Any], text: str) -> str:
    if "<IMPROVED_VARIABLE>" in text:
        return f"<IMPROVED_VARIABLE>{LIS_SOLUTION}</IMPROVED_VARIABLE>"
    return default_reply(body, text)


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as api:
        yield api


def _as_messages_body(chat: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions body as a Messages body, so the fake's rules answer both."""
    system = "\n".join(m["content"] for m in chat["messages"] if m["role"] == "system")
    content = chat["messages"][-1]["content"]
    if isinstance(content, list):
        content = [
            {"type": "text", "text": part["text"]}
            for part in content
            if part["type"] == "text" and part["text"]
        ]
    body = {"model": chat["model"], "max_tokens": chat.get("max_tokens") or 4096}
    body["messages"] = [{"role": "user", "content": content}]
    if system:
        body["system"] = system
    return body


@pytest.fixture(scope="session")
def chat_url(fake: FakeMessagesAPI) -> Iterator[str]:
    class Chat(_Chat):
        @staticmethod
        def answer(body: dict[str, Any]) -> str:
            return str(fake._reply(_as_messages_body(body))["content"][0]["text"])

    httpd = serve_chat(Chat)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture(scope="module", autouse=True)
def provider_keys(request: pytest.FixtureRequest, fake: FakeMessagesAPI, chat_url: str):  # type: ignore[no-untyped-def]
    """Servers and keys for a whole module (test_basics.py sets OPENAI_API_KEY itself)."""
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY",)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        mp.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
        mp.setenv("OPENAI_BASE_URL", chat_url)
        if request.module.__name__.endswith("test_basics"):
            mp.delenv("OPENAI_API_KEY", raising=False)
        else:
            mp.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
        yield
    for key, value in saved.items():  # test_basics.py writes os.environ directly
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def textgrad_world(
    fake: FakeMessagesAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Per test: fresh fake rules, a scratch working folder and cache, the ant image for its
    URL. Yields the URLs fetched through httpx.get."""
    fake.reset()
    fake.add_rule("longest_increasing_subsequence", lis_rule)
    _Chat.received = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    bbh = tmp_path / "xdg" / "textgrad" / "object_counting"
    bbh.mkdir(parents=True)
    for split in ("train", "val", "test"):
        rows = [json.loads(line) for line in (ROOT / "examples/data" / f"{split}.jsonl").open()]
        with (bbh / f"{split}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["", "x", "y"])  # TextGrad's layout: an index column, x, y
            writer.writerows([i, r["input"], r["target"]] for i, r in enumerate(rows))
    fetched: list[str] = []
    real_get = httpx.get

    def get(url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
        fetched.append(str(url))
        if str(url) == ANT_URL:
            return httpx.Response(200, content=ANT.read_bytes(), request=httpx.Request("GET", url))
        return real_get(url, *args, **kwargs)

    monkeypatch.setattr(httpx, "get", get)
    yield fetched
