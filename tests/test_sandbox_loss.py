"""TestLoss end to end: hostile code reads planted secrets and forges a pass; the gradient
request that reaches the (fake) model carries neither the secret nor a false score."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tg_magic as tg
from tests.fake_api import FakeMessagesAPI
from tg_magic.loss import TestLoss
from tg_magic.sandbox import available

pytestmark = pytest.mark.skipif(not available(), reason="bubblewrap does not work here")

SECRET = "tg-loss-planted-secret-93be"
TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(-1, 1) == 0\n"


@pytest.fixture
def notebook_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HOME and the notebook folder (the cwd) hold secrets, outside /tmp."""
    root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="tg-magic-loss-"))
    (root / "home" / ".ssh").mkdir(parents=True)
    (root / "home" / ".ssh" / "id_rsa").write_text(f"-----KEY {SECRET}-----\n")
    (root / "home" / ".env").write_text(f"ANTHROPIC_API_KEY={SECRET}\n")
    (root / "notebook").mkdir()
    (root / "notebook" / "answers.txt").write_text(f"{SECRET}\n")
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.chdir(root / "notebook")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_secrets_never_reach_the_model(fake_api: FakeMessagesAPI, notebook_folder: Path) -> None:
    paths = [
        notebook_folder / "home" / ".ssh" / "id_rsa",
        notebook_folder / "home" / ".env",
        notebook_folder / "notebook" / "answers.txt",
        Path(f"/proc/{os.getpid()}/environ"),
    ]
    code = (
        "def add(a, b):\n"
        "    found = []\n"
        f"    for path in {[str(p) for p in paths]!r}:\n"
        "        try:\n"
        "            found.append(open(path).read())\n"
        "        except OSError as exc:\n"
        "            found.append(type(exc).__name__)\n"
        "    print('LEAK', found)\n"
        "    raise ValueError('LEAK ' + repr(found))\n"
    )
    variable = tg.Variable(code, role_description="Python code", requires_grad=True)
    loss = TestLoss(TESTS)(variable)
    loss.backward("anthropic:claude-haiku-5-5")
    report = TestLoss.report(loss)
    assert report.status == "ok" and report.score == 0.0
    assert "LEAK" in report.text()  # the attack ran and its output reached the report
    assert fake_api.requests, "the gradient was requested"
    sent = json.dumps([r["body"] for r in fake_api.requests])
    assert "LEAK" in sent
    assert SECRET not in sent
    assert SECRET not in report.text() + report.output + repr(report.outcomes)


def test_a_forged_pass_is_scored_as_a_failure(fake_api: FakeMessagesAPI) -> None:
    code = (
        "import atexit, os\n"
        "import _pytest.python\n"
        "_pytest.python.Function.runtest = lambda self: None\n"
        "class Same:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "def add(a, b):\n"
        "    return Same()\n"
        "atexit.register(lambda: os._exit(0))\n"
    )
    variable = tg.Variable(code, role_description="Python code", requires_grad=True)
    loss = TestLoss(TESTS)(variable)
    assert loss.score == 0.0
    report = TestLoss.report(loss)
    assert [o.passed for o in report.outcomes] == [False, False, False]
    assert "cannot cross to the tests" in report.outcomes[0].message
