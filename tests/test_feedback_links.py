"""`tg-magic feedback` on a shared machine, written as a student who can put files in the
submissions folder would: a symlink or a hard link to the teacher's own notebook, a symlinked
folder, a named pipe. Each gets one line on its row and is neither read, scored nor copied into
--out; the other students are scored as usual."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from tests.fake_api import FakeMessagesAPI
from tests.test_cli import CLASSROOM, CORRECT, HAIKU, answer_notebook, give_hints, rows, run_cli

REFUSED = "not a regular file in the submissions folder"
PRIVATE = "TEACHER-PRIVATE: the exam on Friday asks for the interquartile range"


def teachers_notebook(path: Path) -> Path:
    """The teacher's own notebook, outside the submissions folder: a correct answer (it would
    score 4 of 4) and a private cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    answer_notebook(path, CORRECT)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(PRIVATE))
    nbformat.write(nb, path)
    return path


def nothing_leaked(out: Path) -> None:
    for file in out.rglob("*"):
        if file.is_file():
            assert PRIVATE.encode() not in file.read_bytes(), file


def feedback(fake_api: FakeMessagesAPI, out: Path, *submissions: object) -> tuple[str, str]:
    give_hints(fake_api)
    args = ["feedback", *submissions, "--target", "median"]
    result = run_cli(
        *args, "--tests", CLASSROOM / "median_tests.py", "--out", out, "--engine", HAIKU
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


@pytest.fixture
def subs(tmp_path: Path) -> Path:
    folder = tmp_path / "submissions"
    shutil.copytree(CLASSROOM / "submissions", folder)  # alice correct, bob buggy, carol not JSON
    return folder


def test_a_symlink_to_the_teachers_notebook_is_refused_and_nothing_of_it_reaches_out(
    fake_api: FakeMessagesAPI, subs: Path, tmp_path: Path
) -> None:
    private = teachers_notebook(tmp_path / "teacher" / "key.ipynb")
    (subs / "mallory.ipynb").symlink_to(private)
    (subs / "mitch.ipynb").symlink_to(subs / "alice.ipynb")  # inside the folder: refused too
    (subs / "hidden").mkdir()
    (subs / "hidden" / "oscar.ipynb").symlink_to(private)  # deeper in the folder
    (subs / "peek").symlink_to(private.parent, target_is_directory=True)  # a folder out
    os.mkfifo(subs / "pipe.ipynb")  # a named pipe: never opened in a way that could block
    out = tmp_path / "out"
    stdout, _ = feedback(fake_api, out, subs)
    table = rows(out)
    for student in ("mallory", "mitch", "oscar", "peek", "pipe"):
        assert REFUSED in table[student]["status"], table[student]
        assert table[student]["score"] == "" and table[student]["passed"] == ""
        assert not (out / f"{student}.ipynb").exists()
        assert REFUSED in next(line for line in stdout.splitlines() if line.startswith(student))
    assert "mallory.ipynb is a symbolic link" in table["mallory"]["status"]
    assert "peek is a symbolic link" in table["peek"]["status"]
    assert "pipe.ipynb is not a regular file" in table["pipe"]["status"]
    assert table["alice"]["passed"] == "4" and table["bob"]["passed"] == "2"
    assert (out / "alice.ipynb").is_file() and (out / "bob.ipynb").is_file()
    nothing_leaked(out)
    # Named one by one (a shell's `submissions/*.ipynb`), the link is refused the same way.
    out2 = tmp_path / "out2"
    feedback(fake_api, out2, *sorted(subs.glob("*.ipynb")))
    table = rows(out2)
    assert REFUSED in table["mallory"]["status"] and table["alice"]["passed"] == "4"
    assert not (out2 / "mallory.ipynb").exists()
    nothing_leaked(out2)


def test_a_hard_link_to_the_teachers_notebook_is_refused(
    fake_api: FakeMessagesAPI, subs: Path, tmp_path: Path
) -> None:
    private = teachers_notebook(tmp_path / "teacher" / "key.ipynb")
    try:
        os.link(private, subs / "mallory.ipynb")
    except OSError as exc:
        pytest.skip(f"this filesystem makes no hard link here: {exc}")
    out = tmp_path / "out"
    feedback(fake_api, out, subs)
    table = rows(out)
    assert REFUSED in table["mallory"]["status"] and "hard link" in table["mallory"]["status"]
    assert table["mallory"]["score"] == "" and not (out / "mallory.ipynb").exists()
    assert table["alice"]["passed"] == "4" and table["bob"]["passed"] == "2"
    nothing_leaked(out)


def test_nbgrader_layout_symlinked_student_assignment_and_notebook_are_refused(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher"
    teachers_notebook(teacher / "ps1" / "median.ipynb")
    submitted = tmp_path / "course" / "submitted"
    (submitted / "ann" / "ps1").mkdir(parents=True)
    answer_notebook(submitted / "ann" / "ps1" / "median.ipynb", CORRECT)
    (submitted / "mallory").symlink_to(teacher, target_is_directory=True)  # the student folder
    (submitted / "ben").mkdir()
    (submitted / "ben" / "ps1").symlink_to(teacher / "ps1", target_is_directory=True)
    (submitted / "cy" / "ps1").mkdir(parents=True)  # a real folder, the notebook a link
    nbformat.write(nbformat.v4.new_notebook(), submitted / "cy" / "ps1" / "notes.ipynb")
    (submitted / "cy" / "ps1" / "median.ipynb").symlink_to(teacher / "ps1" / "median.ipynb")
    out = tmp_path / "out"
    feedback(fake_api, out, tmp_path / "course")
    table = rows(out)
    assert sorted(table) == ["ann", "ben", "cy", "mallory"]
    assert table["ann"]["passed"] == "4" and (out / "ann.ipynb").is_file()
    assert "mallory is a symbolic link" in table["mallory"]["status"]
    assert "ps1 is a symbolic link" in table["ben"]["status"]
    assert "median.ipynb is a symbolic link" in table["cy"]["status"]
    for student in ("mallory", "ben", "cy"):
        assert REFUSED in table[student]["status"] and table[student]["score"] == ""
        assert not (out / f"{student}.ipynb").exists()
    nothing_leaked(out)


def test_a_notebook_swapped_for_a_link_after_it_was_found_is_not_read(tmp_path: Path) -> None:
    """The check and the read are one: the file is read from the descriptor that was checked,
    so a swap between finding the notebook and reading it gains nothing."""
    from tg_magic import classroom

    private = teachers_notebook(tmp_path / "teacher" / "key.ipynb")
    subs = tmp_path / "subs"
    subs.mkdir()
    answer_notebook(subs / "mallory.ipynb", "def median(values):\n    return 0\n")
    found, _ = classroom.discover([subs], "median")
    (subs / "mallory.ipynb").unlink()
    (subs / "mallory.ipynb").symlink_to(private)
    assignment = classroom.Assignment(
        "median", "tests", (CLASSROOM / "median_tests.py").read_text(), engine=None
    )
    out = tmp_path / "out"
    [result] = classroom.run(found, assignment, out)
    assert result.status.startswith(f"error: {REFUSED}") and result.score is None
    assert not (out / "mallory.ipynb").exists()
    nothing_leaked(out)


def test_a_folder_named_on_the_command_line_through_another_users_link_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tg-magic feedback submissions/*` also names a student's symlinked folder: a link on the
    command line is followed only when the person running it (or root) made it."""
    from tg_magic import classroom
    from tg_magic.classroom import submissions

    teachers_notebook(tmp_path / "teacher" / "key.ipynb")
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    answer_notebook(subs / "ann" / "median.ipynb", CORRECT)
    (subs / "mallory").symlink_to(tmp_path / "teacher", target_is_directory=True)
    mine, _ = classroom.discover([subs / "ann", subs / "mallory"], "median")
    assert {s.path.name for s in mine} == {"median.ipynb", "key.ipynb"}  # my own link: followed
    monkeypatch.setattr(submissions, "_me", lambda: {os.geteuid() + 1})  # made by someone else
    theirs, _ = classroom.discover([subs / "ann", subs / "mallory"], "median")
    by_name = {s.path.name: s for s in theirs}
    assert set(by_name) == {"median.ipynb", "mallory"}
    assert "mallory is a symbolic link made by another user" in by_name["mallory"].refused
    assert by_name["median.ipynb"].refused == ""
