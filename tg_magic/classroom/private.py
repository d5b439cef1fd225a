"""The class folder stays the service's own on a shared machine (a JupyterHub where every student
is a Unix user): `tg-magic serve` refuses a class folder, tests, rubric, solution, tokens.json or
key file that other users could read or write, and everything it writes is 0600 in 0700 folders
(its umask, and the modes given where files and folders are made). Files an older version wrote
readable by others (logs, cache, gradebook) are made private at start, said in one line.

Students who share the service's Unix user can read anything it can (its files, its key through
/proc): the service runs as a user of its own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InputError
from .class_folder import ClassFolder

FILE_MODE, FOLDER_MODE, UMASK = 0o600, 0o700, 0o077


def _open_to_others(path: Path) -> tuple[str, int] | None:
    """("readable" or "writable", mode) when group or other users may use `path`, else None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    others = mode & (0o077 if path.is_dir() else 0o066)
    if not others:
        return None
    return ("readable" if others & 0o055 else "writable"), mode


def _secrets(folder: ClassFolder) -> list[Path]:
    """The class folder and what in it a student must never read, folders before their files."""
    paths = [folder.root, folder.root / "assignments"]
    for name in sorted(folder.assignments):
        where = folder.root / "assignments" / name
        paths += [where, where / "tests.py", where / "rubric.md", where / "solution.py"]
    return [*paths, folder.tokens]


def check_private(folder: ClassFolder) -> None:
    """One line naming the first path other users may read or write, and the chmod to run."""
    for path in _secrets(folder):
        found = _open_to_others(path)
        if found:
            raise InputError(
                f"{path} is {found[0]} by other users of this machine (mode {found[1]:04o}); "
                f"run: chmod -R go-rwx {folder.root}"
            )


def read_key(key_file: Path) -> str:
    """The API key in `key_file` (checked private first); no message ever holds its text."""
    check = _open_to_others(key_file)
    if check:
        raise InputError(
            f"--key-file {key_file} is {check[0]} by other users of this machine "
            f"(mode {check[1]:04o}); run: chmod 600 {key_file}"
        )
    try:
        key = key_file.read_bytes().decode("utf-8").strip()
    except FileNotFoundError:
        raise InputError(f"--key-file {key_file}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"--key-file {key_file} is a folder: give the file with the key") from None
    except PermissionError:
        raise InputError(f"--key-file {key_file}: this user cannot read it") from None
    except UnicodeDecodeError:
        raise InputError(f"--key-file {key_file} is not text: write the key alone in it") from None
    if not key or any(c.isspace() for c in key):
        raise InputError(f"--key-file {key_file}: write the key alone on one line in it")
    return key


def key_variable(engine: str | None) -> str:
    """The environment variable the class's engine reads its key from."""
    spec = (engine or "anthropic").strip().lower()
    return "ANTHROPIC_API_KEY" if "anthropic" in spec or "claude" in spec else "OPENAI_API_KEY"


def make_written_private(folder: ClassFolder) -> str:
    """Make what an older version wrote (logs, cache, gradebook) 0600 in 0700 folders; one line
    saying so when there was any, else ""."""
    root = folder.root
    written = [folder.logs, *sorted(folder.logs.glob("*.jsonl"))] if folder.logs.is_dir() else []
    written += [root / f"cache.sqlite{end}" for end in ("", "-wal", "-shm", "-journal")]
    written += [folder.gradebook, *sorted(root.glob(".gradebook.csv.*.tmp"))]
    fixed = []
    for path in written:
        if _open_to_others(path):
            os.chmod(path, FOLDER_MODE if path.is_dir() else FILE_MODE)
            fixed.append(str(path.relative_to(root)))
    if not fixed:
        return ""
    return (
        f"made {len(fixed)} files an older version wrote readable by others private "
        f"(0600, folders 0700): {', '.join(fixed[:5])}{', ...' if len(fixed) > 5 else ''}"
    )
