"""The teacher's login to /teacher under JupyterHub: the Hub's OAuth authorization-code flow,
with the service's oauth_client_id and its /oauth_callback (hub_api.py makes the calls).

/teacher without a session: a random `state` (kept here 10 min, used once, with a PKCE
verifier) goes in the Hub's authorize URL and in a state cookie; the Hub logs the teacher in
and sends the browser back to /oauth_callback?code=...&state=...; the state must equal the
cookie's and be one this process issued and has not used; the code becomes an access token; the
session cookie is a random id for it. Both cookies are HttpOnly, SameSite=Lax, scoped to the
service's prefix, Secure over https. No token ever appears in a URL the service makes. The
access token is asked of the Hub again (cached at most hub_api.CACHE_SECONDS) at every page,
so a logout or revocation at the Hub ends the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from .hub_api import HubAPI

STATE_SECONDS = 600.0
SESSION_SECONDS = 12 * 3600.0
_MOST_PENDING = 1000  # unauthenticated requests each make a state: bounded


class OAuthRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OAuthClient:
    """The service as the Hub registered it (JUPYTERHUB_CLIENT_ID, _OAUTH_CALLBACK_URL)."""

    client_id: str
    redirect_uri: str  # exactly as registered: the Hub compares it
    authorize_url: str  # the Hub's, as the browser reaches it
    prefix: str  # the service's URL prefix: the cookies' Path


def cookies(header: str | None) -> dict[str, str]:
    """The request's cookies (an unparsable header: none)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header or "")
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


class TeacherLogin:
    def __init__(self, client: OAuthClient, hub: HubAPI) -> None:
        self.client = client
        self.hub = hub
        self.session_cookie = client.client_id
        self.state_cookie = client.client_id + "-oauth-state"
        self._states: dict[str, tuple[str, float]] = {}  # state -> (PKCE verifier, made)
        self._sessions: dict[str, tuple[str, float]] = {}  # session id -> (access token, made)
        self._lock = threading.Lock()

    def _cookie(self, name: str, value: str, seconds: float, secure: bool) -> str:
        flags = f"Path={self.client.prefix}; HttpOnly; SameSite=Lax; Max-Age={int(seconds)}"
        return f"{name}={value}; {flags}" + ("; Secure" if secure else "")

    def begin(self, secure: bool) -> tuple[str, list[str]]:
        """(the Hub's authorize URL to redirect to, the Set-Cookie header for the state)."""
        state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        now = time.monotonic()
        with self._lock:
            self._states = {s: v for s, v in self._states.items() if now - v[1] < STATE_SECONDS}
            while len(self._states) >= _MOST_PENDING:
                self._states.pop(next(iter(self._states)))
            self._states[state] = (verifier, now)
        challenge = hashlib.sha256(verifier.encode()).digest()
        query = urllib.parse.urlencode(
            {
                "client_id": self.client.client_id,
                "redirect_uri": self.client.redirect_uri,
                "response_type": "code",
                "state": state,
                "code_challenge": base64.urlsafe_b64encode(challenge).decode().rstrip("="),
                "code_challenge_method": "S256",
            }
        )
        cookie = self._cookie(self.state_cookie, state, STATE_SECONDS, secure)
        return f"{self.client.authorize_url}?{query}", [cookie]

    def finish(self, query: dict[str, list[str]], jar: dict[str, str]) -> str:
        """The access token of a callback whose state this browser was given; OAuthRefused."""
        state = (query.get("state") or [""])[0]
        code = (query.get("code") or [""])[0]
        mine = jar.get(self.state_cookie, "")
        if not state or not mine or not hmac.compare_digest(state.encode(), mine.encode()):
            raise OAuthRefused(403, "this login's state is not your browser's: open /teacher again")
        with self._lock:
            pending = self._states.pop(state, None)
        if pending is None or time.monotonic() - pending[1] >= STATE_SECONDS:
            raise OAuthRefused(403, "this login link was used or is too old: open /teacher again")
        if not code:
            raise OAuthRefused(400, "the Hub sent no code: open /teacher again")
        client = self.client
        return self.hub.token_for_code(code, client.client_id, client.redirect_uri, pending[0])

    def open_session(self, access_token: str, secure: bool) -> list[str]:
        """Set-Cookie headers: the new session's cookie, the state cookie cleared."""
        session = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._sessions = {
                s: v for s, v in self._sessions.items() if now - v[1] < SESSION_SECONDS
            }
            self._sessions[session] = (access_token, now)
        return [
            self._cookie(self.session_cookie, session, SESSION_SECONDS, secure),
            self._cookie(self.state_cookie, "", 0, secure),
        ]

    def session_token(self, jar: dict[str, str]) -> str | None:
        """The Hub access token of this browser's session, if it has a live one."""
        session = jar.get(self.session_cookie, "")
        with self._lock:
            found = self._sessions.get(session) if session else None
        if found is None or time.monotonic() - found[1] >= SESSION_SECONDS:
            return None
        return found[0]

    def end_session(self, jar: dict[str, str]) -> None:
        with self._lock:
            self._sessions.pop(jar.get(self.session_cookie, ""), None)
