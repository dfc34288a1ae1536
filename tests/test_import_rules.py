"""Import rules: the import-linter contracts of pyproject.toml hold, and the CLI's start-up imports no heavy
module that only some runs need (timm models, torchvision's model zoo, plotting and data-frame libraries)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Imported lazily, where a run needs them (a timm model, the strong view, make_tables / make_plots).
NOT_AT_STARTUP = ["timm", "torchvision.models", "matplotlib", "pandas"]


@pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None or not LINT_IMPORTS.exists(),
    reason="import-linter is not installed in this environment (pip install -e '.[dev]')",
)
def test_import_contracts_hold():
    proc = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_cli_import_leaves_heavy_modules_unloaded():
    code = (
        "import json, sys; import alignprune_exp.cli; "
        f"print(json.dumps([m for m in {NOT_AT_STARTUP!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], (
        f"`import alignprune_exp.cli` loads {loaded}; see which module pulls them in with "
        "python -X importtime -c 'import alignprune_exp.cli'"
    )
