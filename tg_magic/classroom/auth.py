"""Who is asking: per-student tokens the teacher hands out (only their hashes are kept, with an
expiry date), or, under JupyterHub, the student's own Hub token checked against the Hub, its
user in the class only when on the roster (or the class's Hub group).

`tg-magic tokens` writes `tokens.json`; the service reads it at every check, so new students
and revoked tokens take effect without a restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .hub_api import HubAPI, HubError, HubUser
from .results import write_atomic
from .roster import Roster, read_roster

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
    people = read_roster(roster) if roster else []
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


@dataclass(frozen=True)
class Who:
    """Who a request comes from, and what they may do."""

    login: str
    in_class: bool  # on the roster (its tokens, its file or its Hub group): in the class table
    teacher: bool = False  # may open /teacher; their own hints are trials, never in the table


class Authenticator:
    """Token -> Who. Local tokens always work (the local teacher token is the teacher); with a Hub,
    a Hub token works too: its user is in the class when on the roster file (or in
    `student_group`), and the teacher when a Hub admin (or in `teacher_group`)."""

    def __init__(
        self,
        store: Path,
        roster: Roster | None = None,
        hub: HubAPI | None = None,
        *,
        student_group: str = "",
        teacher_group: str = "",
    ) -> None:
        self.store = store
        self.roster = roster or Roster(None)
        self.hub = hub
        self.student_group = student_group
        self.teacher_group = teacher_group

    def names(self) -> dict[str, str]:
        """login -> name for the class table and the gradebook: the roster file's, else the
        name a token was issued with."""
        issued = {r["login"]: r.get("name", "") for r in load_store(self.store)["tokens"].values()}
        issued.pop(TEACHER, None)
        return {**issued, **self.roster.names()}

    def identify(self, token: str | None) -> Who:
        if not token:
            raise AuthError("no token: set TG_MAGIC_HINT_TOKEN to the token your teacher gave you")
        digest = hash_token(token)
        for known, record in load_store(self.store)["tokens"].items():
            if hmac.compare_digest(known, digest):
                if record.get("expires") and dt.date.today().isoformat() > record["expires"]:
                    raise AuthError(
                        f"this token expired on {record['expires']}: ask your teacher for a new one"
                    )
                login = str(record["login"])
                return Who(login, in_class=login != TEACHER, teacher=login == TEACHER)
        if self.hub is None:
            raise AuthError("unknown token: check TG_MAGIC_HINT_TOKEN (ask your teacher for yours)")
        try:
            return self.hub_who(self.hub.user(token))
        except HubError as exc:
            raise AuthError(str(exc)) from None

    def hub_who(self, user: HubUser) -> Who:
        """What the Hub's answer makes of its user (also for the teacher's OAuth login)."""
        if user.name == TEACHER:  # the teacher's token is only ever the local one
            raise AuthError("JupyterHub gave a user named like the teacher: not accepted")
        in_class = user.name in self.roster.names() or (
            bool(self.student_group) and self.student_group in user.groups
        )
        teacher = user.admin or (bool(self.teacher_group) and self.teacher_group in user.groups)
        return Who(user.name, in_class=in_class, teacher=teacher)
