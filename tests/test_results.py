"""runs.csv appends: complete rows under concurrency, older files never rewritten."""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor

from alignprune_exp.runs.records import RESULT_COLUMNS, RunRecorder, append_result_row


def _append(args):
    results_dir, i = args
    append_result_row(
        results_dir, {"pruner": f"p{i}", "seed": i, "final_test_acc": 50.0 + i, "overrides": 'a=1,b="x,y"'}
    )


def test_concurrent_appends_give_whole_rows(tmp_path):
    with ProcessPoolExecutor(max_workers=4) as pool:
        list(pool.map(_append, [(tmp_path, i) for i in range(40)]))
    with open(tmp_path / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40
    assert sorted(int(r["seed"]) for r in rows) == list(range(40))
    assert all(r["overrides"] == 'a=1,b="x,y"' for r in rows)
    assert list(rows[0]) == RESULT_COLUMNS


def test_foreign_header_is_left_alone(tmp_path):
    old = tmp_path / "runs.csv"
    old.write_text("a,b\n1,2\n")
    path = append_result_row(tmp_path, {"pruner": "infobatch", "final_test_acc": float("nan")})
    assert old.read_text() == "a,b\n1,2\n"
    assert path.name == "runs.1.csv"
    with open(path, newline="") as f:
        row = next(csv.DictReader(f))
    assert row["pruner"] == "infobatch" and row["final_test_acc"] == ""


def test_recorder_writes_jsonl_and_summary(tmp_path):
    rec = RunRecorder(tmp_path / "run")
    rec.log_epoch({"epoch": 0, "test/acc": float("nan")})
    rec.log_epoch({"epoch": 1, "test/acc": 12.5})
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert lines == ['{"epoch": 0, "test/acc": null}', '{"epoch": 1, "test/acc": 12.5}']
    rec.write_summary({"final_test_acc": 12.5})
    assert '"final_test_acc": 12.5' in (tmp_path / "run" / "summary.json").read_text()
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_full_disk_append_fails_loudly_and_leaves_the_file_whole(tmp_path, monkeypatch):
    import os

    import pytest

    from alignprune_exp.core.errors import ResultsWriteError
    from alignprune_exp.runs import durable
    from tests.faults import short_writer

    append_result_row(tmp_path, {"pruner": "full", "seed": 0, "run_id": "a"})
    before = (tmp_path / "runs.csv").read_bytes()
    monkeypatch.setattr(durable, "_os_write", short_writer(os.write))  # half the row, then ENOSPC
    with pytest.raises(ResultsWriteError, match="No space left on device.*--rebuild"):
        append_result_row(tmp_path, {"pruner": "infobatch", "seed": 1, "run_id": "b"})
    assert (tmp_path / "runs.csv").read_bytes() == before


def test_torn_last_line_is_set_aside_and_reruns_are_not_appended_twice(tmp_path):
    from alignprune_exp.report.read import load_results

    append_result_row(tmp_path, {"pruner": "full", "seed": 0, "run_id": "a"})
    with open(tmp_path / "runs.csv", "a") as f:
        f.write("2026-01-01,half,a,row")  # a crash mid-append: no newline
    append_result_row(tmp_path, {"pruner": "infobatch", "seed": 1, "run_id": "b"})
    append_result_row(tmp_path, {"pruner": "infobatch", "seed": 1, "run_id": "b"})  # a resumed run, again
    rows, problems = load_results(tmp_path)
    assert rows["run_id"].tolist() == ["a", "b"]
    assert (tmp_path / "runs.csv.torn").read_text() == "2026-01-01,half,a,row\n"
    assert len(problems) == 1 and "runs.csv.torn: 1 torn row(s)" in problems[0]


def test_readers_skip_glued_rows_merge_machines_and_rebuild(tmp_path, cli_env):
    import json
    import subprocess
    import sys

    from alignprune_exp.report.read import load_results, rebuild_index
    from tests.conftest import ROOT

    for i, host in enumerate(("node1", "node2")):
        run = tmp_path / "runs" / host
        run.mkdir(parents=True)
        summary = {
            "pruner": "infobatch",
            "noise": "sym0.5",
            "ratio": "r30",
            "seed": i,
            "final_test_acc": 50.0 + i,
            "status": "completed",
            "run_id": f"id{i}",
            "run_dir": str(run),
            "timestamp": f"2026-01-0{i + 1}",
        }
        (run / "summary.json").write_text(json.dumps(summary))
        append_result_row(tmp_path, summary, filename=f"runs.{host}.csv")
    failed = tmp_path / "runs" / "failed"
    failed.mkdir()
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "run_id": "x", "seed": 9}))
    with open(tmp_path / "runs.node1.csv", "a") as f:  # a row glued to a half row: 2x the fields
        f.write(",".join(["1"] * (2 * len(RESULT_COLUMNS) - 1)) + "\n")
    rows, problems = load_results(tmp_path)
    assert sorted(rows["seed"]) == ["0", "1"] and len(problems) == 1
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "summarize_runs.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env,
    )
    assert proc.returncode == 0 and "skipped 1 unreadable row" in proc.stderr and "51.000" in proc.stdout
    path, n = rebuild_index(tmp_path)
    assert n == 2 and not (tmp_path / "runs.node1.csv").exists() and (tmp_path / "runs.node1.csv.bak").exists()
    rows, problems = load_results(path)
    assert rows["seed"].tolist() == ["0", "1"] and rows["status"].tolist() == ["completed"] * 2 and not problems
