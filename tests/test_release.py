"""The release: what `python -m build` makes, installed as a user would, with no Node.js.

From a copy of the checkout's sources (what git tracks; no node_modules, no built extension),
`python -m build` makes the sdist (its build hook runs npm and the extension's build) and the
wheel from that sdist. Then:
- both carry the prebuilt JupyterLab extension, and the sdist carries what rebuilds it: a wheel
  built from the sdist without its prebuilt extension builds it again (and a build that makes
  none fails, `ensured-targets`);
- `pip install` of the sdist needs no Node.js (it ships the prebuilt extension);
- the wheel, installed in a fresh venv (with JupyterLab and Notebook 7 from PyPI) with no
  node/npm on PATH, is listed enabled by `jupyter labextension list`, and a Jupyter server
  started from that venv loads the extension in a real browser, in JupyterLab and in
  Notebook 7: `%tgaccept` rewrites the cell through it ("updated in JupyterLab").

Slow (two builds, two fresh venvs, a JupyterLab): about a minute and a half with warm pip and
npm caches. `pytest -k 'not release'` leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_api import FakeMessagesAPI
from tests.jupyter_server import LAB_ARGS, disable_extensions, jupyter_server, model_env
from tests.test_notebook import BUGGY_ADD, FIXED_ADD, TESTS

ROOT = Path(__file__).resolve().parent.parent
NAME, VERSION = "tg_magic", "0.1.0"
SHARE = "share/jupyter/labextensions/tg-magic"
# What runs JavaScript tooling: none of it may be on the user's PATH.
NODE_TOOLS = {"node", "nodejs", "npm", "npx", "corepack", "yarn", "yarnpkg", "jlpm", "pnpm", "pnpx"}
# What a build of the extension from the sdist needs, besides the Python package.
SDIST_NEEDS = [
    "labextension/package.json",
    "labextension/package-lock.json",
    "labextension/tsconfig.json",
    "labextension/install.json",
    "labextension/src/index.ts",
    "labextension/style/index.css",
    "labextension/style/index.js",
    "tg_magic/labextension/package.json",
    "tg_magic/labextension/static/style.js",
    "pyproject.toml",
    "PKG-INFO",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MAGIC_LINE = "%%tgvariable add --kind code"

pytestmark = pytest.mark.timeout(900)


def timed(what: str, started: float) -> None:
    print(f"{what}: {time.monotonic() - started:.1f} s")


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command; on failure the assertion shows the end of what it printed."""
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    failed = f"{' '.join(cmd)} failed ({result.returncode})"
    assert result.returncode == 0, f"{failed}:\n{output[-6000:]}"
    return output


def copy_sources(dest: Path) -> None:
    """The checkout's sources as git sees them (tracked and new, not ignored): what a release
    build starts from, without node_modules, the venv or the built extension."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout: copy all but what .gitignore names
        ignore = shutil.ignore_patterns(
            ".git", ".venv", "node_modules", "lib", "tsconfig.tsbuildinfo", "labextension",
            "__pycache__", "*.egg-info", "dist", "build", "test-output", ".*_cache",
        )  # fmt: skip
        shutil.copytree(ROOT, dest, ignore=ignore)
        shutil.copytree(ROOT / "labextension", dest / "labextension", ignore=ignore)
        return
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():  # a tracked file deleted in the work tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def path_without_node(farm: Path) -> str:
    """A PATH with every program of this one but no Node.js tool: one directory of links."""
    farm.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not Path(folder).is_dir() or Path(folder).resolve() == farm:
            continue
        if (Path(folder).parent / "pyvenv.cfg").exists():  # this test run's own venv
            continue
        for program in Path(folder).iterdir():
            link = farm / program.name
            if program.name in NODE_TOOLS or link.exists() or link.is_symlink():
                continue
            if "node_modules" in str(program.resolve()):  # a global npm package's command
                continue
            link.symlink_to(program)
    path = str(farm)
    for tool in NODE_TOOLS:
        assert shutil.which(tool, path=path) is None, tool
    return path


def user_env(venv: Path, node_free_path: str, home: Path) -> dict[str, str]:
    """The environment of a user of `venv`: no Node.js on PATH, no checkout on sys.path, and
    Jupyter's per-user folders of its own (no extension of this machine's user leaks in)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        and not k.startswith(("TG_MAGIC_", "JPY_", "JUPYTER"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{node_free_path}",
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    return env


def fresh_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", str(path)])
    return path


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"{pattern} in {folder}: {found}"
    return found[0]


def assert_wheel_has_extension(wheel: Path) -> None:
    data = f"{NAME}-{VERSION}.data/data/{SHARE}"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        package = json.loads(zf.read(f"{data}/package.json"))
    assert f"{data}/install.json" in names, sorted(names)
    assert package["name"] == "tg-magic" and package["version"] == VERSION
    load = package["jupyterlab"]["_build"]["load"]  # the file JupyterLab loads first
    assert f"{data}/{load}" in names, (load, sorted(n for n in names if SHARE in n))
    assert f"{data}/static/style.js" in names


@dataclass
class Release:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def node_free_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return path_without_node(tmp_path_factory.mktemp("no-node") / "bin")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """`python -m build` from a copy of the sources: the sdist, then the wheel from it."""
    pytest.importorskip("build", reason="pip install build (in the test extra)")
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH: the release build runs the extension's build")
    base = tmp_path_factory.mktemp("release")
    copy_sources(base / "src")
    assert not (base / "src" / NAME / "labextension").exists()  # the build has to make it
    assert not (base / "src" / "labextension" / "node_modules").exists()
    started = time.monotonic()
    output = run([sys.executable, "-m", "build", "--outdir", str(base / "dist"), str(base / "src")])
    timed("python -m build (sdist, then the wheel from it)", started)
    # The sdist's build ran npm and the extension's build; the wheel's, from the sdist, used
    # the sdist's prebuilt extension.
    sdist_part, _, wheel_part = output.partition("Building wheel from sdist")
    assert re.search(r"> \S*npm .*install$", sdist_part, re.M), sdist_part[-3000:]
    assert f"> tg-magic@{VERSION} build" in sdist_part, sdist_part[-3000:]
    assert "Skip-if-exists file(s) found" in wheel_part, wheel_part[-3000:]
    return Release(only(base / "dist", "*.whl"), only(base / "dist", "*.tar.gz"))


def test_the_wheel_and_the_sdist_carry_the_prebuilt_extension(release: Release) -> None:
    assert_wheel_has_extension(release.wheel)
    top = f"{NAME}-{VERSION}/"
    with tarfile.open(release.sdist) as tf:
        names = {m.name.removeprefix(top) for m in tf.getmembers()}
    missing = [n for n in SDIST_NEEDS if n not in names]
    assert not missing, f"missing from the sdist: {missing}"
    assert not [n for n in names if "node_modules" in n or n.startswith("labextension/lib/")]


def test_the_sdist_rebuilds_the_extension_and_a_build_without_one_fails(
    release: Release, tmp_path: Path
) -> None:
    with tarfile.open(release.sdist) as tf:
        tf.extractall(tmp_path, filter="data")
    unpacked = tmp_path / f"{NAME}-{VERSION}"
    shutil.rmtree(unpacked / NAME / "labextension")
    build = [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist")]

    # No extension made (npm skipped): an error, not a wheel without it.
    env = {**os.environ, "HATCH_JUPYTER_BUILDER_SKIP_NPM": "1"}
    failed = subprocess.run(
        [*build, str(unpacked)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert failed.returncode != 0, failed.stdout[-3000:]
    assert "Ensured target" in failed.stdout + failed.stderr, failed.stderr[-3000:]
    assert not list((tmp_path / "dist").glob("*.whl"))

    started = time.monotonic()
    run([*build, str(unpacked)])
    timed("wheel from the sdist, the extension built again from its sources", started)
    assert_wheel_has_extension(only(tmp_path / "dist", "*.whl"))


def test_pip_installs_the_sdist_without_node(
    release: Release, node_free_path: str, tmp_path: Path
) -> None:
    venv = fresh_venv(tmp_path / "venv")
    env = user_env(venv, node_free_path, tmp_path / "home")
    started = time.monotonic()
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", str(release.sdist)],
        env=env)  # fmt: skip
    timed("pip install the sdist (no deps, no node)", started)
    installed = venv / SHARE
    assert json.loads((installed / "package.json").read_text())["name"] == "tg-magic"
    assert (installed / "install.json").is_file()


@pytest.fixture(scope="module")
def wheel_venv(
    release: Release, node_free_path: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the wheel, JupyterLab and Notebook 7 (from PyPI), installed without
    Node.js."""
    base = tmp_path_factory.mktemp("user")
    venv = fresh_venv(base / "venv")
    env = user_env(venv, node_free_path, base / "home")
    started = time.monotonic()
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(release.wheel),
         "jupyterlab>=4.2,<5", "notebook>=7,<8"], env=env)  # fmt: skip
    timed("pip install the wheel, jupyterlab and notebook into a fresh venv", started)
    return venv, env


def test_jupyter_labextension_list_shows_it_enabled(
    wheel_venv: tuple[Path, dict[str, str]],
) -> None:
    venv, env = wheel_venv
    listing = ANSI.sub("", run([str(venv / "bin" / "jupyter"), "labextension", "list"], env=env))
    print(listing)
    assert str(venv / "share" / "jupyter" / "labextensions") in listing, listing
    line = re.search(r"^\s*tg-magic v(\S+) (\w+) (\w+) \(python, tg-magic\)$", listing, re.M)
    assert line, listing
    assert line.groups() == (VERSION, "enabled", "OK"), listing


@pytest.fixture(scope="module")
def user_lab(
    wheel_venv: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """`<venv>/bin/jupyter lab` (Notebook 7's pages are served by the same server), the model
    being the loopback fake Messages API of this process."""
    from tests import test_browser as tb  # skips when chromium or playwright is missing

    venv, env = wheel_venv
    base = tmp_path_factory.mktemp("lab")
    root, log = base / "root", base / "jupyter-lab.log"
    root.mkdir()
    disable_extensions(Path(env["JUPYTER_CONFIG_DIR"]))
    try:
        with (
            FakeMessagesAPI() as fake,
            jupyter_server(
                [str(venv / "bin" / "jupyter"), "lab"],
                root=root,
                env={**env, **model_env(fake, base)},
                log=log,
                args=LAB_ARGS,
                cwd=root,
            ) as url,
        ):
            yield tb.Lab(url, root, fake)
    finally:
        print(log.read_text()[-3000:])


def accept_notebook(root: Path, name: str) -> None:
    """Print where tg_magic comes from, then optimize a buggy add and accept the candidate."""
    from tests import test_browser as tb

    tb.write_notebook(
        root / name,
        [
            "%load_ext tg_magic\nimport tg_magic\nprint(tg_magic.__file__)",
            f"{MAGIC_LINE}\n{BUGGY_ADD}",
            f"%%tgloss add_tests --target add --tests\n{TESTS}",
            "%tgoptimize --steps 1",
            "%tgaccept add",
        ],
    )


def check_accepted(page: Any, venv: Path, app: str) -> None:
    """The kernel ran the installed wheel (not this checkout), and the extension rewrote the
    cell: %tgaccept's output is updated once the frontend has answered."""
    from tests import test_browser as tb

    first = tb.cells(page).nth(0).locator(".jp-OutputArea-output")
    tb.wait_until(lambda: "__init__.py" in first.inner_text(), "tg_magic's path")
    assert str(venv / "lib") in first.inner_text(), first.inner_text()
    accepted = tb.cells(page).nth(4).locator(".jp-OutputArea-output")
    tb.wait_until(lambda: f"updated in {app}" in accepted.inner_text(), "%tgaccept", 120)
    source = tb.cell_text(page, 1)
    assert source.startswith(MAGIC_LINE) and "return a + b" in source, source


@pytest.fixture
def browser_page(user_lab: Any) -> Iterator[Any]:
    from tests import test_browser as tb

    fake = user_lab.fake
    fake.add_rule("<IMPROVED_VARIABLE>", f"<IMPROVED_VARIABLE>\n{FIXED_ADD}</IMPROVED_VARIABLE>")
    with tb.sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(tb.CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(tb.WAIT)
            yield page
        finally:
            browser.close()
            fake.reset()


def run_in_jupyterlab(page: Any, lab: Any, name: str) -> None:
    from tests import test_browser as tb

    tb.open_and_run_all(page, lab, name)


def run_in_notebook_7(page: Any, lab: Any, name: str) -> None:
    from tests import test_browser as tb

    tb.open_notebook(page, lab, name, f"{lab.url}/notebooks/{name}")
    assert "/notebooks/" in page.url, page.url  # Notebook 7's page, not JupyterLab's
    for index in range(5):
        tb.run_cell(page, index)


@pytest.mark.parametrize(
    ("name", "run_all", "frontend"),
    [
        pytest.param("jupyterlab.ipynb", run_in_jupyterlab, "JupyterLab", id="jupyterlab"),
        pytest.param("notebook-7.ipynb", run_in_notebook_7, "Jupyter Notebook", id="notebook-7"),
    ],
)
def test_the_extension_from_the_venv_loads_in(
    user_lab: Any,
    wheel_venv: tuple[Path, dict[str, str]],
    browser_page: Any,
    name: str,
    run_all: Callable[[Any, Any, str], None],
    frontend: str,
) -> None:
    from tests import test_browser as tb

    lab, page = user_lab, browser_page
    accept_notebook(lab.root, name)
    started = time.monotonic()
    run_all(page, lab, name)
    check_accepted(page, wheel_venv[0], frontend)
    timed(f"the notebook in {frontend}, up to the accepted edit", started)
    tb.shot(page, f"release-accepted-in-{name.removesuffix('.ipynb')}")
