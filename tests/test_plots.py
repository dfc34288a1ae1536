"""make_plots writes valid PNGs from a tiny real run, and only the figures its runs support."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import matplotlib.image as mpimg
import pytest

from alignprune_exp.report.plots import make_plots
from alignprune_exp.runs.records import RESULT_COLUMNS
from tests.conftest import ROOT, TINY_DIGITS

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.read_bytes()[:8] == PNG, path
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0


@pytest.mark.slow
def test_plots_from_a_tiny_run(cli_env, tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            *TINY_DIGITS,
            "epochs=3",
            "pruner=full,infobatch_das",
            f"results_dir={results}",
            f"hydra.sweep.dir={tmp_path / 'sw'}",
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    paths = make_plots(results, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "fig1_acc_vs_ratio.png",
            "figB_loss_histograms.png",
            "figC_loss_trajectories.png",
            "das_histograms.png",
            "epoch_test_acc.png",
            "epoch_below_mean.png",
            "epoch_kept_noisy.png",
            "epoch_weighted_noisy_share.png",
            "epoch_score_auroc.png",
            "epoch_loss_auroc.png",
        ]
    )
    for path in paths:
        assert path.parent == tmp_path / "plots"
        assert_png(path)
    # a results tree moved elsewhere: run folders are found again by name under the results folder
    shutil.move(str(tmp_path / "sw"), str(results / "moved"))
    again = make_plots(results, tmp_path / "plots2")
    assert sorted(p.name for p in again) == names


def test_ablation_figure_from_rows_without_run_folders(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    with open(results / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for window, acc in ((5, 60.0), (10, 62.0), (25, 61.0)):
            for noise in ("clean", "sym0.5"):
                writer.writerow(
                    {
                        "experiment": "fig2b",
                        "dataset": "cifar100",
                        "model": "small_cnn",
                        "epochs": 30,
                        "n_train": 5000,
                        "n_test": 1000,
                        "test_split": "holdout",
                        "noise": noise,
                        "pruner": "infobatch_das",
                        "ratio": "r30",
                        "target_ratio": 0.3,
                        "seed": 0,
                        "final_test_acc": acc + (noise == "clean") * 10,
                        "run_dir": str(tmp_path / "gone"),
                        "overrides": f"pruner.scorer.window={window},noise={noise}",
                    }
                )
    paths = make_plots(results, tmp_path / "plots")
    assert [p.name for p in paths] == ["fig1_acc_vs_ratio.png", "fig2b_window.png"]  # no run folder: no curves
    for path in paths:
        assert_png(path)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_plots.py"), str(results), "--out", str(tmp_path / "p2")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p2" / "fig2b_window.png").is_file()
