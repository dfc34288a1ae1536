"""The committed regime study (results/regime_cpu/): its tables regenerate byte for byte, and a row's command
reproduces the row's final accuracy exactly on CPU."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from alignprune_exp.report.tables import write_tables

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "regime_cpu"
PARTS = [p for p in ("digits", "cifar10") if (STUDY / p / "runs.csv").is_file()]
TABLES = ("tables.md", "tables.tex", "cells.csv", "efficiency.md", "paired.md", "metrics.md")


def _rows(part: str) -> list[dict]:
    with open(STUDY / part / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(not PARTS, reason="no committed results/regime_cpu grid rows yet")
@pytest.mark.parametrize("part", PARTS)
def test_committed_tables_are_reproduced_byte_for_byte(tmp_path, part):
    write_tables(STUDY / part, tmp_path, std=True)
    for name in TABLES:
        assert (tmp_path / name).read_bytes() == (STUDY / part / "tables" / name).read_bytes(), (part, name)


@pytest.mark.slow
@pytest.mark.skipif("digits" not in PARTS, reason="no committed digits rows of the regime study yet")
def test_a_committed_digits_row_reproduces_its_final_accuracy_exactly(tmp_path, cli_env):
    rows = [r for r in _rows("digits") if r["pruner"] == "infobatch_das" and r["seed"] == "0"]
    assert rows, "the digits grid has no seed-0 infobatch_das row"
    row = rows[-1]
    overrides = row["overrides"].split(",")  # the row's own command line, as the sweep launched it
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, "hydra.mode=RUN", f"results_dir={tmp_path}"]
    cmd += [f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_test_acc"] == float(row["final_test_acc"])
    assert summary["epochs_run"] == int(row["epochs_run"]) and summary["train_fwd"] == int(row["train_fwd"])
