"""How far each provider account let its pace go, remembered from one process to the next.

A new process would start every account at the `concurrency` setting and spend a round of
requests (one call's latency) before the first replies' headers tell it how much more the
account takes: a batch of 64 then costs a level more than its critical path. The cap a pace
reached is kept in `pace.json` beside the reply cache (0600; nothing is kept when the cache is
off), under a digest of the account's name (provider and base URL, so no address or credential
in it is written), for a day: a key of another tier may have taken its place since. A new pace
starts from it, never past the ceiling; a 429 halves it as always.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

FILE = "pace.json"
KEEP = 24 * 3600.0  # seconds a remembered cap is used


def path() -> Path | None:
    """Where the caps are kept (None: nowhere, the cache is off)."""
    from .cache import default_path

    cache = default_path()
    return None if cache is None else cache.parent / FILE


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _read(path: Path) -> dict[str, dict[str, float]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recall(name: str) -> int:
    """The cap the account `name` reached last (0: none remembered, or too old)."""
    where = path()
    entry = _read(where).get(_digest(name)) if where is not None else None
    if not isinstance(entry, dict):
        return 0
    cap = entry.get("cap")
    return max(0, cap) if type(cap) is int and _fresh(entry, time.time()) else 0


def remember(caps: dict[str, int]) -> None:
    """Keep the caps these accounts reached (best effort: a run never fails over it)."""
    where = path()
    if where is None or not caps:
        return
    with contextlib.suppress(OSError):
        data = _read(where)
        now = time.time()
        data = {k: v for k, v in data.items() if isinstance(v, dict) and _fresh(v, now)}
        data.update({_digest(n): {"cap": int(c), "saved": now} for n, c in caps.items()})
        where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = where.with_name(f".{FILE}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(temporary, where)


def _fresh(entry: dict[str, float], now: float) -> bool:
    saved = entry.get("saved")
    return isinstance(saved, float | int) and now - saved <= KEEP
