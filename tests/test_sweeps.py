"""The cells sweeper: a value typed on the command line that has no config file fails its cells (the others
run); options an experiment grid names before their config file exists are skipped on purpose and listed."""

from __future__ import annotations

import csv
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path

from hydra_plugins.alignprune_sweeper.cells_sweeper import CellSweeper
from tests.conftest import CONF_DIR, ROOT, TINY_DIGITS


def _sweeper(**params) -> CellSweeper:
    sweeper = CellSweeper(params=params)
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF_DIR)))
    sweeper.hydra_context = SimpleNamespace(config_loader=loader)
    return sweeper


def test_typed_missing_option_fails_its_cells_and_a_grid_one_is_skipped():
    sweeper = _sweeper(pruner="infobatch,not_a_pruner")
    jobs = sweeper.job_overrides(["ratio=r30,r99", "seed=0"])
    assert sorted(jobs) == [["pruner=infobatch", "ratio=r30", "seed=0"]]
    assert sweeper.skipped == {"pruner=not_a_pruner": 1}  # the grid's own, on purpose: skipped
    # The typed typo: its cells are failures (whatever the pruner), with the reason.
    assert sorted(job for job, _ in sweeper.invalid) == [
        ["pruner=infobatch", "ratio=r99", "seed=0"],
        ["pruner=not_a_pruner", "ratio=r99", "seed=0"],
    ]
    assert all("ratio=r99 does not exist: no config file ratio/r99.yaml" in err for _, err in sweeper.invalid)
    assert all("r30" in err for _, err in sweeper.invalid)  # the options that do exist are listed
    # A typed value overriding the grid's key is the user's: it fails too.
    sweeper = _sweeper(pruner="infobatch")
    assert sweeper.job_overrides(["pruner=infobatch_dass"]) == []
    assert [job for job, _ in sweeper.invalid] == [["pruner=infobatch_dass"]]
    # skip_missing=false leaves the grid's missing option to fail the sweep up front (validation), as before.
    strict = _sweeper(pruner="infobatch,not_a_pruner")
    strict.skip_missing = False
    assert len(strict.job_overrides(["ratio=r30,r99"])) == 2 and len(strict.invalid) == 2


@pytest.mark.slow
def test_cli_sweep_with_a_typo_fails_its_cells_and_runs_the_others(cli_env, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            *[a for a in TINY_DIGITS if not a.startswith(("epochs=", "ratio="))],
            "epochs=2",
            "num_threads=1",
            "snapshots=false",
            "ratio=r30,r99",
            "seed=0,1",
            f"results_dir={tmp_path / 'results'}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=ROOT,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    with open(tmp_path / "results" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["ratio"], r["seed"], r["status"]) for r in rows) == [
        ("r30", "0", "completed"),
        ("r30", "1", "completed"),
    ]
    lines = out.splitlines()
    report = lines[next(i for i, line in enumerate(lines) if "cell(s) failed" in line) :]
    assert report[0].startswith("2 of 4 cell(s) failed"), report
    failed = [line for line in report[1:] if "ratio=r99" in line]
    assert len(failed) == 2, report
    assert all("ratio=r99 does not exist" in line and "ratio/r99.yaml" in line for line in failed)
    assert {"seed=0", "seed=1"} == {w.rstrip(":") for line in failed for w in line.split() if w.startswith("seed=")}
    assert "Traceback" not in out
