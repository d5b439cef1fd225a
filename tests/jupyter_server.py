"""A Jupyter server for the browser tests: JupyterLab or Notebook 7, started from a given
command (`python -m jupyterlab`, `python -m notebook`, `<venv>/bin/jupyter lab`) on a free
loopback port with no token, no password and no XSRF check (the tests create kernel sessions
through its REST API), stopped with its kernels and its whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.fake_api import FakeMessagesAPI

# JupyterLab's own: no news, no update check (Notebook 7 has neither option).
LAB_ARGS = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
)
START = 60.0  # s: the longest a server may take to answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def disable_extensions(config: Path, *extensions: str) -> None:
    """page_config.json in the JUPYTER_CONFIG_DIR `config`: the extensions in `extensions` off,
    and no "get notified about Jupyter news?" toast."""
    off = {"@jupyterlab/apputils-extension:announcements": True, **dict.fromkeys(extensions, True)}
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": off}))


def model_env(fake: FakeMessagesAPI, base: Path) -> dict[str, str]:
    """The environment that points the server's kernels at `fake`, with a cache in `base`."""
    return {
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "test-key-for-the-fake-server-0002",
        "TG_MAGIC_CACHE": str(base / "cache.sqlite"),
    }


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/api/status", timeout=2).close()
        return True
    except OSError:
        return False


def start_session(url: str, name: str) -> None:
    """Start the kernel session of the notebook `name` before a page opens it: otherwise the
    frontend may ask which kernel to start (when the kernel specs arrive after the notebook)."""
    request = urllib.request.Request(
        f"{url}/api/sessions",
        data=json.dumps(
            {"path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}}
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=30).close()


def shut_kernels(url: str) -> None:
    """Shut the kernels down through the server (they run in sessions of their own)."""
    try:
        with urllib.request.urlopen(f"{url}/api/kernels", timeout=5) as response:
            kernels = json.load(response)
        for kernel in kernels:
            request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}", method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
    except OSError:
        pass  # the server is gone already; stopping it is all that is left


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its kernels (its whole process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def jupyter_server(
    command: Sequence[str],
    *,
    root: Path,
    env: Mapping[str, str],
    log: Path,
    args: Sequence[str] = (),
    cwd: Path | None = None,
) -> Iterator[str]:
    """Run `command` (a Jupyter server application) serving `root`, with `env` and the extra
    `args`, its output in the file `log`; yield its URL once it answers. On the way out its
    kernels are shut down and its process group is stopped."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *command,
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                "--ServerApp.disable_check_xsrf=True",  # lets the tests create kernel sessions
                f"--ServerApp.root_dir={root}",
                *args,
            ],
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + START
            while not answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(command)} did not start:\n{log.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            shut_kernels(url)
            stop(proc)
