"""Finding the submitted notebooks, naming their students, reading them, and finding the answer
cell in each (`%%tgvariable NAME`, or a cell tagged NAME).

Only regular files inside the submissions folder are read: on a shared machine a student can put
a symlink or a hard link to someone else's file there, or make a folder a link. The folder
named on the command line is trusted (and a link in that path the person running it made); under
it, every part of a notebook's path is opened without following a link, and the notebook is read
from the descriptor that was checked (one link, a regular file), so nothing can be swapped in
between the check and the read.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..text import first_line


class BrokenSubmission(Exception):
    """The submission cannot be scored as it is; the message says why."""


class NotInFolder(BrokenSubmission):
    """Not a regular file inside the submissions folder: never read, scored or copied."""

    def __init__(self, why: str) -> None:
        super().__init__(f"not a regular file in the submissions folder: {why}")


@dataclass(frozen=True)
class Submission:
    """A notebook found in a submissions folder: `path` as found (shown on its row), `root` the
    folder (resolved when it was found), `parts` the path under it, each part opened without
    following a link; `refused` says why it is not read when that was known when it was found."""

    path: Path
    root: str
    parts: tuple[str, ...]
    refused: str = ""

    @classmethod
    def file(cls, path: str | Path) -> Submission:
        """A notebook named by its path: its folder is trusted, the file itself is checked."""
        absolute = Path(os.path.abspath(Path(path).expanduser()))
        return cls(Path(path), os.path.realpath(absolute.parent), (absolute.name,))


def _me() -> set[int]:
    """Whose links in a path given on the command line are followed: root's and one's own."""
    return {0, os.geteuid()} if hasattr(os, "geteuid") else set()


def _foreign_link(path: Path) -> Path | None:
    """The first part of `path` (absolute) that is a symlink made by someone else, if any."""
    trusted = _me()
    if not trusted:
        return None
    for part in (*reversed(path.parents), path):
        try:
            info = os.lstat(part)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode) and info.st_uid not in trusted:
            return part
    return None


def _given(raw: str | Path) -> tuple[Path, Submission | None]:
    """A path from the command line, absolute, and a refused Submission for it when a link in it
    was made by someone else (a student's symlinked folder, named by a shell's `*`)."""
    path = Path(raw).expanduser()
    absolute = Path(os.path.abspath(path))
    foreign = _foreign_link(absolute)
    if foreign is None:
        return absolute, None
    why = f"{foreign.name} is a symbolic link made by another user"
    return absolute, Submission(path, os.path.realpath(absolute.parent), (absolute.name,), why)


def _walk(root: str) -> Iterator[tuple[str, ...]]:
    """The parts of every .ipynb under `root` (checkpoints skipped), and of every symlinked
    folder, which is not followed (it gets a row that says so)."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder).relative_to(root).parts
        for name in sorted(dirs):
            if os.path.islink(os.path.join(folder, name)) and name != ".ipynb_checkpoints":
                yield (*here, name)
        dirs[:] = sorted(
            d
            for d in dirs
            if d != ".ipynb_checkpoints" and not os.path.islink(os.path.join(folder, d))
        )
        for name in sorted(files):
            if name.endswith(".ipynb"):
                yield (*here, name)


def find_submissions(paths: Iterable[str | Path]) -> list[Submission]:
    """The .ipynb files named, or found in the folders named (sorted; checkpoints skipped)."""
    found: list[Submission] = []
    for raw in paths:
        absolute, refused = _given(raw)
        if refused is not None:
            found.append(refused)
        elif absolute.is_dir():
            root = os.path.realpath(absolute)
            shown = Path(raw).expanduser()
            found += [Submission(shown.joinpath(*p), root, p) for p in sorted(_walk(root))]
        elif os.path.lexists(absolute):  # a file, or a link: the read says what it is
            found.append(Submission.file(raw))
        else:
            raise InputError(f"submission {str(raw)!r} not found: give .ipynb files or folders")
    unique: dict[tuple[str, tuple[str, ...]], Submission] = {}
    for sub in found:
        unique.setdefault((sub.root, sub.parts), sub)
    return list(unique.values())


def _open_under(root: str, parts: tuple[str, ...]) -> int:
    """A descriptor of root/parts, opened part by part without following a link."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | os.O_NOFOLLOW
    folder = getattr(os, "O_DIRECTORY", 0)
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | folder)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            extra = os.O_NONBLOCK | os.O_NOCTTY if last else folder  # a pipe never blocks
            try:
                opened = os.open(part, flags | extra, dir_fd=fd)
            except OSError as exc:
                raise _refusal(exc, part, fd) from None
            os.close(fd)
            fd = opened
        return fd
    except BaseException:
        os.close(fd)
        raise


def _refusal(exc: OSError, name: str, folder: int) -> Exception:
    """Why `name` (in the folder open as `folder`) could not be opened: a link or not a file
    (refused), else the error itself."""
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except OSError:
        return exc
    if stat.S_ISLNK(mode):
        return NotInFolder(f"{name} is a symbolic link")
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        return NotInFolder(f"{name} is not a regular file")
    return exc


def _open_checked_by_path(root: str, parts: tuple[str, ...]) -> int:
    """Where a descriptor cannot open a part without following a link: each part looked at,
    then the file opened and found to be the one looked at."""
    path = root
    info = os.lstat(root)
    for part in parts:
        path = os.path.join(path, part)
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise NotInFolder(f"{part} is a symbolic link")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise NotInFolder(f"{parts[-1]} changed while it was opened")
    return fd


def read_submission(sub: Submission) -> bytes:
    """The bytes of a submitted notebook, read from the descriptor that was checked; raises
    NotInFolder (not read) for a symlink anywhere under the folder, a file with another hard
    link (it may be someone else's file), or anything that is not a regular file."""
    if sub.refused:
        raise NotInFolder(sub.refused)
    safe = hasattr(os, "O_NOFOLLOW") and os.open in os.supports_dir_fd
    fd = (_open_under if safe else _open_checked_by_path)(sub.root, sub.parts)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        name = sub.parts[-1]
        if not stat.S_ISREG(info.st_mode):
            raise NotInFolder(f"{name} is not a regular file")
        if info.st_nlink != 1:
            why = f"{name} has {info.st_nlink} hard links (it may be someone else's file)"
            raise NotInFolder(why)
        return handle.read()


def student_names(files: Sequence[Path | Submission]) -> dict[Any, str]:
    """A name per notebook: its file name without .ipynb, with its folder when two collide."""
    paths = {f: f.path if isinstance(f, Submission) else f for f in files}
    names = {f: paths[f].stem for f in files}
    stems = [paths[f].stem for f in files]
    for f in files:
        if stems.count(paths[f].stem) > 1:
            names[f] = f"{paths[f].parent.name}-{paths[f].stem}"
    for index, f in enumerate(files):  # still the same (same folder names): number them
        if list(names.values()).count(names[f]) > 1:
            names[f] = f"{names[f]}-{index + 1}"
    return names


def _nbgrader_root(path: Path) -> Path | None:
    """nbgrader's `submitted/` folder when `path` is it or holds it, else None."""
    if path.name == "submitted" and path.is_dir():
        return path
    inner = path / "submitted"
    return inner if inner.is_dir() else None


def _mentions(sub: Submission, target: str) -> bool:
    try:
        return target.encode() in read_submission(sub)
    except (OSError, BrokenSubmission):
        return False


def _kind(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def _plain(path: str) -> bool:
    """A regular file with one link (what read_submission reads), as it looks now."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def _nbgrader(
    shown: Path, root: str, target: str, assignment: str | None, seen: set[str]
) -> dict[Submission, str]:
    """submitted/STUDENT/ASSIGNMENT/*.ipynb: a student's or an assignment's folder that is a
    link, and a notebook that is not a regular file, get a row that says so."""
    graded: dict[Submission, str] = {}
    for student in sorted(os.listdir(root)):
        mode = _kind(os.path.join(root, student))
        if stat.S_ISLNK(mode):
            graded[Submission(shown / student, root, (student,))] = student
        if not stat.S_ISDIR(mode):
            continue
        for folder in sorted(os.listdir(os.path.join(root, student))):
            inner = os.path.join(root, student, folder)
            mode = _kind(inner)
            if not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                continue
            if assignment is not None and folder != assignment:
                continue
            if stat.S_ISLNK(mode):
                seen.add(folder)
                graded[Submission(shown / student / folder, root, (student, folder))] = student
                continue
            notebooks = [
                Submission(shown / student / folder / name, root, (student, folder, name))
                for name in sorted(os.listdir(inner))
                if name.endswith(".ipynb") and not stat.S_ISDIR(_kind(os.path.join(inner, name)))
            ]
            if not notebooks:
                continue
            seen.add(folder)
            plain = [n for n in notebooks if _plain(os.path.join(root, *n.parts))]
            others = [n for n in notebooks if n not in plain]  # its row says why it is not read
            chosen = next((n for n in plain if _mentions(n, target)), None)
            graded[chosen or (others or plain)[0]] = student
    return graded


def discover(
    paths: Iterable[str | Path], target: str, assignment: str | None = None
) -> tuple[dict[Submission, str], str | None]:
    """Notebook -> student, and the assignment's name when the layout gives one.

    nbgrader's layout (`submitted/STUDENT/ASSIGNMENT/*.ipynb`, given as the course folder or
    its `submitted/`): the student is the folder's name; of several notebooks the one that
    mentions `target` is taken. Anything else: every .ipynb found, named by its file.
    """
    flat: list[str | Path] = []
    graded: dict[Submission, str] = {}
    seen: set[str] = set()
    for raw in paths:
        absolute, refused = _given(raw)
        found = _nbgrader_root(absolute) if refused is None else None
        if found is None:
            flat.append(raw)
            continue
        inner, refused = _given(found)
        if refused is not None:
            flat.append(found)
            continue
        shown = Path(raw).expanduser() / found.relative_to(absolute)
        graded.update(_nbgrader(shown, os.path.realpath(inner), target, assignment, seen))
    if len(seen) > 1:
        raise InputError(
            f"several assignments in nbgrader's submitted/ ({', '.join(sorted(seen))}): "
            "choose one with --assignment NAME"
        )
    found_flat = student_names(find_submissions(flat)) if flat else {}
    return {**graded, **found_flat}, (assignment or next(iter(seen), None))


def _magic_target(source: str) -> tuple[str, str] | None:
    """(NAME, kind) of a `%%tgvariable NAME [--kind K]` cell, else None."""
    first = source.lstrip().split("\n", 1)[0]
    try:
        words = shlex.split(first)
    except ValueError:
        words = first.split()
    if len(words) < 2 or words[0] != "%%tgvariable":
        return None
    kind = "prompt"
    if "--kind" in words[:-1]:
        kind = words[words.index("--kind") + 1]
    return words[1], kind


def find_answer(nb: Any, target: str) -> tuple[int, str]:
    """The index and the text of the answer cell: the `%%tgvariable TARGET` cell, else the
    first cell tagged TARGET or nbgrader's solution cell with grade_id TARGET. The magic line
    is not part of the text."""
    tagged = None
    for index, cell in enumerate(nb.cells):
        source = cell.get("source", "")
        magic = _magic_target(source) if cell.get("cell_type") == "code" else None
        if magic is not None and magic[0] == target:
            return index, source.lstrip().split("\n", 1)[1] if "\n" in source.lstrip() else ""
        meta = cell.get("metadata", {})
        tags = meta.get("tags", [])
        graded = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        solution = graded.get("solution") and graded.get("grade_id") == target  # nbgrader's
        if tagged is None and ((isinstance(tags, list) and target in tags) or solution):
            body = source
            if magic is not None:
                body = source.lstrip().split("\n", 1)[1] if "\n" in source.lstrip() else ""
            tagged = index, body
    if tagged is None:
        raise BrokenSubmission(
            f"no answer cell: no `%%tgvariable {target}` cell, no cell tagged {target} and no "
            f"nbgrader solution cell {target}"
        )
    return tagged


_PYTHON_CELL_MAGICS = {"tgvariable", "time", "timeit", "capture", "prun"}
_IPYTHON_CALL = re.compile(r"get_ipython\(\)\.\w+\(.*\)")


def code_only(source: str) -> str:
    """A cell's Python as the sandbox runs it: IPython's `%`, `!` and `?` lines become `pass`
    (indentation kept, so blocks still parse), a Python cell magic's line (`%%tgvariable`,
    `%%time`) goes, a cell in another language (`%%bash`) is empty."""
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        name = (lines[first].lstrip()[2:].split() or [""])[0]
        if name not in _PYTHON_CELL_MAGICS:
            return ""
        lines[first] = ""
    text = "\n".join(lines)
    if not any(mark in text for mark in ("%", "!", "?")):
        return text
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        # a first line that is not blank: IPython drops leading blank lines
        done = TransformerManager().transform_cell("pass\n" + text).split("\n")[1:]
    except Exception:  # not valid IPython either: the parse of the code says why
        return text
    if len(done) < len(lines):
        return text
    out = []
    for before, after in zip(lines, done, strict=False):
        if before == after or "get_ipython()." not in after:
            out.append(before)
        elif after.lstrip().startswith("get_ipython()."):
            out.append(after[: len(after) - len(after.lstrip())] + "pass")
        else:
            out.append(_IPYTHON_CALL.sub("None", after))
    return "\n".join(out)


def read_notebook(data: bytes) -> Any:
    """The notebook in `data` (the bytes read_submission gave)."""
    import nbformat
    from nbformat.reader import NotJSONError

    try:
        return nbformat.reads(data.decode("utf-8"), as_version=4)
    except NotJSONError:
        raise BrokenSubmission("not a notebook: the file is not valid JSON (cut short?)") from None
    except UnicodeDecodeError:
        raise BrokenSubmission("not a notebook: the file is not UTF-8 text") from None
    except Exception as exc:  # not a notebook, unreadable: the row says why
        raise BrokenSubmission(
            f"not a readable notebook: {first_line(str(exc)) or type(exc).__name__}"
        ) from None
