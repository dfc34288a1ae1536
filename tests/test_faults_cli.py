"""Faults through the CLI: kill -9 and SIGTERM at chosen points then resume, bit for bit; sweeps that outlive
bad cells and skip finished ones on relaunch; a full disk that leaves runs.csv whole and fails the run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from alignprune_exp.runs.records import RESULT_COLUMNS
from tests.cli_fork import ForkedCLI
from tests.conftest import TINY_DIGITS

pytestmark = pytest.mark.slow

RUN = [
    *TINY_DIGITS,
    "pruner=infobatch_das",
    "pruner.scorer.window=3",
    "num_threads=1",
    "checkpoint_every=1",
    "resume=auto",
]
# wall times, and what names the two results folders (run_id hashes results_dir in)
WALL_TIME = ("wall_time_s", "total_time_s", "timestamp", "run_dir", "overrides", "run_id")


@pytest.fixture(scope="module")
def cli():
    return ForkedCLI()


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def records(run_dir):
    """metrics.jsonl without its wall-time fields."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]


def only_run_dir(results):
    """The run folder the index records, relative to the results folder when inside it."""
    return json.loads(next((results / ".run_index").glob("*.json")).read_text())["run_dir"]


def test_killed_and_stopped_runs_resume_to_the_uninterrupted_result(cli, tmp_path):
    ref_results, results = tmp_path / "ref", tmp_path / "res"
    rc, out = cli([*RUN, f"results_dir={ref_results}"], tmp_path)
    assert rc == 0, out[-3000:]
    # (fault injected, expected exit status): SIGTERM mid-epoch 1 (batch 16; epoch 0 has 12 batches: the epoch
    # finishes, checkpoint, exit 3);
    # SIGKILL during the 2nd reference evaluation, in the middle of writing a checkpoint, and between
    # summary.json and the runs.csv row; then a clean resume, and one more that finds the run finished.
    steps = [
        ("train_batch:16:TERM", 3),
        ("ref_eval:2", -9),
        ("ckpt_write:1", -9),
        ("after_summary:1", -9),
        ("", 0),
        ("", 0),
    ]
    outs = []
    for kill_at, expected in steps:
        rc, out = cli([*RUN, f"results_dir={results}"], tmp_path, {"ALIGNPRUNE_TEST_KILL_AT": kill_at})
        assert rc == expected, (kill_at, out[-3000:])
        outs.append(out)
    stopped = [line for line in outs[0].splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1 and "stopped by SIGTERM at epoch 2" in stopped[0] and "resume=auto" in stopped[0]
    assert "Traceback" not in outs[0]
    assert "already completed" in outs[-1]
    ref_dir, run_dir = ref_results / only_run_dir(ref_results), results / only_run_dir(results)
    assert run_dir == min((results / "runs").glob("*/*"))  # every resume wrote into the first run's folder
    ref_records, got = records(ref_dir), records(run_dir)
    assert len(ref_records) >= 5 and got == ref_records  # every epoch record, bit for bit
    ref_summary, summary = (json.loads((d / "summary.json").read_text()) for d in (ref_dir, run_dir))
    assert {k: v for k, v in summary.items() if k not in WALL_TIME} == {
        k: v for k, v in ref_summary.items() if k not in WALL_TIME
    }
    assert summary["status"] == "completed" and summary["code_version"].startswith(("git:", "pkg:"))
    with np.load(ref_dir / "snapshots.npz") as a, np.load(run_dir / "snapshots.npz") as b:
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    csv_ref, csv_got = (rows_of(d / "metrics.csv") for d in (ref_dir, run_dir))
    assert [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv_got] == [
        {k: v for k, v in r.items() if not k.startswith("time/")} for r in csv_ref
    ]
    rows = rows_of(results / "runs.csv")
    assert len(rows) == 1 and rows[0]["status"] == "completed"  # written exactly once
    assert rows[0]["final_test_acc"] == rows_of(ref_results / "runs.csv")[0]["final_test_acc"]
    assert not (run_dir / "checkpoint.pt").exists()  # removed once the run completed


BAD_CELLS = {  # override -> the words its one-line error must contain (every setting: test_validation.py)
    "batch_size=0": "batch_size=0 must be an integer >= 1",
    "epochs=five": "epochs='five' must be an integer >= 1",
    "optimizer.lr=1e9": "training diverged at epoch",
}


def test_sweep_outlives_bad_cells_and_relaunch_skips_finished_ones(cli, tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    cells = [*BAD_CELLS, f"results_dir={blocked / 'sub'}"]
    extra = "[" + ",".join("{" + c.replace("=", ":", 1) + "}" for c in cells) + "]"
    args = [
        "-m",
        *RUN,
        "epochs=2",
        "snapshots=false",
        f"results_dir={tmp_path / 'res'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.extra={extra}",
    ]
    rc, out = cli(args, tmp_path)
    assert rc == 1, out[-3000:]
    lines = out.splitlines()
    report = lines[next(i for i, line in enumerate(lines) if "cell(s) failed" in line) :]
    assert report[0].startswith(f"{len(cells)} of {len(cells) + 1} cell(s) failed")
    for cell, message in {**BAD_CELLS, cells[-1]: f"results_dir={blocked / 'sub'} is not writable"}.items():
        line = next((line for line in report[1:] if f" {cell.replace('1e9', '1000000000.0')}:" in line), report)
        assert message in line, line
    assert "Traceback" not in out
    logs = {p.parent.name: p.read_text() for p in (tmp_path / "sweep").glob("*/cli.log")}
    assert "error: batch_size=0 must be" in logs["1"]  # each cell's error is in its own log
    rows = rows_of(tmp_path / "res" / "runs.csv")
    assert sorted(r["status"] for r in rows) == ["completed", "diverged"]  # the good cell and the diverged one
    good = next(r for r in rows if r["status"] == "completed")
    assert float(good["final_test_acc"]) > 0
    # The same grid again: finished cells are skipped (no new row), the bad ones fail again.
    rc, out = cli(args, tmp_path)
    assert rc == 1 and out.count("already completed") == 1 and out.count("already diverged") == 1, out[-3000:]
    assert "training diverged at epoch 0 (loss nan): lower the learning rate (an earlier run" in out
    assert rows_of(tmp_path / "res" / "runs.csv") == rows


def test_full_disk_leaves_runs_csv_whole_and_fails_the_run(cli, tmp_path):
    results = tmp_path / "res"
    results.mkdir()
    before = ",".join(RESULT_COLUMNS) + "\n" + ",".join(["x"] * len(RESULT_COLUMNS)) + "\n"
    (results / "runs.csv").write_text(before)
    env = {"ALIGNPRUNE_TEST_FAULT": "short_write"}
    rc, out = cli([*RUN, "epochs=2", f"results_dir={results}"], tmp_path, env)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1, out[-3000:]
    assert "No space left on device" in errors[0] and "--rebuild" in errors[0]
    assert (results / "runs.csv").read_text() == before  # no half row left behind
    summary = json.loads(next(results.glob("runs/*/*/summary.json")).read_text())
    assert summary["status"] == "completed"  # the record runs.csv can be rebuilt from


def _no_temp_files(results):
    return [str(p) for p in results.rglob("*") if p.name.endswith(".tmp")]


def _one_error_line(rc, out):
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in out, out[-3000:]
    assert "No space left on device" in errors[0] and "resume=auto" in errors[0], errors[0]
    return errors[0]


def test_full_disk_on_the_run_index_is_one_line_and_leaves_nothing(cli, tmp_path):
    results = tmp_path / "res"
    env = {"ALIGNPRUNE_TEST_FAULT": "enospc:*/.run_index/*.json"}
    rc, out = cli([*RUN, "epochs=2", f"results_dir={results}"], tmp_path, env)
    assert ".run_index" in _one_error_line(rc, out)
    assert _no_temp_files(results) == [] and not list((results / ".run_index").glob("*"))


def test_full_disk_on_a_checkpoint_fails_the_run_in_its_records(cli, tmp_path):
    results = tmp_path / "res"
    env = {"ALIGNPRUNE_TEST_FAULT": "enospc:*/checkpoint.pt"}
    rc, out = cli([*RUN, "epochs=2", f"results_dir={results}"], tmp_path, env)
    assert "checkpoint.pt" in _one_error_line(rc, out)
    assert _no_temp_files(results) == []
    run_dir = results / only_run_dir(results)
    assert not (run_dir / "checkpoint.pt").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "checkpoint.pt" in summary["error"]
    assert json.loads(next((results / ".run_index").glob("*.json")).read_text())["status"] == "failed"
    assert not (results / "runs.csv").exists()  # no row for a failed run


def test_full_disk_on_the_summary_fails_the_run_and_a_relaunch_completes_it(cli, tmp_path):
    results = tmp_path / "res"
    env = {"ALIGNPRUNE_TEST_FAULT": "enospc:*/summary.json"}
    rc, out = cli([*RUN, "epochs=2", f"results_dir={results}"], tmp_path, env)
    assert "summary.json" in _one_error_line(rc, out)
    assert _no_temp_files(results) == []
    run_dir = results / only_run_dir(results)
    assert not (run_dir / "summary.json").exists() and (run_dir / "checkpoint.pt").is_file()
    assert json.loads(next((results / ".run_index").glob("*.json")).read_text())["status"] == "failed"
    assert not (results / "runs.csv").exists()
    rc, out = cli([*RUN, "epochs=2", f"results_dir={results}"], tmp_path)  # space freed: resume=auto finishes it
    assert rc == 0, out[-3000:]
    rows = rows_of(results / "runs.csv")
    assert len(rows) == 1 and rows[0]["status"] == "completed" and results / rows[0]["run_dir"] == run_dir


def test_a_moved_results_folder_still_finds_its_run_folders(cli, tmp_path):
    import shutil

    from alignprune_exp.report.read import load_results

    results = tmp_path / "res"
    rc, out = cli([*RUN, "epochs=2", f"results_dir={results}"], tmp_path)
    assert rc == 0, out[-3000:]
    row = rows_of(results / "runs.csv")[0]
    assert row["run_dir"].startswith("runs/") and (results / row["run_dir"] / "summary.json").is_file()
    assert json.loads((results / row["run_dir"] / "summary.json").read_text())["run_dir"] == row["run_dir"]
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(results, moved)
    shutil.rmtree(results)
    rows, problems = load_results(moved)
    assert rows["run_dir"].tolist() == [str(moved / row["run_dir"])] and not problems
    assert (moved / row["run_dir"] / "metrics.jsonl").is_file()
    index = json.loads(next((moved / ".run_index").glob("*.json")).read_text())
    assert (moved / index["run_dir"]).is_dir()  # the index follows the copy too (tests/test_results_integrity.py)
