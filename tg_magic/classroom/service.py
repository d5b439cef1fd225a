"""`tg-magic serve`: the teacher's hint service, a plain HTTP server (stdlib, a thread per
request; model calls share one event loop, so at most `concurrency` are in flight).

    POST /hint      {"variable": NAME, "code": CELL}  with  Authorization: Bearer TOKEN
                    -> {"score", "points", "possible", "tests": [...], "hint", "hints_left",
                        "hints_left_this_hour", "hints_left_for_assignment"}
    GET  /teacher   the class table: the teacher's token (header; ?token= without a Hub), or
                    under JupyterHub the Hub's login (hub_oauth.py) of a Hub admin or a member
                    of --teacher-group
    GET  /oauth_callback   where the Hub sends the teacher back (under JupyterHub)
    GET  /health    "ok"

Under JupyterHub a Hub user gets hints only when on the roster (or in --student-group);
the teacher's own hints are trials, kept out of the class table and the gradebook.

Everything secret stays here: the teacher's tests (hidden ones included), the reference
solution, the model key (this process's environment), the reply cache and the logs. A student
gets the per-test results (hidden tests by name only) and the hint after every leak check;
any failure is one line of JSON `{"error": ...}` with an HTTP status.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import TgMagicError, redact
from ..variable import Variable
from . import gradebook
from .auth import Authenticator, AuthError, Who
from .class_folder import ClassFolder
from .hinting import make_hint
from .hub_api import HubError, HubUser
from .hub_oauth import OAuthRefused, TeacherLogin, cookies
from .records import Records
from .scoring import Assignment, Scored, score_rubric, score_tests
from .teacher_page import teacher_page


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HintService:
    """What a request does, apart from HTTP."""

    def __init__(self, folder: ClassFolder, auth: Authenticator) -> None:
        self.folder = folder
        self.auth = auth
        s = folder.settings
        self.records = Records(folder.logs, s.hints_per_hour, s.hints_per_assignment)
        # Test runs are CPU work: one per core at a time; model calls wait on the provider.
        self.sandbox_slots = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))

    def hint(self, token: str | None, body: bytes) -> dict[str, Any]:
        try:
            who = self.auth.identify(token)
        except AuthError as exc:
            raise Refused(401, str(exc)) from None
        if not who.in_class and not who.teacher:
            raise Refused(
                403,
                f"{who.login} is not on this class's roster: "
                f"ask your teacher to add {who.login} to the roster",
            )
        student = who.login
        request = _json(body)
        name, code = request.get("variable"), request.get("code")
        if not isinstance(name, str) or not isinstance(code, str):
            raise Refused(400, 'send JSON {"variable": NAME, "code": CELL}')
        assignment = self.folder.assignments.get(name)
        if assignment is None:
            known = ", ".join(sorted(self.folder.assignments))
            raise Refused(404, f"no assignment {name[:64]!r} in this class (it has: {known})")
        limit = self.folder.settings.max_cell_chars
        if len(code) > limit:
            raise Refused(413, f"the cell has {len(code):,} characters; the limit is {limit:,}")
        if not code.strip():
            raise Refused(400, f"the cell {name} is empty: write your answer first")
        why = self.records.refusal(student, name, hold=True)
        if why:
            self.records.record(student, {"assignment": name, "status": "refused", "why": why})
            raise Refused(429, why)
        try:  # the held slot counts against the limits until the hint is recorded
            return self._serve(who, name, code, assignment)
        finally:
            self.records.unhold(student, name)

    def _serve(self, who: Who, name: str, code: str, assignment: Assignment) -> dict[str, Any]:
        student, trial = who.login, {} if who.in_class else {"trial": True}  # the teacher's
        try:
            scored, hint = self._grade(code, assignment)
        except TgMagicError as exc:
            failed = {"assignment": name, "status": "failed", "why": str(exc), **trial}
            self.records.record(student, failed)
            raise Refused(502, f"the hint could not be made: {redact(str(exc))[:200]}") from None
        reply = {
            "assignment": name,
            "status": scored.status,
            "problem": scored.problem,
            "score": scored.score,
            "points": scored.earned,
            "possible": scored.possible,
            "tests": scored.outcomes,
            "hint": hint,
        }
        self.records.record(student, {**reply, "status": "served", "code": code, **trial})
        hour, total = self.records.left(student, name)
        reply |= {
            "hints_left": min(hour, total),
            "hints_left_this_hour": hour,
            "hints_left_for_assignment": total,
        }
        if who.in_class:
            points = self.records.best_points(name)
            gradebook.update_gradebook(self.folder.gradebook, name, points, self.auth.names())
        return reply

    def _grade(self, code: str, assignment: Assignment) -> tuple[Scored, str]:
        answer = Variable(code, role_description="answer written by a student", requires_grad=True)
        if assignment.mode == "rubric":
            scored = score_rubric(answer, assignment)
            scored.possible = 10.0
            scored.earned = None if scored.score is None else round(10 * scored.score, 2)
            return scored, make_hint(answer, scored, assignment)
        with self.sandbox_slots:
            scored = score_tests(code, assignment)
        if scored.status != "ok":  # timed out, crashed: the problem line says it, no hint
            return scored, ""
        return scored, make_hint(answer, scored, assignment)

    def teacher(self, who: Who) -> str:
        self.check_teacher(who)
        return teacher_page(self.records.table, sorted(self.folder.assignments), self.auth.names())

    def check_teacher(self, who: Who) -> None:
        if not who.teacher:
            raise Refused(403, f"this page is the teacher's; {who.login} is not the teacher")


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested too deep: not ours
        raise Refused(400, "the request is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, 'send JSON {"variable": NAME, "code": CELL}')
    return data


Headers = Sequence[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # no access log: requests carry tokens
        pass

    def _path(self) -> tuple[str, dict[str, list[str]]]:
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        prefix = self.server.prefix
        if prefix and path.startswith(prefix):
            path = "/" + path[len(prefix) :].lstrip("/")
        return path.rstrip("/") or "/", urllib.parse.parse_qs(parsed.query)

    def _token(self, query: dict[str, list[str]] | None = None) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            return value.strip()
        return (query or {}).get("token", [None])[0]

    def _send(self, status: int, body: bytes, kind: str, headers: Headers = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_POST(self) -> None:
        path, _ = self._path()
        if path != "/hint":
            return self._json(404, {"error": f"no such endpoint {path[:80]}: POST /hint"})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            return self._json(411, {"error": "the request has no Content-Length"})
        most = self.server.service.folder.settings.max_cell_chars * 4 + 4096
        if length < 0:  # rfile.read(-1) would read until the client closes, unbounded
            self.close_connection = True
            return self._json(400, {"error": "the request's Content-Length is negative"})
        if length > most:
            self.close_connection = True
            return self._json(
                413, {"error": f"the request is {length:,} bytes; the limit is {most:,}"}
            )
        body = self.rfile.read(length)
        try:
            self._json(200, self.server.service.hint(self._token(), body))
        except Refused as exc:
            self._json(exc.status, {"error": str(exc)})
        except Exception as exc:  # never a traceback, a path or a key to the student
            print(
                f"tg-magic serve: {type(exc).__name__}: {redact(str(exc))[:300]}", file=sys.stderr
            )
            self._json(500, {"error": "the hint service failed on this request (see its log)"})

    def do_GET(self) -> None:
        path, query = self._path()
        if path in ("/", "/health"):
            return self._send(200, b"tg-magic hint service: ok\n", "text/plain; charset=utf-8")
        try:
            if path == "/teacher":
                return self._teacher(query)
            if path == "/oauth_callback" and self.server.login:
                return self._oauth_callback(query)
        except Refused as exc:
            return self._json(exc.status, {"error": str(exc)})
        except (OAuthRefused, HubError) as exc:
            return self._json(exc.status if exc.status != 401 else 403, {"error": str(exc)})
        return self._json(404, {"error": f"no such page {path[:80]}"})

    def _secure(self) -> bool:
        return self.headers.get("X-Forwarded-Proto", "").split(",")[0].strip() == "https"

    def _teacher(self, query: dict[str, list[str]]) -> None:
        """The class table for the teacher: a token in the header (or, without a Hub, in the
        URL), else under a Hub the OAuth session, else off to the Hub's login."""
        service, login = self.server.service, self.server.login
        token = self._token(None if login else query)  # under a Hub no token in a URL
        if token or login is None:
            if not token:
                raise Refused(
                    401,
                    "this page needs the teacher's token from `tg-magic tokens "
                    "--teacher`: open /teacher?token=TOKEN",
                )
            try:
                who = service.auth.identify(token)
            except AuthError as exc:
                raise Refused(401, str(exc)) from None
            return self._page(service.teacher(who))
        jar = cookies(self.headers.get("Cookie"))
        access = login.session_token(jar)
        if access is not None:
            try:
                user = login.hub.user(access)
            except HubError as exc:
                if exc.status != 401:
                    raise
                login.end_session(jar)  # logged out or revoked at the Hub: log in again
            else:
                return self._page(service.teacher(self._hub_who(user)))
        where, set_cookies = login.begin(self._secure())
        self._send(
            302, b"", "text/plain", [("Location", where), *(("Set-Cookie", c) for c in set_cookies)]
        )

    def _oauth_callback(self, query: dict[str, list[str]]) -> None:
        login = self.server.login
        assert login is not None
        access = login.finish(query, cookies(self.headers.get("Cookie")))
        self.server.service.check_teacher(self._hub_who(login.hub.user(access)))
        headers = [("Location", self.server.prefix + "/teacher")]
        headers += [("Set-Cookie", c) for c in login.open_session(access, self._secure())]
        self._send(302, b"", "text/plain", headers)

    def _hub_who(self, user: HubUser) -> Who:
        try:
            return self.server.service.auth.hub_who(user)
        except AuthError as exc:
            raise Refused(403, str(exc)) from None

    def _page(self, page: str) -> None:
        self._send(200, page.encode("utf-8", "replace"), "text/html; charset=utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def __init__(
        self,
        address: tuple[str, int],
        service: HintService,
        prefix: str,
        login: TeacherLogin | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.service = service
        self.prefix = prefix.rstrip("/")
        self.login = login


def serve(
    folder: ClassFolder,
    auth: Authenticator,
    host: str,
    port: int,
    prefix: str = "",
    login: TeacherLogin | None = None,
) -> None:
    """Serve until interrupted; says "listening on URL" on stdout once the port is open."""
    server = _Server((host, port), HintService(folder, auth), prefix, login)
    url = f"http://{host}:{server.server_address[1]}{prefix.rstrip('/')}/"
    students = len(auth.names())
    print(
        f"tg-magic serve: listening on {url} (class {folder.root}: "
        f"{len(folder.assignments)} assignments, {students} students on the roster"
        f"{', JupyterHub users' if auth.hub else ''})",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
