"""Who is asking: per-student tokens the teacher hands out (only their hashes are kept, with an
expiry date), or, under JupyterHub, the student's own Hub token checked against the Hub.

`tg-magic tokens` writes `tokens.json`; the service reads it at every check, so new students
and revoked tokens take effect without a restart.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .results import write_atomic

TEACHER = "(teacher)"


class AuthError(Exception):
    """The request's token is missing, unknown or expired; the message says which."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Issued:
    login: str
    name: str
    token: str
    expires: str


def _roster(path: Path) -> list[tuple[str, str, str]]:
    """(login, name, expires) per row: columns login (or student / username / the first one),
    optional name and expires (YYYY-MM-DD)."""
    if not path.is_file():
        raise InputError(f"--students {path}: file not found (a CSV with a login column)")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if not fields:
            raise InputError(f"--students {path} is empty: one row per student, a login column")
        key = next((f for f in ("login", "student", "username", "email") if f in fields), fields[0])
        rows = []
        for raw in reader:
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            if row.get(key):
                rows.append((row[key], row.get("name", "") or row[key], row.get("expires", "")))
    return rows


def _date(text: str, where: str) -> str:
    if not text:
        return ""
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise InputError(f"{where}: expiry {text!r} is not a date: write YYYY-MM-DD") from None


def issue_tokens(
    store: Path, roster: Path | None, expires: str = "", *, teacher: bool = False
) -> list[Issued]:
    """New tokens for every student of the roster (and the teacher's with `teacher`); the store
    keeps only hashes. An existing student's old token stops working."""
    default = _date(expires, "--expires")
    data = load_store(store)
    issued = []
    people = _roster(roster) if roster else []
    logins = {login for login, _, _ in people}
    data["tokens"] = {h: r for h, r in data["tokens"].items() if r["login"] not in logins}
    if teacher:
        people.append((TEACHER, "the teacher", ""))
        data["tokens"] = {h: r for h, r in data["tokens"].items() if r["login"] != TEACHER}
    for login, name, until in people:
        token = "tgm_" + secrets.token_urlsafe(24)
        when = _date(until, f"{roster}, {login}") or default
        data["tokens"][hash_token(token)] = {"login": login, "name": name, "expires": when}
        issued.append(Issued(login, name, token, when))
    write_atomic(store, json.dumps(data, indent=1, sort_keys=True))  # 0600 from its creation
    return issued


def load_store(store: Path) -> dict[str, dict[str, dict[str, str]]]:
    if not store.is_file():
        return {"tokens": {}}
    try:
        data = json.loads(store.read_text(encoding="utf-8"))
    except ValueError:
        raise InputError(f"{store} is not valid JSON: run tg-magic tokens again") from None
    return data if isinstance(data.get("tokens"), dict) else {"tokens": {}}


class Authenticator:
    """Token -> login. Local tokens always work (the teacher's always is local); with `hub_api`
    a student's JupyterHub token is accepted too, checked with GET {hub_api}/user."""

    def __init__(self, store: Path, hub_api: str | None = None) -> None:
        self.store = store
        self.hub_api = hub_api.rstrip("/") if hub_api else None
        self._hub_seen: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def names(self) -> dict[str, str]:
        return {r["login"]: r.get("name", "") for r in load_store(self.store)["tokens"].values()}

    def login(self, token: str | None) -> str:
        if not token:
            raise AuthError("no token: set TG_MAGIC_HINT_TOKEN to the token your teacher gave you")
        digest = hash_token(token)
        for known, record in load_store(self.store)["tokens"].items():
            if hmac.compare_digest(known, digest):
                if record.get("expires") and dt.date.today().isoformat() > record["expires"]:
                    raise AuthError(
                        f"this token expired on {record['expires']}: ask your teacher for a new one"
                    )
                return str(record["login"])
        if self.hub_api is not None:
            return self._hub_login(token)
        raise AuthError("unknown token: check TG_MAGIC_HINT_TOKEN (ask your teacher for yours)")

    def _hub_login(self, token: str) -> str:
        digest = hash_token(token)
        with self._lock:
            seen = self._hub_seen.get(digest)
        if seen and time.monotonic() - seen[1] < 60:
            return seen[0]
        request = urllib.request.Request(
            f"{self.hub_api}/user", headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                user = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise AuthError(
                    "JupyterHub does not know this token: log in to the Hub again"
                ) from None
            raise AuthError(f"JupyterHub could not check the token (HTTP {exc.code})") from None
        except (urllib.error.URLError, OSError, ValueError):
            raise AuthError("JupyterHub could not be reached to check the token") from None
        name = str(user.get("name") or "")
        if not name:
            raise AuthError("JupyterHub gave no user for this token")
        if name == TEACHER:  # the teacher is only ever the local teacher token
            raise AuthError("JupyterHub gave a user named like the teacher: not accepted")
        with self._lock:
            self._hub_seen[digest] = (name, time.monotonic())
        return name
