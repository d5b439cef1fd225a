"""JupyterHub's REST API as the hint service uses it, with urllib: who owns a token
(GET {api}/user, which every Hub token may ask, and which answers the user's name, `admin` and
`groups`) and the OAuth code exchange of the teacher's login (POST {api}/oauth2/token).

No jupyterhub import: tg-magic does not depend on it, and the service is a stdlib HTTP server
that JupyterHub's tornado-based HubOAuth cannot plug into. The Hub's answers are cached for
CACHE_SECONDS at most, so a token revoked at the Hub (or a user taken out of a group) stops
working within that time.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

CACHE_SECONDS = 5.0  # the brief's bound is 10 s; half of it leaves room for a slow Hub
_MOST_CACHED = 10_000


class HubError(Exception):
    """The Hub refused the token (status 401) or could not answer (502); one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HubUser:
    name: str
    admin: bool
    groups: frozenset[str]


class HubAPI:
    def __init__(self, api_url: str, service_token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.service_token = service_token  # the service's own: only for the code exchange
        self._seen: dict[str, tuple[HubUser, float]] = {}
        self._lock = threading.Lock()

    def user(self, token: str) -> HubUser:
        """The Hub's user for `token` (cached CACHE_SECONDS); HubError when it has none."""
        key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
        if seen and now - seen[1] < CACHE_SECONDS:
            return seen[0]
        model = self._call("/user", headers={"Authorization": f"token {token}"})
        name = model.get("name")
        if model.get("kind", "user") != "user" or not isinstance(name, str) or not name:
            raise HubError(401, "this JupyterHub token is not a user's")
        groups = model.get("groups") or []
        user = HubUser(name, model.get("admin") is True, frozenset(map(str, groups)))
        with self._lock:
            if len(self._seen) >= _MOST_CACHED:
                self._seen = {k: v for k, v in self._seen.items() if now - v[1] < CACHE_SECONDS}
            self._seen[key] = (user, now)
        return user

    def token_for_code(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> str:
        """The OAuth access token for an authorization code (once: the Hub forgets the code)."""
        form = urllib.parse.urlencode(
            {
                "client_id": client_id,
                "client_secret": self.service_token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        ).encode()
        reply = self._call(
            "/oauth2/token",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
            refused="JupyterHub did not accept this login (an old or reused link): log in again",
        )
        token = reply.get("access_token")
        if not isinstance(token, str) or not token:
            raise HubError(502, "JupyterHub gave no access token")
        return token

    def _call(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        refused: str = "JupyterHub does not know this token: log in to the Hub again",
    ) -> dict[str, Any]:
        request = urllib.request.Request(self.api_url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 403, 404):
                raise HubError(401, refused) from None
            raise HubError(502, f"JupyterHub could not check it (HTTP {exc.code})") from None
        except (urllib.error.URLError, OSError, ValueError):
            raise HubError(502, "JupyterHub could not be reached to check it") from None
        if not isinstance(answer, dict):
            raise HubError(502, "JupyterHub's answer is not a JSON object")
        return answer
