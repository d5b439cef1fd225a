"""Finding the submitted notebooks, naming their students, reading them, and finding the answer
cell in each (`%%tgvariable NAME`, or a cell tagged NAME)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..text import first_line


class BrokenSubmission(Exception):
    """The submission cannot be scored as it is; the message says why."""


def find_submissions(paths: Iterable[str | Path]) -> list[Path]:
    """The .ipynb files named, or found in the folders named (sorted; checkpoints skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*.ipynb")
                if ".ipynb_checkpoints" not in p.parts and p.is_file()
            )
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"submission {str(raw)!r} not found: give .ipynb files or folders")
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def student_names(files: list[Path]) -> dict[Path, str]:
    """A name per notebook: its file name without .ipynb, with its folder when two collide."""
    names = {f: f.stem for f in files}
    stems = [f.stem for f in files]
    for f in files:
        if stems.count(f.stem) > 1:
            names[f] = f"{f.parent.name}-{f.stem}"
    for f in files:  # still the same (same folder names): number them
        if list(names.values()).count(names[f]) > 1:
            names[f] = f"{names[f]}-{files.index(f) + 1}"
    return names


def _nbgrader_root(path: Path) -> Path | None:
    """nbgrader's `submitted/` folder when `path` is it or holds it, else None."""
    if path.name == "submitted" and path.is_dir():
        return path
    inner = path / "submitted"
    return inner if inner.is_dir() else None


def _mentions(path: Path, target: str) -> bool:
    try:
        return target in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def discover(
    paths: Iterable[str | Path], target: str, assignment: str | None = None
) -> tuple[dict[Path, str], str | None]:
    """Notebook -> student, and the assignment's name when the layout gives one.

    nbgrader's layout (`submitted/STUDENT/ASSIGNMENT/*.ipynb`, given as the course folder or
    its `submitted/`): the student is the folder's name; of several notebooks the one that
    mentions `target` is taken. Anything else: every .ipynb found, named by its file.
    """
    flat: list[str | Path] = []
    graded: dict[Path, str] = {}
    seen: set[str] = set()
    for raw in paths:
        root = _nbgrader_root(Path(raw).expanduser())
        if root is None:
            flat.append(raw)
            continue
        for student in sorted(p for p in root.iterdir() if p.is_dir()):
            for folder in sorted(p for p in student.iterdir() if p.is_dir()):
                if assignment is not None and folder.name != assignment:
                    continue
                notebooks = sorted(folder.glob("*.ipynb"))
                if notebooks:
                    seen.add(folder.name)
                    chosen = next((n for n in notebooks if _mentions(n, target)), notebooks[0])
                    graded[chosen] = student.name
    if len(seen) > 1:
        raise InputError(
            f"several assignments in nbgrader's submitted/ ({', '.join(sorted(seen))}): "
            "choose one with --assignment NAME"
        )
    found = {**graded, **student_names(find_submissions(flat))} if flat else graded
    return found, (assignment or next(iter(seen), None))


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
    first cell tagged TARGET. The magic line is not part of the text."""
    tagged = None
    for index, cell in enumerate(nb.cells):
        source = cell.get("source", "")
        magic = _magic_target(source) if cell.get("cell_type") == "code" else None
        if magic is not None and magic[0] == target:
            return index, source.lstrip().split("\n", 1)[1] if "\n" in source.lstrip() else ""
        tags = cell.get("metadata", {}).get("tags", [])
        if tagged is None and isinstance(tags, list) and target in tags:
            body = source
            if magic is not None:
                body = source.lstrip().split("\n", 1)[1] if "\n" in source.lstrip() else ""
            tagged = index, body
    if tagged is None:
        raise BrokenSubmission(
            f"no answer cell: no `%%tgvariable {target}` cell and no cell tagged {target}"
        )
    return tagged


def read_notebook(path: Path) -> Any:
    import nbformat
    from nbformat.reader import NotJSONError

    try:
        return nbformat.read(path, as_version=4)
    except NotJSONError:
        raise BrokenSubmission("not a notebook: the file is not valid JSON (cut short?)") from None
    except UnicodeDecodeError:
        raise BrokenSubmission("not a notebook: the file is not UTF-8 text") from None
    except Exception as exc:  # not a notebook, unreadable: the row says why
        raise BrokenSubmission(
            f"not a readable notebook: {first_line(str(exc)) or type(exc).__name__}"
        ) from None
