"""`tg-magic serve --class DIR`: the teacher's hint service (see tg_magic.classroom.service).

Under JupyterHub (a Hub-managed service), the Hub gives the service JUPYTERHUB_API_URL and
JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_URL / JUPYTERHUB_SERVICE_PREFIX say where to listen,
and JUPYTERHUB_CLIENT_ID / JUPYTERHUB_OAUTH_CALLBACK_URL (with JUPYTERHUB_HOST and
JUPYTERHUB_BASE_URL) are the teacher's OAuth login; students authenticate with their own Hub
token. These are JupyterHub's contract with a service, read here where the process starts, not
tg_magic settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import fail

if TYPE_CHECKING:
    from ..classroom.hub_api import HubAPI
    from ..classroom.hub_oauth import TeacherLogin


def cmd_serve(args: argparse.Namespace) -> int:
    from .. import config
    from ..classroom import private
    from ..classroom.auth import Authenticator
    from ..classroom.class_folder import ClassFolder
    from ..classroom.roster import Roster
    from ..classroom.service import serve

    os.umask(private.UMASK)  # everything this process writes: 0600 files in 0700 folders
    folder = ClassFolder(Path(args.class_dir))
    private.check_private(folder)  # one line with the chmod to run
    key = private.read_key(Path(args.key_file).expanduser()) if args.key_file else None
    fixed = private.make_written_private(folder)
    if fixed:
        print(f"tg-magic serve: {fixed}", file=sys.stderr, flush=True)
    hub = _hub()
    service_url = urllib.parse.urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
    port = args.port if args.port is not None else (service_url.port or 8765)
    host = args.host or service_url.hostname or "127.0.0.1"
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "") if hub else ""
    roster = Roster(Path(args.roster).expanduser() if args.roster else folder.root / "roster.csv")
    if args.roster and not roster.names():
        return fail("serve", f"--roster {args.roster}: no such file, or no login in it")
    if hub and not roster.names() and not args.student_group:
        return fail(
            "serve",
            f"under JupyterHub the class is {roster.path} (login,name) or --student-group "
            "GROUP: give one, or no student gets a hint",
        )
    auth = Authenticator(
        folder.tokens,
        roster,
        hub,
        student_group=args.student_group or "",
        teacher_group=args.teacher_group or "",
    )
    if not 0 <= port < 65536:
        return fail("serve", f"--port {port}: give a port between 1 and 65535")
    settings = folder.settings
    if key is not None:  # set after start: not in /proc/PID/environ; redact() knows the name
        os.environ[private.key_variable(settings.engine)] = key
    config.configure(
        cache=str(folder.cache),
        concurrency=settings.concurrency,
        **({"engine": settings.engine} if settings.engine else {}),
    )
    from ..engines import get_engine

    get_engine(settings.engine)  # no key, a wrong spec: one line now, not at the first student
    try:
        serve(folder, auth, host, port, prefix, _teacher_login(hub, prefix))
    except OSError as exc:
        return fail("serve", f"cannot listen on {host}:{port}: {exc.strerror}; choose --port")
    return 0


def _hub() -> HubAPI | None:
    """The Hub's API when this process runs as a Hub service, else None."""
    from ..classroom.hub_api import HubAPI

    url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    return HubAPI(url, token) if url and token else None


def _teacher_login(hub: HubAPI | None, prefix: str) -> TeacherLogin | None:
    """The teacher's OAuth login through the Hub (None without a Hub)."""
    from ..classroom.hub_oauth import OAuthClient, TeacherLogin

    client_id = os.environ.get("JUPYTERHUB_CLIENT_ID", "")
    if hub is None or not client_id:
        return None
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    base = ("/" + os.environ.get("JUPYTERHUB_BASE_URL", "/").strip("/")).rstrip("/")
    authorize = os.environ.get("JUPYTERHUB_HOST", "") + base + "/hub/api/oauth2/authorize"
    redirect = os.environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or prefix + "oauth_callback"
    return TeacherLogin(OAuthClient(client_id, redirect, authorize, prefix), hub)


HELP = "the teacher's hint service for a class"
DESCRIPTION = (
    "Serve hints to students (%%tghint in their notebooks) from the class "
    "folder's tests, reference solution and model key, which never leave this process. "
    "The class folder and --key-file must be private to the service's Unix user (chmod -R "
    "go-rwx DIR); run the service as a user of its own, not a student's."
)


def arguments(p: Any) -> None:
    p.add_argument("--class", dest="class_dir", required=True, metavar="DIR", help="class folder")
    p.add_argument("--port", type=int, default=None, help="port (default 8765)")
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help="read the model's API key from FILE (mode 0600; default: the environment)",
    )
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--roster",
        metavar="CSV",
        help="the class: a CSV with login and name columns (default DIR/roster.csv); under "
        "JupyterHub only its logins get hints",
    )
    p.add_argument(
        "--student-group",
        metavar="GROUP",
        help="under JupyterHub: members of this Hub group are in the class too",
    )
    p.add_argument(
        "--teacher-group",
        metavar="GROUP",
        help="under JupyterHub: members of this Hub group may open /teacher (Hub admins always)",
    )
    p.set_defaults(func=cmd_serve)
