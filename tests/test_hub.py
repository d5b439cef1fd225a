"""The hint service under a real JupyterHub 6 (one Hub for the module, on free loopback ports, in
a temporary folder): the service is a Hub-managed service configured as the README's "Set-up 2"
says (HUB_CONFIG below is that text), students and the teacher log in through the Hub's login
form with a cookie-keeping HTTP client, the Hub's REST API (an admin service token) makes users,
tokens and groups, and the students' kernels use the token the Hub gave their own server.

Checked: rostered students get hints with their own Hub token, the "hints left" count under an
hourly limit, a Hub user not on the roster / without a token / with a revoked token is refused
(the revocation within 10 s), the teacher's page through the Hub's OAuth login (admin and
--teacher-group let in, a student 403, no token in any URL), the gradebook (roster names, no
teacher row); and the attacks: look-alike logins, a callback replayed with another state, a
student's token or cookie on /teacher, a cookie from another service's prefix.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("jupyterhub")

import tg_magic as tg  # noqa: E402
from tests.cells import Cells  # noqa: E402
from tests.fake_api import FakeMessagesAPI  # noqa: E402
from tests.test_cli import command  # noqa: E402
from tests.test_service import (  # noqa: E402
    BUGGY,
    FAIR,
    SERVICE_KEY,
    SOLUTION,
    make_class,
    scripted_model,
)

VENV_BIN = Path(sys.executable).parent
CHP = Path(__file__).resolve().parents[1] / ".venv/chp/node_modules/.bin/configurable-http-proxy"
PASSWORD = "class-password"
ADMIN_TOKEN = "test-admin-" + "0123456789abcdef0123456789abcdef"
SERVICE_USER = "tghints"  # the service's own Unix user (as root), as the README says
AS_ROOT = os.name == "posix" and os.geteuid() == 0 and shutil.which("useradd") is not None
OAUTH_PARAMETERS = {
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "code_challenge",
    "code_challenge_method",
    "code",
}

# README, Set-up 2 (with {placeholders} for this machine's paths and ports).
HUB_CONFIG = """
c.JupyterHub.services = [{{"name": "tg-hints", "url": "http://127.0.0.1:{service_port}",
    "command": [{tg_magic}, "serve", "--class", "{folder}", "--key-file", "{key}",
                "--teacher-group", "teachers"],
    {user}"oauth_no_confirm": True}}]
c.JupyterHub.load_roles = [{{"name": "tg-hints-teachers", "groups": ["teachers"],
    "scopes": ["access:services!service=tg-hints"]}}]
c.Spawner.environment = {{"TG_MAGIC_HINT_URL": "http://127.0.0.1:{port}/services/tg-hints/",
    "TG_MAGIC_HINT_TOKEN": lambda spawner: spawner.api_token}}
"""

# This test's Hub around it: ports, files, a shared password, an admin token, a second class's
# service (its cookies must not open the first), a group of students and one of assistants.
TEST_CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{root}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/jupyterhub_cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{password}"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"teach"}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{root}/home/{{username}}"
c.Spawner.cmd = ["{singleuser}"]
c.Spawner.args = {singleuser_args}
c.Spawner.start_timeout = 120
service = c.JupyterHub.services[0]
service["command"] += ["--student-group", "class"]
service["environment"] = {{"ANTHROPIC_BASE_URL": "{fake_api}"}}
c.JupyterHub.services += [
    {{"name": "tg-hints-b", "url": "http://127.0.0.1:{service_b_port}",
      "command": [{tg_magic}, "serve", "--class", "{folder_b}", "--key-file", "{key}"],
      {user}"oauth_no_confirm": True, "environment": service["environment"]}},
    {{"name": "test-admin", "api_token": "{admin_token}"}},
]
c.JupyterHub.load_roles += [
    {{"name": "admin", "services": ["test-admin"]}},
    {{"name": "assistants", "groups": ["assistants"],
      "scopes": ["access:services!service=tg-hints"]}},
]
"""


@dataclass
class Hub:
    url: str  # the proxy: what browsers and kernels reach
    root: Path
    folder: Path  # the class folder of tg-hints
    process: subprocess.Popen[str]

    @property
    def service(self) -> str:
        return self.url + "/services/tg-hints/"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"token {ADMIN_TOKEN}"}
        reply = requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs
        )
        assert reply.status_code < 300, (method, path, reply.status_code, reply.text[:300])
        return reply.json() if reply.content else None

    def user(self, name: str, groups: tuple[str, ...] = ()) -> str:
        """A Hub user (made by the admin) and a new API token of theirs."""
        quoted = urllib.parse.quote(name, safe="")
        if not requests.get(f"{self.url}/hub/api/users/{quoted}", headers=_admin(), timeout=30).ok:
            self.api("POST", f"/users/{quoted}")
        for group in groups:
            self.api("POST", f"/groups/{group}/users", json={"users": [name]})
        return str(self.api("POST", f"/users/{quoted}/tokens", json={"note": "test"})["token"])

    def browser(self, name: str) -> Any:
        """A browser session logged in to the Hub through its login form."""
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=30)
        form = {"username": name, "password": PASSWORD, "_xsrf": session.cookies.get("_xsrf")}
        reply = session.post(f"{self.url}/hub/login", data=form, allow_redirects=False, timeout=30)
        assert reply.status_code == 302, (name, reply.status_code, reply.text[:300])
        return session

    def hint(self, token: str | None, variable: str = "median", code: str = BUGGY) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"variable": variable, "code": code}
        return requests.post(self.service + "hint", json=body, headers=headers, timeout=120)


def _admin() -> dict[str, str]:
    return {"Authorization": f"token {ADMIN_TOKEN}"}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for(check: Callable[[], Any], what: str, deadline: float = 120.0) -> Any:
    """Poll `check` until it returns something true (an event), within an overall deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            found = check()
        except requests.RequestException:
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _own(paths: list[Path], user: str) -> None:
    """chown -R to `user`: the service's own files."""
    entry = pwd.getpwnam(user)
    for top in paths:
        inside = [Path(w, n) for w, ds, fs in os.walk(top) for n in ds + fs]
        for path in [top, *inside]:
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _service_user_can_run() -> bool:
    """As root, with a Python other users may run: the service gets a Unix user of its own,
    as the README says. (Here the venv's interpreter may sit under a private /root.)"""
    if not AS_ROOT:
        return False
    if subprocess.run(["id", SERVICE_USER], capture_output=True, check=False).returncode:
        subprocess.run(["useradd", "-m", SERVICE_USER], capture_output=True, check=True)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import tg_magic"], user=SERVICE_USER, cwd="/",
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            capture_output=True, check=False,
        )  # fmt: skip
    except PermissionError:  # the interpreter is not theirs to run
        return False
    return probe.returncode == 0


def _py(value: object) -> str:
    return ", ".join(json.dumps(str(part)) for part in value)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    if not CHP.exists():
        pytest.skip("configurable-http-proxy is not installed (bash scripts/setup.sh --test)")
    root = Path(tempfile.mkdtemp(prefix="tg-hub-", dir="/tmp"))
    root.chmod(0o711)  # the service's own user passes through to its class folder
    fake = FakeMessagesAPI().__enter__()
    process, hub_port = None, 0
    try:
        scripted_model(fake)
        limits = "hints_per_hour = 2\nhints_per_assignment = 5\n"
        folder, _ = make_class(root, limits)
        folder_b, _ = make_class(root / "b")
        (root / "b").chmod(0o711)
        key = root / "key"
        key.write_text(SERVICE_KEY + "\n")
        key.chmod(0o600)
        user = ""
        if _service_user_can_run():
            _own([folder, folder_b, key], SERVICE_USER)
            user = f'"user": "{SERVICE_USER}", '
        port, hub_port, proxy_api, service_port, service_b_port = _free_ports(5)
        values = {
            "port": port,
            "hub_port": hub_port,
            "proxy_api_port": proxy_api,
            "service_port": service_port,
            "service_b_port": service_b_port,
            "tg_magic": _py(command()),
            "folder": folder,
            "folder_b": folder_b,
            "key": key,
            "user": user,
            "root": root,
            "chp": CHP,
            "password": PASSWORD,
            "singleuser": VENV_BIN / "jupyterhub-singleuser",
            "singleuser_args": '["--allow-root"]' if os.geteuid() == 0 else "[]",
            "fake_api": fake.base_url,
            "admin_token": ADMIN_TOKEN,
        }
        config = root / "jupyterhub_config.py"
        config.write_text(HUB_CONFIG.format(**values) + TEST_CONFIG.format(**values))
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "TG_MAGIC"))
        }
        environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        environment["PATH"] = f"{VENV_BIN}:{environment.get('PATH', '')}"
        log = open(root / "jupyterhub.log", "w")  # noqa: SIM115 (closed with the Hub)
        process = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
            cwd=root, env=environment, stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        made = Hub(url, root, folder, process)

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError("the Hub stopped:\n" + (root / "jupyterhub.log").read_text())
            for service in ("tg-hints", "tg-hints-b"):
                if requests.get(f"{url}/services/{service}/health", timeout=5).status_code != 200:
                    return False
            return True

        wait_for(up, "the Hub and its services to answer")
        seen = _started_by_the_hub(hub_port)  # the check at the end sees what runs now
        assert sum("tg_magic" in line or "tg-magic" in line for _, line in seen) == 2, seen
        assert sum(str(CHP) in line for _, line in seen) == 1, seen
        made.api("POST", "/groups/class")  # the roles above made "teachers" and "assistants"
        yield made
    finally:
        if process is not None:
            _stop(process, hub_port)
        fake.__exit__(None, None, None)
        shutil.rmtree(root, ignore_errors=True)


def _stop(process: subprocess.Popen[str], hub_port: int) -> None:
    """SIGTERM, as a system's service manager stops a Hub: it stops its services, the students'
    servers and its proxy. Whatever it left (a Hub that crashed leaves its proxy) is ended."""
    was_running = process.poll() is None
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the Hub's own session, started above
        process.wait(timeout=30)
        raise AssertionError("the Hub did not stop on SIGTERM") from None
    left = _started_by_the_hub(hub_port)
    for pid, _ in left:
        os.kill(pid, signal.SIGTERM)
    assert not (was_running and left), f"still running after the Hub stopped: {left}"


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _running() -> Iterator[tuple[int, dict[str, str], str]]:
    """(pid, environment, command line) of the processes this test can see."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        yield int(pid), _environ(pid), line


def _started_by_the_hub(hub_port: int) -> list[tuple[int, str]]:
    """Its services and servers (they ask its API) and its proxy (its error page is the Hub's)."""
    mark = f"127.0.0.1:{hub_port}/"
    return [
        (pid, line[:120])
        for pid, env, line in _running()
        if mark in env.get("JUPYTERHUB_API_URL", "") or (str(CHP) in line and mark in line)
    ]


def _processes(match: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
    return [env for _, env, _ in _running() if match(env)]


def server_environment(hub: Hub, name: str) -> dict[str, str]:
    """Start `name`'s own Jupyter server through the Hub; the environment its kernels inherit."""
    hub.api("POST", f"/users/{name}/server")

    def ready() -> dict[str, str] | None:
        model = hub.api("GET", f"/users/{name}")
        if not model["server"] or model["pending"]:
            return None
        found = _processes(
            lambda env: env.get("JUPYTERHUB_USER") == name and "TG_MAGIC_HINT_TOKEN" in env
        )
        return found[0] if found else None

    return dict(wait_for(ready, f"{name}'s server to start"))


def ask_in_kernel(
    cells: Cells, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], code: str = BUGGY
) -> str:
    """What %tghint shows in a kernel of this student's server (its hint URL and token)."""
    monkeypatch.setenv("TG_MAGIC_HINT_URL", environment["TG_MAGIC_HINT_URL"])
    tg.configure(hint_token=environment["TG_MAGIC_HINT_TOKEN"])
    cells.run("%%tgvariable median --kind code\n" + code)
    shown = cells.run("%tghint median")
    return shown + (f"\n{cells.error}" if cells.error else "")  # a refusal is one line


def gradebook(hub: Hub) -> dict[str, dict[str, str]]:
    path = hub.folder / "gradebook.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["SIS Login ID"]: row for row in csv.DictReader(handle)}


def test_rostered_students_get_hints_with_their_servers_hub_token(
    hub: Hub, cells: Cells, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.browser("alice"), hub.browser("bob")  # they log in; the Hub makes their accounts
    alice, bob = server_environment(hub, "alice"), server_environment(hub, "bob")
    assert alice["TG_MAGIC_HINT_TOKEN"] == alice["JUPYTERHUB_API_TOKEN"]  # the server's own
    assert alice["TG_MAGIC_HINT_URL"] == hub.service
    first = ask_in_kernel(cells, monkeypatch, alice)
    assert "1 of 3 tests passed, 1 of 6 points" in first and FAIR in first
    assert "1 hint left this hour (4 for the assignment)" in first  # 2 an hour, 5 in all
    second = ask_in_kernel(cells, monkeypatch, alice)
    assert "0 hints left this hour (3 for the assignment)" in second
    third = ask_in_kernel(cells, monkeypatch, alice)
    assert "hint limit reached: 2 hints per hour" in third and FAIR not in third
    solved = ask_in_kernel(cells, monkeypatch, bob, SOLUTION.split("\n", 1)[1])
    assert "3 of 3 tests passed, 6 of 6 points" in solved
    assert "1 hint left this hour (4 for the assignment)" in solved
    book = gradebook(hub)
    assert book["alice"]["Student"] == "Alice A" and book["alice"]["median"] == "1"
    assert book["bob"]["Student"] == "Bob B" and book["bob"]["median"] == "6"


def test_who_is_not_on_the_roster_gets_no_hint_and_no_row(hub: Hub) -> None:
    hub.browser("erin")  # a real Hub user of another class
    refused = hub.hint(hub.user("erin"))
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "erin is not on this class's roster: ask your teacher to add erin to the roster"
    }
    assert hub.hint(None).status_code == 401
    assert hub.hint("not-a-hub-token").status_code == 401
    # Look-alikes of a rostered login and of the service's name for the teacher.
    for name in ("Alice", "\uff41lice", "alice\u200b", "(teacher)"):
        token = hub.user(name)
        reply = hub.hint(token)
        assert reply.status_code in (401, 403), (name, reply.text)
        assert "hint" not in reply.json()
        headers = {"Authorization": f"token {token}"}
        page = requests.get(hub.service + "teacher", headers=headers, timeout=30)
        assert page.status_code in (401, 403) and "Class hints" not in page.text
    logs = sorted(p.name for p in (hub.folder / "logs").glob("*.jsonl"))
    assert all(
        log.split("-")[0].split(".")[0] in {"alice", "bob", "carol", "teach"} for log in logs
    )
    assert set(gradebook(hub)) <= {"alice", "bob", "carol"}


def test_a_hub_group_can_be_the_class_and_leaving_it_takes_effect(hub: Hub) -> None:
    token = hub.user("gina")
    probe = {"variable": "no_such_assignment"}  # authenticated: 404, no hint is used

    def status() -> int:
        return int(hub.hint(token, **probe).status_code)

    assert status() == 403
    hub.api("POST", "/groups/class/users", json={"users": ["gina"]})
    wait_for(lambda: status() == 404, "gina's group to count", deadline=10)
    hub.api("DELETE", "/groups/class/users", json={"users": ["gina"]})
    wait_for(lambda: status() == 403, "gina's leaving to count", deadline=10)


def test_a_token_revoked_at_the_hub_stops_working_within_10_seconds(hub: Hub) -> None:
    token = hub.user("carol")
    token_id = requests.get(
        hub.url + "/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30
    ).json()["token_id"]
    probe = {"variable": "no_such_assignment"}
    assert hub.hint(token, **probe).status_code == 404  # known, and now in the service's cache
    hub.api("DELETE", f"/users/carol/tokens/{token_id}")
    revoked = time.monotonic()
    wait_for(lambda: hub.hint(token, **probe).status_code == 401, "the refusal", deadline=10)
    assert time.monotonic() - revoked < 10


def _teacher_page(session: Any, hub: Hub, service: str = "tg-hints") -> Any:
    return session.get(f"{hub.url}/services/{service}/teacher", timeout=60)


def test_the_teacher_logs_in_with_the_hub_and_sees_the_class_by_roster_names(hub: Hub) -> None:
    assert hub.hint(hub.user("carol")).status_code == 200  # a student asked
    teacher_token = hub.user("teach")
    trial = hub.hint(teacher_token)  # the teacher tries a hint: a trial, not a student's
    assert trial.status_code == 200 and FAIR in trial.json()["hint"]
    browser = hub.browser("teach")
    page = _teacher_page(browser, hub)
    assert page.status_code == 200 and "<h1>Class hints</h1>" in page.text
    assert page.url == hub.service + "teacher"
    assert "<td>carol (Carol C)</td>" in page.text and "<td>teach" not in page.text
    # The way in: the Hub's authorize URL, the callback, the page; no token in any URL.
    urls = [r.url for r in page.history] + [page.url]
    assert "/hub/api/oauth2/authorize?" in urls[1] and "/oauth_callback?" in urls[2]
    for url in urls:
        assert set(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)) <= OAUTH_PARAMETERS
        assert teacher_token not in url and ADMIN_TOKEN not in url
    assert teacher_token not in (hub.root / "jupyterhub.log").read_text()  # the proxy's too
    cookie = next(
        c for c in page.history[-1].raw.headers.getlist("Set-Cookie") if c.startswith("service-")
    )
    name, value = cookie.split(";")[0].split("=", 1)
    assert name == "service-tg-hints" and len(value) >= 40
    assert {"HttpOnly", "SameSite=Lax", "Path=/services/tg-hints/"} <= {
        part.strip() for part in cookie.split(";")
    }
    # The teacher's trial is in neither the table nor the gradebook.
    assert set(gradebook(hub)) <= {"alice", "bob", "carol"} and "carol" in gradebook(hub)
    # A member of --teacher-group; the admin's own Hub token in a header.
    hub.browser("tina"), hub.user("tina", groups=("teachers",))
    assert _teacher_page(hub.browser("tina"), hub).status_code == 200
    headers = {"Authorization": f"token {teacher_token}"}
    assert requests.get(hub.service + "teacher", headers=headers, timeout=30).status_code == 200


def test_students_cannot_open_the_teacher_page(hub: Hub) -> None:
    alice = hub.browser("alice")
    page = _teacher_page(alice, hub)  # her Hub cookies: the Hub itself refuses the login
    assert page.status_code == 403 and "Class hints" not in page.text
    token = hub.user("alice")
    for headers in ({"Authorization": f"token {token}"}, {"Authorization": f"Bearer {token}"}):
        reply = requests.get(hub.service + "teacher", headers=headers, timeout=30)
        assert reply.status_code == 403 and "not the teacher" in reply.json()["error"]
    # An assistant the Hub lets use the service, not the teacher: the service says no.
    hub.user("sam", groups=("assistants",))
    sam = hub.browser("sam")
    page = _teacher_page(sam, hub)
    assert page.status_code == 403 and page.json()["error"].endswith("sam is not the teacher")
    assert "service-tg-hints" not in sam.cookies.get_dict()
    # The local teacher token in a URL is not a way in under the Hub: off to the Hub's login.
    tokens = json.loads((hub.folder / "tokens.json").read_text())["tokens"]
    assert any(r["login"] == "(teacher)" for r in tokens.values())
    reply = requests.get(hub.service + "teacher?token=anything", allow_redirects=False, timeout=30)
    assert reply.status_code == 302 and "/hub/api/oauth2/authorize?" in reply.headers["Location"]


def _start_login(session: Any, hub: Hub) -> str:
    """The first step of the OAuth login: the Hub's authorize URL this browser is sent to."""
    reply = session.get(hub.service + "teacher", allow_redirects=False, timeout=30)
    assert reply.status_code == 302
    return urllib.parse.urljoin(hub.url, reply.headers["Location"])


def test_a_callback_replayed_with_another_state_is_refused(hub: Hub) -> None:
    teacher, sam = hub.browser("teach"), hub.browser("sam")
    teacher_authorize = _start_login(teacher, hub)
    teacher_state = urllib.parse.parse_qs(urllib.parse.urlsplit(teacher_authorize).query)
    sam_authorize = _start_login(sam, hub)
    to_callback = sam.get(sam_authorize, allow_redirects=False, timeout=30)  # the Hub: a code
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(to_callback.headers["Location"]).query)
    forged = {"code": code["code"][0], "state": teacher_state["state"][0]}
    reply = sam.get(hub.service + "oauth_callback", params=forged, timeout=30)
    assert reply.status_code == 403 and "state is not your browser's" in reply.json()["error"]
    # The teacher's own login still completes (the forged try did not use up the state) ...
    done = teacher.get(teacher_authorize, timeout=60)
    assert done.status_code == 200 and "<h1>Class hints</h1>" in done.text
    # ... and its callback, replayed with the state cookie copied, is refused: used once.
    callback = done.history[0].headers["Location"]
    replay = requests.Session()
    state = teacher_state["state"][0]
    replay.cookies.set("service-tg-hints-oauth-state", state, path="/services/tg-hints/")
    again = replay.get(urllib.parse.urljoin(hub.url, callback), timeout=30)
    assert again.status_code == 403 and "used or is too old" in again.json()["error"]


def test_a_cookie_from_another_service_prefix_or_a_forged_one_is_no_session(hub: Hub) -> None:
    teacher = hub.browser("teach")
    other = _teacher_page(teacher, hub, "tg-hints-b")  # the teacher of class b logs in there
    assert other.status_code == 200
    value = teacher.cookies.get("service-tg-hints-b", path="/services/tg-hints-b/")
    assert value
    for cookie in (
        f"service-tg-hints-b={value}",
        f"service-tg-hints={value}",
        "service-tg-hints=" + "A" * 43,
    ):
        reply = requests.get(
            hub.service + "teacher", headers={"Cookie": cookie}, allow_redirects=False, timeout=30
        )
        assert reply.status_code == 302 and "oauth2/authorize" in reply.headers["Location"]
