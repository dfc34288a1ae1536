"""scripts/gpu_check.sh --smoke: the prepared GPU check runs end to end on CPU with tiny sizes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.fake_data import write_cifar_n, write_cifar_npy


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_stage(tmp_path, cli_env):
    data = tmp_path / "data"
    fake = write_cifar_npy(data, "cifar10", n_train=800, n_test=0, seed=0)
    worse = fake.train_y.copy()
    flip = np.random.default_rng(0).random(len(worse)) < 0.4
    worse[flip] = (worse[flip] + 1) % 10
    write_cifar_n(data, "cifar10", fake.train_y, {"worse_label": worse})
    out = tmp_path / "gpu_check"
    env = dict(cli_env, PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(data), str(out), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trainer/bare time ratio median" in (out / "throughput.txt").read_text()
    assert "new/old" in (out / "decode.txt").read_text()
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert sorted((r["pruner"], r["ratio"]) for r in rows) == [
        ("full", "r0"),
        ("infobatch", "r30"),
        ("infobatch_das", "r30"),
    ]
    assert all(float(r["final_test_acc"]) >= 0 and r["noise"] == "real_worst" for r in rows)
    assert (out / "tables" / "tables.md").is_file() and "all stages passed" in proc.stdout


def test_gpu_check_refuses_a_data_dir_without_cifar10n(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path), "--smoke"],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ),
    )
    assert proc.returncode == 2 and "needs cifar10/train_x.npy" in proc.stderr
