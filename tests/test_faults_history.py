"""The history survives: durable writes, several writers, damaged files, odd text."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tg_magic.errors import InputError
from tg_magic.notebook.history import History

WRITER = """
import sys
from pathlib import Path
from tg_magic.notebook.history import History
history = History(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # both writers start together
for i in range(200):
    history.add("prompt", f"{sys.argv[2]} value {i}")
"""


def test_two_processes_writing_200_entries_each_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".tg_magic" / "nb.history.sqlite"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("kernel-a", "kernel-b")
    ]
    for w in writers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    for w in writers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in writers:
        assert w.wait(timeout=120) == 0
    entries = History(path).entries("prompt")
    assert len(entries) == 400
    assert [e.n for e in entries] == list(range(400))


def test_the_sqlite_file_alone_holds_everything_after_the_writer_exits(tmp_path: Path) -> None:
    path = tmp_path / ".tg_magic" / "nb.history.sqlite"
    code = (
        "import sys; from pathlib import Path; from tg_magic.notebook.history import History; "
        "h = History(Path(sys.argv[1])); [h.add('p', f'v{i}') for i in range(5)]; "
        "import os; os._exit(0)"  # no clean shutdown, as when a kernel is killed
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(path, copy)  # the one file, without any sidecar
    rows = sqlite3.connect(copy).execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    assert rows == 5


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_history_is_moved_aside_with_one_line_and_a_fresh_one_starts(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / ".tg_magic" / "nb.history.sqlite"
    history = History(path)
    for i in range(40):
        history.add("prompt", f"value {i} " + "x" * 1500)
    history.close()
    data = path.read_bytes()
    broken = {"empty": b"", "truncated": data[: len(data) // 3], "garbage": b"\x00junk" * 999}
    path.write_bytes(broken[damage])
    fresh = History(path)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "moved it to nb.history.sqlite.broken-" in err
    backups = list(path.parent.glob("nb.history.sqlite.broken-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == broken[damage]
    assert fresh.entries("prompt") == []
    assert fresh.add("prompt", "new start") == 0


def test_a_tg_magic_file_instead_of_a_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".tg_magic").write_text("not a folder")
    with pytest.raises(InputError, match=r"\.tg_magic is a file, not a folder; rename or remove"):
        History(tmp_path / ".tg_magic" / "nb.history.sqlite")


def test_any_unicode_is_stored_without_crashing(tmp_path: Path) -> None:
    history = History(tmp_path / ".tg_magic" / "h.sqlite")
    odd = "lone \ud800 surrogate, NUL \x00 inside, \u202eRTL override, emoji \U0001f600"
    n = history.add("prompt", odd, gradients=[odd], usage=odd)
    (entry,) = history.entries("prompt")
    assert entry.n == n == 0
    assert (
        entry.value
        == "lone \ufffd surrogate, NUL \x00 inside, \u202eRTL override, emoji \U0001f600"
    )
    assert entry.gradients == [entry.value]
