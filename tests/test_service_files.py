"""The hint service on a shared machine, probed as a student on it would: what a real `tg-magic
serve` process wrote is 0600 in 0700 folders, it refuses a class folder or key file other users
could read, its key comes from a private file and goes to the provider only, and (as root, with
a second Unix user) a student cannot read the logs, the cache or the solution."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_api import FakeMessagesAPI
from tests.test_cli import command
from tests.test_service import (
    BUGGY,
    FAIR,
    SERVICE_KEY,
    Service,
    listening_url,
    make_class,
    scripted_model,
    start_service,
)

STUDENT_USER = "tgstudent"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def tree(folder: Path) -> Iterator[Path]:
    yield folder
    for where, folders, files in os.walk(folder):
        for name in folders + files:
            yield Path(where, name)


def assert_private(folder: Path) -> None:
    for path in tree(folder):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), f"{path}: {mode(path):04o}"


def serve_with_key_file(folder: Path, fake: FakeMessagesAPI, key_file: Path) -> subprocess.Popen:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "TG_MAGIC"))},
        "ANTHROPIC_BASE_URL": fake.base_url,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    return subprocess.Popen(
        command("serve", "--class", folder, "--port", "0", "--key-file", key_file),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )  # fmt: skip


def hint_once(
    folder: Path, tokens: dict[str, str], process: subprocess.Popen, secret: str = ""
) -> str:
    """Alice asks for a hint; the service's stdout and stderr."""
    try:
        service = Service(listening_url(process), folder, tokens, process)
        environ = Path(f"/proc/{process.pid}/environ")
        if secret and environ.exists():  # what another process of its user could read
            assert secret.encode() not in environ.read_bytes()
        status, reply = service.post({"variable": "median", "code": BUGGY}, tokens["alice"])
        assert status == 200 and FAIR in reply["hint"], reply
        assert_private(folder)  # while it runs: the cache's -wal and -shm files too
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    return out + err


def test_everything_the_service_wrote_is_0600_in_0700_folders(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    scripted_model(fake_api)
    folder, tokens = make_class(tmp_path)
    before = os.umask(0)  # a careless caller's umask: the service sets its own
    try:
        process = start_service(folder, fake_api)
    finally:
        os.umask(before)
    hint_once(folder, tokens, process)
    for written in ("logs/alice.jsonl", "cache.sqlite", "gradebook.csv", "tokens.json"):
        assert (folder / written).is_file(), written
    assert_private(folder)


def test_files_an_older_version_left_readable_are_made_private_in_one_line(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    scripted_model(fake_api)
    folder, _ = make_class(tmp_path)
    (folder / "logs").mkdir(mode=0o755)
    (folder / "logs" / "bob.jsonl").write_text("")
    (folder / "gradebook.csv").write_text("Student,SIS Login ID\n")
    for path, old in (("logs", 0o755), ("logs/bob.jsonl", 0o644), ("gradebook.csv", 0o664)):
        os.chmod(folder / path, old)
    process = start_service(folder, fake_api)
    try:
        listening_url(process)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    said = [line for line in err.splitlines() if "private" in line]
    assert len(said) == 1 and "made 3 files" in said[0], err
    assert "logs/bob.jsonl" in said[0] and "gradebook.csv" in said[0]
    assert_private(folder)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("assignments/median/solution.py", 0o644),
        ("assignments/median/tests.py", 0o604),
        ("assignments/median/tests.py", 0o620),  # writable: a student could change the tests
        ("assignments/median", 0o755),
        (".", 0o755),
        ("tokens.json", 0o640),
        ("key", 0o644),
        ("key", 0o640),
    ],
)
def test_serve_refuses_what_other_users_can_read_in_one_line_with_the_chmod(
    fake_api: FakeMessagesAPI, tmp_path: Path, path: str, bad: int
) -> None:
    folder, _ = make_class(tmp_path)
    key = tmp_path / "key"
    key.write_text(SERVICE_KEY + "\n")
    key.chmod(0o600)
    target = key if path == "key" else folder / path
    target.chmod(bad)
    done = subprocess.run(
        command("serve", "--class", folder, "--port", "0", "--key-file", key),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert str(target.resolve()) in line and f"mode {bad:04o}" in line, line
    fix = f"chmod 600 {key}" if path == "key" else f"chmod -R go-rwx {folder.resolve()}"
    assert line.endswith(f"run: {fix}"), line
    assert SERVICE_KEY not in done.stderr + done.stdout
    assert "listening" not in done.stdout


def test_a_key_file_that_is_not_one_key_is_one_line_without_its_text(tmp_path: Path) -> None:
    folder, _ = make_class(tmp_path)
    key = tmp_path / "key"
    key.write_text(f"ANTHROPIC_API_KEY = {SERVICE_KEY}\n")
    key.chmod(0o600)
    done = subprocess.run(
        command("serve", "--class", folder, "--port", "0", "--key-file", key),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    said = f"tg-magic serve: --key-file {key}: write the key alone on one line in it"
    assert done.stderr.strip() == said


def test_the_key_file_key_reaches_the_provider_header_and_nothing_else(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    scripted_model(fake_api)
    folder, tokens = make_class(tmp_path)
    key = tmp_path / "key"
    key.write_text(SERVICE_KEY + "\n")
    key.chmod(0o600)
    said = hint_once(folder, tokens, serve_with_key_file(folder, fake_api, key), SERVICE_KEY)
    assert SERVICE_KEY not in said
    assert fake_api.requests
    for request in fake_api.requests:
        auth = {k: v for k, v in request["headers"].items() if k in ("x-api-key", "authorization")}
        assert SERVICE_KEY in json.dumps(auth), auth.keys()  # the SDK's auth header
        others = {k: v for k, v in request["headers"].items() if k not in auth}
        assert SERVICE_KEY not in json.dumps(request["body"]) + json.dumps(others)
    for path in tree(folder):
        if path.is_file():
            assert SERVICE_KEY.encode() not in path.read_bytes(), path


def _student_reads(paths: list[Path]) -> dict[str, str]:
    """What the other Unix user gets opening each path: "read" or the exception's name."""
    probe = (
        "import json, sys\nout = {}\nfor p in sys.argv[1:]:\n"
        "    try:\n        open(p, 'rb').read(1)\n        out[p] = 'read'\n"
        "    except OSError as e:\n        out[p] = type(e).__name__\nprint(json.dumps(out))\n"
    )
    python = shutil.which("python3", path="/usr/bin:/bin") or "python3"
    done = subprocess.run(
        [python, "-c", probe, *map(str, paths)],
        user=STUDENT_USER, cwd="/", capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout))


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or not shutil.which("useradd"),
    reason="needs root to make a second Unix user",
)
def test_another_unix_user_cannot_read_the_log_the_cache_or_the_solution(
    fake_api: FakeMessagesAPI,
) -> None:
    if subprocess.run(["id", STUDENT_USER], capture_output=True, check=False).returncode:
        subprocess.run(["useradd", "-m", STUDENT_USER], capture_output=True, check=True)
    root = Path(tempfile.mkdtemp(prefix="tg-shared-", dir="/tmp"))
    try:
        root.chmod(0o711)  # like a home folder others may pass through
        scripted_model(fake_api)
        folder, tokens = make_class(root)
        hint_once(folder, tokens, start_service(folder, fake_api))
        control = root / "public.txt"
        control.write_text("anyone may read this")
        control.chmod(0o644)
        secrets = [
            folder / "logs" / "alice.jsonl",
            folder / "cache.sqlite",
            folder / "assignments" / "median" / "solution.py",
        ]
        assert _student_reads([control]) == {str(control): "read"}  # the probe works
        assert set(_student_reads(secrets).values()) == {"PermissionError"}
        # Even a teacher who opens the folders by mistake leaves the files the service's own.
        for path in tree(folder):
            if path.is_dir():
                path.chmod(0o711)
        assert set(_student_reads(secrets).values()) == {"PermissionError"}
    finally:
        shutil.rmtree(root, ignore_errors=True)
