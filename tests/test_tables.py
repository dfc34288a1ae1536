"""make_tables on hand-made results rows: means, stds, gaps to Full-training, missing cells, determinism;
and the packaged paper numbers are self-consistent."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alignprune_exp.report.cells import cell_stats, load_paper_results, load_runs, parse_overrides
from alignprune_exp.report.tables import write_tables
from alignprune_exp.runs.records import RESULT_COLUMNS
from tests.conftest import ROOT

SETTING = dict(
    experiment="t",
    dataset="cifar10",
    model="small_cnn",
    epochs="30",
    n_train="5000",
    n_test="1000",
    test_split="holdout",
)
RATIO = {"r0": 0.0, "r30": 0.3, "r50": 0.5}
# (pruner, ratio, noise, seed, final acc, overrides, timestamp)
ROWS = [
    ("full", "r0", "clean", 0, 80.0, "", "2026-01-01T00:00:00"),
    ("full", "r0", "clean", 1, 82.0, "", "2026-01-01T00:00:01"),
    ("full", "r0", "real_worst", 0, 60.0, "", "2026-01-01T00:00:02"),
    ("full", "r0", "real_worst", 1, 62.0, "", "2026-01-01T00:00:03"),
    ("infobatch", "r30", "clean", 0, 79.0, "", "2026-01-01T00:00:04"),
    ("infobatch", "r30", "clean", 1, 80.0, "", "2026-01-01T00:00:05"),
    ("infobatch", "r30", "real_worst", 0, 58.0, "", "2026-01-01T00:00:06"),
    # a rerun of the same job: only the latest row counts (the older one comes later in the file)
    ("infobatch_das", "r30", "clean", 0, 81.0, "", "2026-01-02T00:00:00"),
    ("infobatch_das", "r30", "clean", 0, 10.0, "", "2026-01-01T00:00:07"),
    ("infobatch_das", "r30", "clean", 1, 81.0, "", "2026-01-01T00:00:08"),
    ("infobatch_das", "r30", "real_worst", 0, 64.0, "", "2026-01-01T00:00:09"),
    ("infobatch_das", "r30", "real_worst", 1, 66.0, "", "2026-01-01T00:00:10"),
    ("random_dynamic", "r50", "clean", 0, 78.0, "", "2026-01-01T00:00:11"),
    ("random_dynamic", "r50", "clean", 1, 78.0, "", "2026-01-01T00:00:12"),
    # a variant of InfoBatch is its own row, never averaged into InfoBatch
    (
        "infobatch",
        "r30",
        "clean",
        0,
        70.0,
        "+experiment=t,noise=clean,pruner.policy.rescale=false,seed=0",
        "2026-01-01T00:00:13",
    ),
]
OLD_FILE_ROW = ("infobatch", "r30", "real_worst", 1, 61.0)  # in runs.1.csv, an older column set


def _row(pruner, ratio, noise, seed, acc, overrides="", timestamp=""):
    return {
        **SETTING,
        "pruner": pruner,
        "ratio": ratio,
        "target_ratio": RATIO[ratio],
        "noise": noise,
        "seed": seed,
        "final_test_acc": acc,
        "overrides": overrides,
        "timestamp": timestamp,
        "wall_time_s": 60.0 * (seed + 1),
        "avg_policy_pruned_fraction": 0.25,
        "run_dir": f"/nowhere/{pruner}_{ratio}_{noise}_{seed}_{timestamp}",
    }


def write_results(folder, order=None):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [_row(*r) for r in ROWS]
    if order is not None:
        rows = [rows[i] for i in order]
    with open(folder / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    old_cols = [
        "timestamp",
        "experiment",
        "dataset",
        "noise",
        "model",
        "pruner",
        "ratio",
        "seed",
        "target_ratio",
        "final_test_acc",
        "epochs",
        "n_train",
        "n_test",
        "test_split",
        "overrides",
        "run_dir",
    ]
    with open(folder / "runs.1.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old_cols, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerow(_row(*OLD_FILE_ROW, timestamp="2026-01-01T00:00:20"))
    return folder


def table_lines(path):
    return {
        line.split(" | ")[0].lstrip("| ").strip(): line
        for line in path.read_text().splitlines()
        if line.startswith("| ")
    }


def test_cells_hold_means_stds_and_gaps(tmp_path):
    cells = cell_stats(load_runs(write_results(tmp_path / "res")))
    by = {(c.ratio, c.method, c.noise): c for c in cells.itertuples()}
    full = by[("r0", "full", "clean")]
    assert (full.mean, full.n) == (81.0, 2) and full.std == pytest.approx(np.sqrt(2))
    assert np.isnan(full.delta)
    ib = by[("r30", "infobatch", "real_worst")]  # 58 from runs.csv, 61 from runs.1.csv
    assert (ib.mean, ib.n, ib.delta) == (59.5, 2, -1.5)
    das = by[("r30", "infobatch_das", "clean")]  # the older rerun (10.0) is dropped
    assert (das.mean, das.n, das.delta) == (81.0, 2, 0.0)
    assert by[("r30", "infobatch_das", "real_worst")].delta == pytest.approx(4.0)
    variant = by[("r30", "infobatch [pruner.policy.rescale=false]", "clean")]
    assert (variant.mean, variant.n, variant.delta) == (70.0, 1, -11.0)
    assert by[("r30", "infobatch", "clean")].mean == 79.5
    assert ("r50", "random_dynamic", "real_worst") not in by


def test_markdown_and_latex_tables(tmp_path):
    out = tmp_path / "out"
    write_tables(write_results(tmp_path / "res"), out, std=True)
    md = (out / "tables.md").read_text()
    assert md.count("### t | CIFAR-10N (small_cnn, 30 epochs, 5000 train, holdout test 1000)") == 1
    assert "| Method | Clean | Real-W | Mean Δ |" in md
    lines = table_lines(out / "tables.md")
    assert lines["Full-training"] == "| Full-training | 81.0 ± 1.4 | 61.0 ± 1.4 | – |"
    assert lines["InfoBatch"] == "| InfoBatch | 79.5 ± 0.7 (-1.5) | 59.5 ± 2.1 (-1.5) | -1.5 |"
    assert lines["InfoBatch + Ours"] == "| InfoBatch + Ours | 81.0 ± 0.0 (+0.0) | 65.0 ± 1.4 (+4.0) | +2.0 |"
    assert lines["InfoBatch [pruner.policy.rescale=false]"] == (
        "| InfoBatch [pruner.policy.rescale=false] | 70.0 (-11.0) [n=1] | – | – |"
    )
    assert lines["Dynamic Random"] == "| Dynamic Random | 78.0 ± 0.0 (-3.0) | – | – |"
    # ratio groups in order, methods in the paper's order inside each
    order = [line for line in md.splitlines() if line.startswith("| ")]
    names = [line.split(" | ")[0][2:] for line in order]
    assert names[2:] == [
        "**Prune ratio ~30%**",
        "InfoBatch",
        "InfoBatch [pruner.policy.rescale=false]",
        "InfoBatch + Ours",
        "**Prune ratio ~50%**",
        "Dynamic Random",
    ]
    tex = (out / "tables.tex").read_text()
    assert r"79.5{\scriptsize$\pm$0.7}$^{-1.5}$" in tex and r"\multicolumn{4}{c}{Prune ratio $\sim$30\%}" in tex
    assert r"70.0$^{-11.0}$\,{\tiny[n=1]} & -- & --" in tex
    eff = (out / "efficiency.md").read_text()
    assert "| | InfoBatch | InfoBatch [pruner.policy.rescale=false] | InfoBatch + Ours | Full data |" in eff
    assert "| Time (min) | 1.5 | 1.0 | 1.5 | 1.5 |" in eff


def test_without_std_and_forced_rows(tmp_path):
    out = tmp_path / "out"
    write_tables(write_results(tmp_path / "res"), out, methods=["seta"])
    lines = table_lines(out / "tables.md")
    assert lines["InfoBatch"] == "| InfoBatch | 79.5 (-1.5) | 59.5 (-1.5) | -1.5 |"
    assert lines["SeTa"] == "| SeTa | – | – | – |"


def test_output_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_tables(write_results(tmp_path / "res1"), a, std=True)
    write_tables(write_results(tmp_path / "res2", order=list(reversed(range(len(ROWS))))), b, std=True)
    for name in ("tables.md", "tables.tex", "cells.csv", "paper_vs_measured.md", "efficiency.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    write_tables(tmp_path / "res1", a, std=True)  # rerun on the same rows: same bytes
    assert (a / "tables.md").read_bytes() == (b / "tables.md").read_bytes()


def test_paper_vs_measured(tmp_path):
    out = tmp_path / "out"
    write_tables(write_results(tmp_path / "res"), out)
    text = (out / "paper_vs_measured.md").read_text()
    # Table 2: Full-training Clean 95.6; InfoBatch ~30% Clean 95.3 (-0.3); InfoBatch + Ours ~30% Real-W 82.0 (+3.7)
    assert "| r0 | Full-training | Clean | 95.6 | 81.0 ± 1.4 (n=2) | -14.6 | – | – | Table 2 |" in text
    assert "| r30 | InfoBatch | Clean | 95.3 | 79.5 ± 0.7 (n=2) | -15.8 | -0.3 | -1.5 | Table 2 |" in text
    assert "| r30 | InfoBatch + Ours | Real-W | 82.0 | 65.0 ± 1.4 (n=2) | -17.0 | +3.7 | +4.0 | Table 2 |" in text
    assert "rescale" not in text  # variants are not the paper's methods


def test_parse_overrides_keeps_commas_inside_values():
    assert parse_overrides('+experiment=t,a.b=[1,2],c="x,y",~d=1') == {
        "experiment": "t",
        "a.b": "[1,2]",
        "c": '"x,y"',
        "d": "1",
    }


def test_paper_results_are_self_consistent():
    paper = load_paper_results()
    assert set(paper["table"]) == {"Table 1", "Table 2", "Table B", "Table C"}
    keys = list(zip(paper["dataset"], paper["ratio"], paper["method"], paper["noise"]))
    assert len(keys) == len(set(keys))
    full = {
        (d, z): v
        for d, r, m, z, v in zip(paper["dataset"], paper["ratio"], paper["method"], paper["noise"], paper["value"])
        if m == "full"
    }
    assert len(full) == 7 + 8
    rest = paper[paper["method"] != "full"]
    # every cell's printed gap (the superscript) agrees with its value and the Full-training value
    gaps = rest["value"] - [full[(d, z)] for d, z in zip(rest["dataset"], rest["noise"])]
    assert np.all(np.abs(gaps.round(1) - rest["paper_delta"]) <= 0.11)
    assert paper["provenance"].str.startswith(tuple(paper["table"].unique())).all()
    cell = {k: v for k, v in zip(keys, paper["value"])}
    # spot checks against the paper's text
    assert cell[("cifar100", "r30", "infobatch_das", "sym0.5")] == 66.0  # Table 1
    assert cell[("cifar100", "r70", "random_static", "sym0.8")] == 15.8  # Table 1
    assert cell[("cifar10", "r0", "full", "real_worst")] == 78.3  # Table 2
    assert cell[("cifar10", "r50", "seta", "sym0.8")] == 53.0  # Table 2
    assert cell[("cifar100", "r30", "ssp", "sym0.8")] == 7.9  # Table B
    assert cell[("cifar100", "r30", "divbs", "sym0.8")] == 20.8  # Table B (interleaved line)
    assert cell[("cifar10", "r70", "prune4rel", "asym0.2")] == 74.2  # Table C
    assert cell[("cifar10", "r30", "random_static", "clean")] == 94.6  # Table C fills Table 2's gap
    assert ("cifar10", "r50", "dual", "real_worst") not in cell  # garbled: left out


def test_cli_writes_tables_and_fails_cleanly(tmp_path):
    env_path = str(ROOT / "src")
    script = str(ROOT / "scripts" / "make_tables.py")
    res = write_results(tmp_path / "res")
    proc = subprocess.run(
        [sys.executable, script, str(res), "--out", str(tmp_path / "out"), "--std"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "tables.md").is_file() and "tables.tex" in proc.stdout
    proc = subprocess.run(
        [sys.executable, script, str(tmp_path / "none"), "--out", str(tmp_path / "o2")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path},
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: no runs*.csv")


COMMITTED = Path(__file__).resolve().parents[1] / "results" / "cifar10n_cpu"


@pytest.mark.skipif(not (COMMITTED / "runs.csv").is_file(), reason="no committed results/cifar10n_cpu study yet")
def test_committed_tables_are_reproduced_byte_for_byte(tmp_path):
    write_tables(COMMITTED, tmp_path, std=True)
    for name in ("tables.md", "tables.tex", "cells.csv", "paper_vs_measured.md", "efficiency.md"):
        assert (tmp_path / name).read_bytes() == (COMMITTED / "tables" / name).read_bytes(), name
