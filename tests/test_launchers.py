"""Launcher presets: a joblib multirun of tiny digits jobs writes a row per good cell and lists the bad ones;
the SLURM preset composes and its jobs requeue themselves with resume=auto."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, TINY_DIGITS

pytestmark = pytest.mark.slow


def test_joblib_multirun_writes_one_row_per_job(cli_env, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            *TINY_DIGITS,
            "epochs=2",
            "pruner=full,infobatch",
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=2",
            "num_threads=1",
            "snapshots=false",
            f"results_dir={tmp_path / 'results'}",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweeper.extra=[{batch_size:0}]",
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=tmp_path,
        timeout=300,
    )
    # The two bad cells (batch_size=0) fail alone, are listed at the end, and the sweep exits 1.
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = proc.stderr[proc.stderr.index("2 of 4 cell(s) failed") :].splitlines()
    assert len(report) == 3 and all("batch_size=0 must be an integer >= 1" in line for line in report[1:])
    with open(tmp_path / "results" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["pruner"] for r in rows) == ["full", "infobatch"]
    assert all(float(r["final_test_acc"]) >= 0 for r in rows)
    launcher = OmegaConf.load(sweep / "multirun.yaml").hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2
    assert len(list(sweep.glob("*/summary.json"))) == 2
    assert sum("error: batch_size=0" in p.read_text() for p in sweep.glob("*/cli.log")) == 2


def test_slurm_preset_composes(compose_cfg):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_cfg(
        ["+experiment=table1", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=60"],
        hydra_config=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.alignprune_sweeper.resuming_slurm.ResumingSlurmLauncher"
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node, launcher.nodes) == ("gpu", 60, 1, 1)
    assert launcher.submitit_folder.endswith(".submitit/%j")
    assert cfg.hydra.sweeper._target_.endswith("CellSweeper")  # the grid still comes from the experiment


def test_slurm_jobs_requeue_with_resume():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra_plugins.alignprune_sweeper.resuming_slurm import ResumingSlurmLauncher

    launcher = ResumingSlurmLauncher(partition="gpu")
    # submitit calls checkpoint() on its pre-emption/time-limit signal and requeues what it returns.
    delayed = launcher.checkpoint(["pruner=full", "seed=1"], "hydra.sweep.dir", 3, "7", {})
    assert delayed.function is launcher
    assert delayed.args == (["pruner=full", "seed=1", "resume=auto"], "hydra.sweep.dir", 3, "7", {})
    kept = launcher.checkpoint(["pruner=full", "resume=null"], "hydra.sweep.dir", 0, "1", {})
    assert kept.args[0] == ["pruner=full", "resume=null"]  # an explicit choice is respected
