"""The map stays true: every path ARCHITECTURE.md names exists, imports point down the layers,
and no module grows past about 400 lines without saying why at its top."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tg_magic"
MAP = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")


def test_every_path_the_map_names_exists() -> None:
    named = set(re.findall(r"(?:tg_magic|labextension)/[\w/.]*", MAP))
    assert len(named) > 20
    missing = sorted(p for p in named if not (ROOT / p.rstrip(".")).exists())
    assert missing == []


def imports_of(path: Path) -> set[str]:
    """The tg_magic subpackages a module imports (relative imports resolved)."""
    module = path.relative_to(ROOT).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(module[: len(module) - node.level])
            target = base + (node.module.split(".") if node.module else [])
            names = [[*target, a.name] for a in node.names] if not node.module else [target]
            found.update(".".join(t[:2]) for t in names if len(t) > 1)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tg_magic"):
            found.add(".".join((node.module or "").split(".")[:2]))
    return found


@pytest.mark.parametrize("lower", ["engines", "sandbox", "config", "functions", "optim", "loss"])
def test_the_library_never_imports_the_notebook_face(lower: str) -> None:
    paths = [PACKAGE / f"{lower}.py"] if (PACKAGE / f"{lower}.py").exists() else []
    paths += sorted((PACKAGE / lower).glob("*.py"))
    faces = {"tg_magic.notebook", "tg_magic.cli", "tg_magic.classroom"}
    for path in paths:
        assert not imports_of(path) & faces, path


def test_the_notebook_layer_builds_no_loss_and_calls_no_engine_itself() -> None:
    for path in sorted((PACKAGE / "notebook").glob("*.py")):
        assert "tg_magic.loss" not in imports_of(path), path


def test_long_modules_say_why_at_their_top() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 420:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            assert "lines because" in docstring, f"{path}: {text.count(chr(10))} lines"
