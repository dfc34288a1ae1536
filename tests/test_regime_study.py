"""The committed regime study (results/regime_cpu/): its tables regenerate byte for byte, and a row's command
reproduces the row's final accuracy exactly on the kind of CPU the rows were computed on (machine.json)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alignprune_exp.report.tables import write_tables
from alignprune_exp.runs.machine import machine_fingerprint

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


def _digits_computed_here() -> str | None:
    """None when the digits rows were computed on this kind of machine, else why they cannot be rerun exactly."""
    recorded = STUDY / "digits" / "machine.json"
    if "digits" not in PARTS:
        return "no committed digits rows of the regime study"
    if not recorded.is_file():
        return "digits: its rows predate machine.json (an earlier machine, not recorded)"
    there, here = json.loads(recorded.read_text()), machine_fingerprint()
    return None if there == here else f"digits: computed on {there}, this machine is {here}"


@pytest.mark.slow
def test_a_committed_digits_row_reproduces_its_final_accuracy_exactly(tmp_path, cli_env):
    why = _digits_computed_here()
    if why:  # float kernels follow the CPU's instruction sets: last bits, then accuracies, differ
        pytest.skip(why)
    rows = [r for r in _rows("digits") if r["pruner"].startswith("infobatch_das") and r["seed"] == "0"]
    assert rows, "the digits grid has no seed-0 DAS row"
    row = min(rows, key=lambda r: int(r["train_fwd"]))  # the cheapest DAS arm keeps the test short
    # The row's own command line, as the sweep launched it, writing elsewhere
    overrides = [o for o in row["overrides"].split(",") if not o.startswith("results_dir=")]
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, "hydra.mode=RUN", f"results_dir={tmp_path}"]
    cmd += [f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_test_acc"] == float(row["final_test_acc"])
    assert summary["epochs_run"] == int(row["epochs_run"]) and summary["train_fwd"] == int(row["train_fwd"])


def test_record_machine_writes_this_machines_fingerprint_next_to_the_rows(tmp_path):
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "runs.csv").write_text("run_id\n")
    script = ROOT / "scripts" / "record_machine.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "grid")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "grid" / "machine.json").read_text())
    assert written == machine_fingerprint() and written["torch"] == torch.__version__
    assert len(written["cpu_flags_sha256"]) in (0, 16) and written["arch"]
    empty = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert empty.returncode == 2 and "holds no runs.csv" in empty.stderr
    assert not (tmp_path / "machine.json").exists()
