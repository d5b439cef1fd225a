"""The record of the Message Batches a run sent: which batch holds which request (`custom_id`).

A batch is paid when it is created, and its answers stay on the server for 29 days; a run
that was interrupted while its batches ran finds them here when it starts again, and reads
their answers instead of sending the requests a second time. The file is JSON, written
atomically (a crash never leaves half of it) and 0600 from its creation in a 0700 folder, like
everything the classroom writes. It holds batch ids and request digests, never a prompt or a
key.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import InputError

VERSION = 1
# What the Messages API accepts as a custom_id, and what a batch id may be (it goes into a URL).
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")


class Record:
    """Batches in the order they were sent, each with its custom_ids; `path` None: in memory
    only (a run without a record file still batches, it just cannot be resumed)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.batches: list[tuple[str, list[str]]] = []
        self._newest: dict[str, str] = {}  # custom_id -> the newest batch holding it
        self._lock = threading.Lock()
        self._warned = False
        if path is not None and path.exists():
            for batch_id, ids in _read(path):
                self._note(batch_id, ids)

    def where(self, custom_id: str) -> str | None:
        """The newest batch holding this request, or None."""
        with self._lock:
            return self._newest.get(custom_id)

    def add(self, batch_id: str, custom_ids: list[str]) -> None:
        """Note a batch just created, and save the record before it is polled. A record that
        cannot be written is said once: the run goes on, only its resumption is lost."""
        with self._lock:
            self._note(batch_id, custom_ids)
            if self.path is None:
                return
            text = json.dumps(
                {
                    "version": VERSION,
                    "about": "Message Batches sent by tg-magic: a rerun reads their answers",
                    "batches": [{"id": b, "requests": ids} for b, ids in self.batches],
                },
                indent=1,
            )
            try:
                _write_atomic(self.path, text)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    print(
                        f"tg_magic: cannot write the batch record {self.path} ({exc}); the run "
                        "goes on, but an interrupted run will send its batches again",
                        file=sys.stderr,
                    )

    def _note(self, batch_id: str, custom_ids: list[str]) -> None:
        self.batches.append((batch_id, list(custom_ids)))
        for custom_id in custom_ids:
            self._newest[custom_id] = batch_id


def _read(path: Path) -> list[tuple[str, list[str]]]:
    """The batches a record file names; a file that is not one is a one-line error."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _unreadable(path, str(exc)) from None
    batches = data.get("batches") if isinstance(data, dict) else None
    if not isinstance(batches, list):
        raise _unreadable(path, "no list of batches")
    found = []
    for entry in batches:
        batch_id = entry.get("id") if isinstance(entry, dict) else None
        ids = entry.get("requests") if isinstance(entry, dict) else None
        if not isinstance(batch_id, str) or not _BATCH_ID.fullmatch(batch_id):
            raise _unreadable(path, f"a batch id that is not one ({batch_id!r:.40})")
        if not isinstance(ids, list) or not all(
            isinstance(i, str) and _ID.fullmatch(i) for i in ids
        ):
            raise _unreadable(path, f"batch {batch_id}: requests that are not custom_ids")
        found.append((batch_id, ids))
    return found


def _unreadable(path: Path, why: str) -> InputError:
    return InputError(
        f"the batch record {path} cannot be read ({why[:120]}): move it away to start afresh "
        "(the batches it names are then not reused)"
    )


def _write_atomic(path: Path, text: str) -> None:
    """0600 from creation (mkstemp), replaced in one step; a folder made for it is 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


_records: dict[Path | None, Record] = {}
_records_lock = threading.Lock()


def open_record(path: str | Path | None) -> Record:
    """The record at `path`, read once per process (None: the process's record in memory)."""
    where = None if path is None else Path(path).expanduser().absolute()
    with _records_lock:
        if where not in _records:
            _records[where] = Record(where)
        return _records[where]
