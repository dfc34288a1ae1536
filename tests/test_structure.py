"""The package's shape is a contract: small modules, short pipeline functions, capabilities declared not probed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "alignprune_exp"
MODULES = sorted(p for p in PKG.rglob("*.py") if "conf" not in p.relative_to(PKG).parts)
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PKG)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_loose_modules_at_the_package_root():
    assert sorted(p.name for p in PKG.glob("*.py")) == ["__init__.py", "__main__.py", "cli.py"]


@pytest.mark.parametrize("path", [PKG / "cli.py", *sorted((PKG / "pipeline").glob("*.py"))], ids=lambda p: p.name)
def test_cli_and_pipeline_functions_are_at_most_60_lines(path):
    tree = ast.parse(path.read_text())
    long = {
        f.name: f.end_lineno - f.lineno + 1
        for f in _functions(tree)
        if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert long == {}


@pytest.mark.parametrize(
    "path", [PKG / "train" / "trainer.py", *sorted((PKG / "pipeline").glob("*.py"))], ids=lambda p: p.name
)
def test_trainer_and_pipeline_probe_no_capability(path):
    tree = ast.parse(path.read_text())
    probes = [
        (node.lineno, node.func.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
    ]
    assert probes == []


def test_no_function_level_import_of_the_package():
    """Imports of the package's own modules sit at the top of each module, where the import rules see them."""
    nested = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for fn in _functions(tree):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alignprune_exp"):
                    nested.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert nested == []
