"""The checks CI holds the code to: ruff (lint and format), mypy, and tsc in strict mode."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTHON_TREES = ["tg_magic", "tests", "benchmarks"]


def check(cmd: list[str], cwd: Path = ROOT) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"


def test_ruff_lint() -> None:
    check([str(BIN / "ruff"), "check", *PYTHON_TREES])


def test_ruff_format() -> None:
    check([str(BIN / "ruff"), "format", "--check", *PYTHON_TREES])


def test_mypy() -> None:
    check([str(BIN / "mypy")])


def test_typescript_strict() -> None:
    ext = ROOT / "labextension"
    if not (ext / "node_modules").is_dir() or shutil.which("npx") is None:
        pytest.skip("labextension/node_modules missing: run scripts/setup.sh")
    check(["npx", "--no-install", "tsc", "--noEmit", "-p", "tsconfig.json"], cwd=ext)
