"""Paired per-seed differences (report/paired.py) on the hand-made rows of test_tables: exact means and intervals."""

from __future__ import annotations

import pytest

from alignprune_exp.report.cells import load_runs
from alignprune_exp.report.paired import paired_differences
from alignprune_exp.report.tables import write_tables
from tests.test_tables import write_results


def test_differences_pair_seeds_and_use_the_t_interval(tmp_path):
    rows = load_runs(write_results(tmp_path / "res"))
    diffs = paired_differences(rows).set_index("noise")
    clean = diffs.loc["clean"]  # seeds 0, 1: DAS 81 (the latest rerun), 81 vs loss 79, 80
    assert (clean["a"], clean["b"], clean["n"], clean["per_seed"]) == ("infobatch_das", "infobatch", 2, "+2.00 +1.00")
    assert clean["mean"] == pytest.approx(1.5) and clean["std"] == pytest.approx(2**-0.5)
    half = 12.7062047 * 2**-0.5 / 2**0.5  # t(0.975, df=1) x std / sqrt(n)
    assert (clean["lo"], clean["hi"]) == (pytest.approx(1.5 - half), pytest.approx(1.5 + half))
    assert clean["wins"] == 2
    worst = diffs.loc["real_worst"]  # seed 1 of InfoBatch lies in the older runs.1.csv: still paired
    assert worst["per_seed"] == "+6.00 +5.00" and worst["mean"] == pytest.approx(5.5)
    one = paired_differences(rows[rows["seed"].astype(str) == "0"]).set_index("noise").loc["real_worst"]
    assert one["n"] == 1 and one["mean"] == pytest.approx(6.0) and one["lo"] != one["lo"]  # one seed: no interval
    assert "pruner.policy.rescale=false" not in " ".join(diffs["b"])  # a variant is never paired with its base


def test_make_tables_writes_the_paired_and_per_cell_tables(tmp_path):
    out = tmp_path / "out"
    write_tables(write_results(tmp_path / "res"), out)
    paired = (out / "paired.md").read_text()
    assert "| clean | r30 | infobatch_das - infobatch | 2 | +2.00 +1.00 | +1.50 | [-4.85, +7.85] | 2/2 |" in paired
    metrics = (out / "metrics.md").read_text()
    assert "| infobatch_das | r30 | 2 | 81.00 ± 0.00 |" in metrics
