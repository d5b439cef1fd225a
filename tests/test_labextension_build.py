"""Checks of the JupyterLab extension in labextension/ and of its prebuilt output.

The prebuilt extension (tg_magic/labextension/) exists only after
`cd labextension && npm ci && npm run build`; the unit tests of its pure logic need
labextension/node_modules. Without those, these tests skip and say why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "labextension"
BUILT_DIR = ROOT / "tg_magic" / "labextension"
BUILD_HINT = "cd labextension && npm ci && npm run build (with the venv's bin on PATH)"


@pytest.fixture
def built_package() -> dict:
    package_json = BUILT_DIR / "package.json"
    if not package_json.is_file():
        pytest.skip(
            f"prebuilt labextension not found at {package_json}; build it with: {BUILD_HINT}"
        )
    return json.loads(package_json.read_text(encoding="utf-8"))


def test_built_extension_is_named_tg_magic(built_package: dict) -> None:
    assert built_package["name"] == "tg-magic"
    source_package = json.loads((SOURCE_DIR / "package.json").read_text(encoding="utf-8"))
    assert built_package["version"] == source_package["version"], (
        f"the prebuilt extension is stale (version {built_package['version']} but "
        f"labextension/package.json says {source_package['version']}); rebuild: {BUILD_HINT}"
    )


def test_built_extension_has_remote_entry(built_package: dict) -> None:
    static = BUILT_DIR / "static"
    assert static.is_dir(), f"{static} is missing"
    entries = sorted(p.name for p in static.glob("remoteEntry.*.js"))
    assert entries, f"no remoteEntry.*.js in {static}: {sorted(p.name for p in static.iterdir())}"
    # JupyterLab loads the file that package.json names; it must be there.
    load = built_package["jupyterlab"]["_build"]["load"]
    assert (BUILT_DIR / load).is_file(), f"{load} named in package.json is missing"


def test_labextension_unit_tests_pass() -> None:
    if not (SOURCE_DIR / "node_modules").is_dir():
        pytest.skip(f"{SOURCE_DIR / 'node_modules'} is missing; run: cd labextension && npm ci")
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH")
    result = subprocess.run(
        [npm, "test"],
        cwd=SOURCE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"npm test failed (exit {result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    assert "# fail 0" in result.stdout, result.stdout[-4000:]
