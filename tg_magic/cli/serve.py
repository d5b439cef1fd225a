"""`tg-magic serve --class DIR`: the teacher's hint service (see tg_magic.classroom.service).

Under JupyterHub (a Hub-managed service), the Hub gives the service JUPYTERHUB_API_URL and
JUPYTERHUB_API_TOKEN, and JUPYTERHUB_SERVICE_URL / JUPYTERHUB_SERVICE_PREFIX say where to listen;
students then authenticate with their own Hub token. These are JupyterHub's contract with a
service, read here where the process starts, not tg_magic settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from . import fail


def cmd_serve(args: argparse.Namespace) -> int:
    from .. import config
    from ..classroom import private
    from ..classroom.auth import Authenticator
    from ..classroom.class_folder import ClassFolder
    from ..classroom.service import serve

    os.umask(private.UMASK)  # everything this process writes: 0600 files in 0700 folders
    folder = ClassFolder(Path(args.class_dir))
    private.check_private(folder)  # one line with the chmod to run
    key = private.read_key(Path(args.key_file).expanduser()) if args.key_file else None
    fixed = private.make_written_private(folder)
    if fixed:
        print(f"tg-magic serve: {fixed}", file=sys.stderr, flush=True)
    hub_api = (
        os.environ.get("JUPYTERHUB_API_URL") if os.environ.get("JUPYTERHUB_API_TOKEN") else None
    )
    service_url = urllib.parse.urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))
    port = args.port if args.port is not None else (service_url.port or 8765)
    host = args.host or service_url.hostname or "127.0.0.1"
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "") if hub_api else ""
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
        serve(folder, Authenticator(folder.tokens, hub_api), host, port, prefix)
    except OSError as exc:
        return fail("serve", f"cannot listen on {host}:{port}: {exc.strerror}; choose --port")
    return 0


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
    p.set_defaults(func=cmd_serve)
