"""The student's side of the hint service: send the answer cell, show what came back.

The kernel holds only the service's address and this student's token (settings `hint_url`,
`hint_token`: TG_MAGIC_HINT_URL, TG_MAGIC_HINT_TOKEN). It never sees the model key, the hidden
tests or a raw model reply, so nothing a student changes in the kernel gives more than this.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ..config import settings
from ..errors import InputError, TgMagicError

_PIPE = "\\|"


class HintServiceError(TgMagicError):
    """The service could not be asked, or said no; the message is one line."""


def ask(name: str, code: str, *, timeout: float = 300.0) -> dict[str, Any]:
    """The service's reply for the answer `code` of variable `name`."""
    url, token = settings.hint_url, settings.hint_token
    if not url:
        raise InputError("no hint service: set TG_MAGIC_HINT_URL (your teacher gives it)")
    body = json.dumps({"variable": name, "code": code}).encode("utf-8", "replace")
    request = urllib.request.Request(
        url.rstrip("/") + "/hint",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token or ''}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:
        try:
            said = str(json.loads(exc.read()).get("error", ""))
        except (ValueError, AttributeError, OSError):
            said = ""
        raise HintServiceError(f"the hint service said: {said or f'HTTP {exc.code}'}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", exc)
        raise HintServiceError(
            f"the hint service at {url} cannot be reached ({why}): try again, or tell your teacher"
        ) from None


def reply_markdown(name: str, reply: dict[str, Any]) -> str:
    """The reply as the student sees it: score, the tests (hidden ones by name), the hint."""
    lines = [f"### Hint for `{name}`", ""]
    tests = reply.get("tests") or []
    if tests:
        passed = sum(1 for t in tests if t.get("passed"))
        points = ""
        if reply.get("possible"):
            points = f", {reply.get('points') or 0:g} of {reply['possible']:g} points"
        lines += [f"**{passed} of {len(tests)} tests passed{points}**", ""]
        lines += ["| test | result |", "|---|---|"]
        for t in tests:
            label = f"`{t.get('name', '?')}`" + (" (hidden)" if t.get("hidden") else "")
            why = t.get("message") or ""
            shown = "passed" if t.get("passed") else "failed" + (f": `{why}`" if why else "")
            lines.append(f"| {label} | {shown.replace('|', _PIPE)} |")
        lines.append("")
    elif reply.get("score") is not None:
        lines += [f"**Score: {reply['score']:.2f}**", ""]
    if reply.get("problem"):
        lines += [f"**Problem:** {reply['problem']}", ""]
    if reply.get("hint"):
        lines += [str(reply["hint"]), ""]
    left = hints_left(name, reply)
    if left:
        lines.append(f"*{left}.*")
    return "\n".join(lines).strip()


def hints_left(name: str, reply: dict[str, Any]) -> str:
    """ "2 hints left this hour (26 for the assignment)" when the hourly limit binds, else
    "26 hints left for `median`": the smaller of the limits is what the student can use."""
    hour, total = reply.get("hints_left_this_hour"), reply.get("hints_left_for_assignment")
    if not isinstance(total, int):
        total = reply.get("hints_left")  # a service of an older version: one count
        if not isinstance(total, int):
            return ""
    if isinstance(hour, int) and hour < total:
        return f"{_hints(hour)} left this hour ({total} for the assignment)"
    return f"{_hints(total)} left for `{name}`"


def _hints(count: int) -> str:
    return f"{count} hint" if count == 1 else f"{count} hints"


def hint_for(name: str, code: str) -> str:
    """`%tghint NAME` with a service configured: the Markdown to show."""
    return reply_markdown(name, ask(name, code))
