"""Every static pruner, SOP+ and the pseudo-clean references end to end through train.py on digits."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY_DIGITS
from tests.test_static import STATIC

pytestmark = pytest.mark.slow

FAST = [a for a in TINY_DIGITS if not a.startswith("epochs=")] + ["epochs=2", "warmup.epochs=2", "num_threads=1"]


def train(args, env, tmp_path):
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *args,
            f"results_dir={tmp_path / 'results'}",
            f"warmup.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def rows(tmp_path):
    with open(tmp_path / "results" / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_static_method_in_one_sweep_sharing_one_warmup(cli_env, tmp_path):
    proc = train(
        ["-m", *FAST, f"pruner={','.join(STATIC)}", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cli_env, tmp_path
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    got = rows(tmp_path)
    assert sorted(r["pruner"] for r in got) == sorted(STATIC)
    for r in got:  # a fixed 70% subset for the whole schedule
        assert float(r["achieved_ratio"]) == pytest.approx(0.3, abs=0.01)
        assert float(r["avg_policy_pruned_fraction"]) == pytest.approx(0.3, abs=0.01)
    # one scoring warm-up (8 methods) and one full-length dynamics run (Dyn-Unc, DUAL); random_static needs none
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    assert log.count("warm-up cache miss") == 2 and log.count("warm-up cache hit") == len(STATIC) - 3
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    summary = next(s for s in summaries if s["pruner"] == "forgetting")
    assert summary["epochs_run"] == 2


def test_sop_plus_with_static_and_dynamic_pruners_and_pseudo_clean_reference(cli_env, tmp_path):
    proc = train(
        [
            "-m",
            *FAST,
            "loss=sop_plus",
            "pruner=prune4rel,infobatch_das",
            "reference=pseudo_clean_smalll",
            "reference.size=50",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cli_env,
        tmp_path,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    got = rows(tmp_path)
    assert sorted(r["pruner"] for r in got) == ["infobatch_das", "prune4rel"]
    assert all(r["reference"] == "pseudo_clean_smalll" and int(r["n_reference"]) == 50 for r in got)
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    assert [s["loss"] for s in summaries] == ["sop_plus", "sop_plus"]
    # one pool warm-up (reference) + one training-set warm-up (Prune4ReL), each trained once
    assert log.count("warm-up cache miss") == 2 and log.count("warm-up cache hit") == 1
