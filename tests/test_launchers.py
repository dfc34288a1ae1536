"""Launcher presets: a joblib multirun of two tiny digits jobs writes two rows; the SLURM preset composes."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from .conftest import ROOT, TINY_DIGITS

pytestmark = pytest.mark.slow


def test_joblib_multirun_writes_one_row_per_job(cli_env, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", *TINY_DIGITS, "epochs=2", "pruner=full,infobatch",
         "hydra/launcher=local", "hydra.launcher.n_jobs=2", "num_threads=1", "snapshots=false",
         f"results_dir={tmp_path / 'results'}", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, env=cli_env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "results" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["pruner"] for r in rows) == ["full", "infobatch"]
    assert all(float(r["final_test_acc"]) >= 0 for r in rows)
    launcher = OmegaConf.load(sweep / "multirun.yaml").hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2
    assert len(list(sweep.glob("*/summary.json"))) == 2


def test_slurm_preset_composes(compose_cfg):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_cfg(["+experiment=table1", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                       "hydra.launcher.timeout_min=60"], hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node, launcher.nodes) == ("gpu", 60, 1, 1)
    assert launcher.submitit_folder.endswith(".submitit/%j")
    assert cfg.hydra.sweeper._target_.endswith("CellSweeper")  # the grid still comes from the experiment
