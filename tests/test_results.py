"""runs.csv appends: complete rows under concurrency, older files never rewritten."""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor

from alignprune_exp.results import RESULT_COLUMNS, RunRecorder, append_result_row


def _append(args):
    results_dir, i = args
    append_result_row(results_dir, {"pruner": f"p{i}", "seed": i, "final_test_acc": 50.0 + i,
                                    "overrides": 'a=1,b="x,y"'})


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
