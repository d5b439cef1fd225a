"""Any Unicode a user (or a model) writes: a lone surrogate, NUL, right-to-left marks, emoji. The
cell, the candidate widget, the history and the cache take them without crashing or losing
anything."""

from __future__ import annotations

import pytest

from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tg_magic.notebook.widgets import CandidateView

ODD = "\ud800 \x00 \u202e\u05e9\u05dc\u05d5\u05dd \U0001f600"
PROMPT = f"You count objects. {ODD} Answer with a number."


def test_odd_unicode_goes_through_a_whole_step(
    cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_api.add_rule(
        "<IMPROVED_VARIABLE>",
        f"<IMPROVED_VARIABLE>Count carefully {ODD[2:]}.</IMPROVED_VARIABLE>",
    )
    cells.run(f"%%tgvariable system --kind text\n{PROMPT}")
    cells.run(f"%%tgloss judge --target system\nIs it clear? {ODD}")
    assert cells.error is None
    cells.run("%tgforward judge")
    assert cells.error is None
    shown = cells.run("%tgoptimize judge --steps 1")
    assert cells.error is None, shown
    history = cells.run("%tghistory system")
    assert "Count carefully" in history and "\u05e9\u05dc\u05d5\u05dd" in history
    # Every request the model got was valid Unicode (a lone surrogate became U+FFFD).
    assert all("\ud800" not in str(r["body"]) for r in fake_api.requests)
    # The widget renders the candidate against the cell.
    magics = cells.shell.magics_manager.registry["TgMagics"]
    view = CandidateView(magics.session, "system")
    assert "Count carefully" in view.side.value and "Count carefully" in view.unified.value
    # A re-run of the same step is answered by the cache: byte-identical requests.
    before = fake_api.calls
    cells.run("%tgrevert system 0")
    cells.run("%tgforward judge")
    assert fake_api.calls == before
