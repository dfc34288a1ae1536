"""End-to-end runs through the real CLI (train.py) on scikit-learn's digits, in temporary directories."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY_DIGITS

pytestmark = pytest.mark.slow


def train(args, env, tmp_path, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args, f"results_dir={tmp_path / 'results'}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=timeout,
    )


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_single_run_writes_its_records(cli_env, tmp_path):
    run_dir = tmp_path / "run"
    proc = train(
        [*TINY_DIGITS, "pruner=infobatch_das", "pruner.scorer.window=3", f"hydra.run.dir={run_dir}"], cli_env, tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == summary["epochs_run"] >= 5  # 4.2 full epochs of budget, some pruned
    assert abs(summary["achieved_ratio"] - 0.3) <= 0.02
    assert 0 <= summary["final_test_acc"] <= 100 and summary["n_test"] == 360
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()
    assert (run_dir / "metrics.csv").is_file()
    rows = read_rows(tmp_path / "results" / "runs.csv")
    assert len(rows) == 1
    row = rows[0]
    assert (row["dataset"], row["noise"], row["pruner"], row["ratio"], row["seed"], row["optimizer"]) == (
        "digits",
        "sym0.5",
        "infobatch_das",
        "r30",
        "0",
        "sgd",
    )
    assert summary["optimizer"] == "sgd"
    assert float(row["final_test_acc"]) == pytest.approx(summary["final_test_acc"])
    assert row["run_dir"] == str(run_dir)
    # Every epoch records what the issue asks for.
    for key in (
        "train/loss",
        "test/acc",
        "prune/kept_fraction",
        "fwd/train",
        "fwd/reference",
        "time/epoch_s",
        "prune/kept_noisy_fraction",
        "score/noise_auroc",
    ):
        assert key in epochs[0]
    assert epochs[-1]["fwd/train"] == summary["train_fwd"]
    assert epochs[-1]["fwd/reference"] == summary["reference_fwd"] > 0
    from alignprune_exp.runs.snapshots import load_snapshots

    snaps = load_snapshots(run_dir / "snapshots.npz")
    assert snaps["scores"].shape == snaps["losses"].shape == (len(snaps["epochs"]), summary["n_train"])
    assert len(snaps["epochs"]) >= 3 and snaps["progress"][-1] == pytest.approx(1.0)
    assert snaps["is_noisy"].mean() == pytest.approx(summary["noise_rate"])
    assert "loss/mean_noisy" in epochs[-1] and epochs[-1]["loss/mean_noisy"] > epochs[-1]["loss/mean_clean"]
    # sym0.5 on digits: the training labels really are half noisy.
    assert summary["noise_rate"] == pytest.approx(0.5, abs=0.01)


def test_multirun_writes_one_row_per_job(cli_env, tmp_path):
    proc = train(
        [
            "-m",
            *TINY_DIGITS,
            "epochs=3",
            "pruner=infobatch,infobatch_das",
            "pruner.policy.prune_prob=0.5",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cli_env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(tmp_path / "results" / "runs.csv")
    assert sorted(r["pruner"] for r in rows) == ["infobatch", "infobatch_das"]
    assert len(list((tmp_path / "sweep").glob("*/summary.json"))) == 2
    assert (tmp_path / "sweep" / "multirun.yaml").is_file()


def test_missing_cifar_is_a_one_line_error(cli_env, tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    proc = train(
        ["dataset=cifar10", "noise=clean", f"data_dir={empty}", f"hydra.run.dir={tmp_path / 'run'}"], cli_env, tmp_path
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(empty) in errors[0] and "train_x.npy" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results" / "runs.csv").exists()


def test_official_test_split_missing_asks_for_holdout(cli_env, tmp_path):
    from tests.fake_data import write_cifar_npy

    write_cifar_npy(tmp_path / "data", "cifar10", n_train=300, n_test=0, num_classes=10, seed=0)
    args = [
        "dataset=cifar10",
        "noise=sym0.2",
        "model=mlp",
        "optimizer=sgd",
        "epochs=2",
        "device=cpu",
        f"data_dir={tmp_path / 'data'}",
        "progress_bar=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = train(args, cli_env, tmp_path)
    assert proc.returncode == 2 and "test_split=holdout" in proc.stderr
    proc = train([*args, "test_split=holdout", "holdout_size=50"], cli_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_split"] == "holdout" and summary["n_test"] == 50 and summary["n_reference"] == 50
    assert summary["n_train"] == 250  # the reference images train too (disjoint=false)


def test_wandb_offline_one_run_per_multirun_job(cli_env, tmp_path):
    pytest.importorskip("wandb")
    env = dict(cli_env, WANDB_MODE="offline", WANDB_SILENT="true")
    proc = train(
        [
            "-m",
            *TINY_DIGITS,
            "epochs=2",
            "logger=wandb",
            "pruner=full,infobatch",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(tmp_path.glob("sweep/*/wandb/offline-run-*"))
    assert len(runs) == 2, runs
