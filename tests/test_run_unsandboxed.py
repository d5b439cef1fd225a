"""`tg-magic run` on a stranger's downloaded notebook, on a machine without bubblewrap: the
notebook cannot turn unsandboxed test runs on (not with %tgconfig, tg.configure, tg.context, the
environment, or a reload of the settings); only the person running it can, with
`tg-magic run --allow-unsandboxed`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

from tests.test_cli import run_cli

BUGGY_ADD = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(1, 2) == 3\nassert add(0, 0) == 0\n"
SHOW = "print('unsandboxed:', tg.config.settings.allow_unsandboxed)"

ATTACKS = [
    "%tgconfig --allow-unsandboxed on",
    "tg.configure(allow_unsandboxed=True)\n" + SHOW,
    "import os\nos.environ['TG_MAGIC_ALLOW_UNSANDBOXED'] = '1'\n" + SHOW,
    "import importlib, os\nos.environ.pop('TG_MAGIC_RUN_UNSANDBOXED', None)\n"
    "os.environ['TG_MAGIC_ALLOW_UNSANDBOXED'] = '1'\nimportlib.reload(tg.config)\n" + SHOW,
    "with tg.context(allow_unsandboxed=True):\n    " + SHOW,
]


def strangers_notebook(path: Path) -> None:
    cells = [
        "%load_ext tg_magic\nimport tg_magic as tg",
        *ATTACKS,
        f"%%tgvariable add --kind code\n{BUGGY_ADD}",
        f"%%tgloss add_tests --target add --tests\n{TESTS}",
        "%tgforward",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, path)


def text_of(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
        parts.append(output.get("data", {}).get("text/markdown", ""))
        parts.append(output.get("evalue", ""))
    return "\n".join(parts)


@pytest.fixture
def no_bwrap() -> dict[str, str]:
    """The kernel's PATH holds no bwrap, as on a machine where it is not installed."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    env.pop("TG_MAGIC_ALLOW_UNSANDBOXED", None)
    return env


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="reads /proc/self/environ")
def test_a_notebook_cannot_turn_unsandboxed_runs_on(tmp_path: Path, no_bwrap: dict) -> None:  # type: ignore[type-arg]
    strangers_notebook(tmp_path / "stranger.ipynb")
    result = run_cli("run", tmp_path / "stranger.ipynb", env=no_bwrap)
    cells = nbformat.read(tmp_path / "stranger.run.ipynb", as_version=4).cells
    tgconfig = text_of(cells[1])
    refusal = [line for line in tgconfig.splitlines() if "refused" in line]
    assert len(refusal) == 1 and "tg-magic run --allow-unsandboxed" in refusal[0], tgconfig
    assert "unsandboxed ok:   off" in tgconfig
    for index in range(2, 1 + len(ATTACKS)):
        assert "unsandboxed: False" in text_of(cells[index]), (index, text_of(cells[index]))
    assert "refused" in text_of(cells[2])  # tg.configure says so too
    # The tests did not run: without bubblewrap they are refused, and the run stops there.
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"cell {len(cells)} (%tgforward) failed" in last and "bubblewrap" in last, last
    assert "tests pass" not in text_of(cells[-1])


def test_the_person_running_it_can_allow_unsandboxed_runs(tmp_path: Path, no_bwrap: dict) -> None:  # type: ignore[type-arg]
    strangers_notebook(tmp_path / "mine.ipynb")
    result = run_cli("run", tmp_path / "mine.ipynb", "--allow-unsandboxed", env=no_bwrap)
    assert result.returncode == 0, result.stderr
    cells = nbformat.read(tmp_path / "mine.run.ipynb", as_version=4).cells
    assert "refused" not in text_of(cells[1]) and "unsandboxed ok:   on" in text_of(cells[1])
    assert "NOT CONTAINED" in text_of(cells[-2])
    assert "1 of 2 tests pass" in text_of(cells[-1])


def test_the_environment_of_the_person_running_it_is_not_a_flag(
    tmp_path: Path,
    no_bwrap: dict,  # type: ignore[type-arg]
) -> None:
    """TG_MAGIC_ALLOW_UNSANDBOXED is for one's own Jupyter; `tg-magic run` takes the flag and
    says so in one line."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import tg_magic as tg\n" + SHOW)]
    )
    nbformat.write(nb, tmp_path / "plain.ipynb")
    env = {**no_bwrap, "TG_MAGIC_ALLOW_UNSANDBOXED": "1"}
    result = run_cli("run", tmp_path / "plain.ipynb", env=env)
    assert result.returncode == 0, result.stderr
    assert "TG_MAGIC_ALLOW_UNSANDBOXED is ignored" in result.stderr
    cells = nbformat.read(tmp_path / "plain.run.ipynb", as_version=4).cells
    assert "unsandboxed: False" in text_of(cells[0])


def test_in_a_run_kernel_a_cell_can_narrow_but_never_widen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The setting as a kernel `tg-magic run` started sees it (in-process, for speed)."""
    import warnings

    import tg_magic as tg
    from tg_magic import config

    monkeypatch.setattr(config, "RUN_UNSANDBOXED", False)
    monkeypatch.setenv("TG_MAGIC_ALLOW_UNSANDBOXED", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tg.configure(allow_unsandboxed=True, concurrency=3)
        with tg.context(allow_unsandboxed=True):
            assert config.settings.allow_unsandboxed is False
    assert config.settings.allow_unsandboxed is False and config.settings.concurrency == 3
    assert [str(w.message).split(":")[0] for w in caught] == ["unsandboxed runs refused"] * 2
    assert all(w.filename == __file__ for w in caught)  # shown at the notebook's own line
    monkeypatch.setattr(config, "RUN_UNSANDBOXED", True)  # tg-magic run --allow-unsandboxed
    tg.configure(allow_unsandboxed=False)
    assert config.settings.allow_unsandboxed is False
    tg.configure(allow_unsandboxed=True)
    assert config.settings.allow_unsandboxed is True


def test_a_cells_own_test_run_cannot_widen_the_sandbox_either(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a notebook under `tg-magic run` could call itself: TestLoss or run_tests with
    allow_unsandboxed=True, where bubblewrap is missing."""
    import tg_magic as tg
    from tg_magic import config
    from tg_magic.loss import TestLoss
    from tg_magic.sandbox import SandboxUnavailable, run, run_tests

    monkeypatch.setattr(config, "RUN_UNSANDBOXED", False)
    monkeypatch.setattr(run, "bwrap_path", lambda: None)
    with pytest.raises(SandboxUnavailable, match="only its --allow-unsandboxed flag"):
        run_tests(BUGGY_ADD, TESTS, allow_unsandboxed=True)
    code = tg.Variable(BUGGY_ADD, role_description="code")
    with pytest.raises(SandboxUnavailable, match="tg-magic run"):
        TestLoss(TESTS, allow_unsandboxed=True)(code).value  # noqa: B018
    monkeypatch.setattr(config, "RUN_UNSANDBOXED", True)  # the person allowed it
    assert run_tests(BUGGY_ADD, TESTS, allow_unsandboxed=True).score == 0.5
