"""Results that survive full disks, torn rows, garbage lines and moved folders: every durable write fails as
one project error with no temporary file left; readers parse line by line and keep every good row; a torn
last row is set aside by the next append; --rebuild never loses a row; run folders are recorded relative to
the results folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest

from alignprune_exp.core.errors import ResultsWriteError
from alignprune_exp.report.cells import load_runs
from alignprune_exp.report.read import load_results, rebuild_index
from alignprune_exp.runs import durable
from alignprune_exp.runs.durable import WriteFailed, append_checked, atomic_write_bytes
from alignprune_exp.runs.records import RESULT_COLUMNS, append_result_row, relative_run_dir, result_line
from alignprune_exp.runs.resume import plan, read_index, write_index
from tests.conftest import ROOT

SUMMARIZE = ROOT / "scripts" / "summarize_runs.py"


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("step", ["open", "write", "fsync", "replace"])
def test_every_failing_step_of_an_atomic_write_is_one_error_and_leaves_no_temp_file(tmp_path, monkeypatch, step):
    path = tmp_path / "index.json"
    path.write_bytes(b"old")
    real_open = os.open
    if step == "open":  # the temporary file's open fails (the folder's own open still works)
        monkeypatch.setattr(
            os, "open", lambda p, *a, **k: _enospc() if str(p).endswith(".tmp") else real_open(p, *a, **k)
        )
    elif step == "write":
        monkeypatch.setattr(
            durable, "_os_write", lambda fd, data: os.write(fd, data[:3]) if len(data) > 3 else _enospc()
        )
    else:
        monkeypatch.setattr(os, step, _enospc)
    with pytest.raises(ResultsWriteError) as err:
        atomic_write_bytes(path, b"new content")
    monkeypatch.undo()
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "No space left on device" in message
    assert "resume=auto" in message
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_a_failed_append_is_one_error_and_leaves_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    append_checked(path, b'{"epoch": 0}\n')
    monkeypatch.setattr(durable, "_os_write", lambda fd, data: os.write(fd, data[:2]) if len(data) > 2 else _enospc())
    with pytest.raises(WriteFailed, match="could not write .*metrics.jsonl .No space left on device."):
        append_checked(path, b'{"epoch": 1}\n')
    assert path.read_bytes() == b'{"epoch": 0}\n'


def _row(seed, **extra):
    return {
        "pruner": "infobatch",
        "noise": "sym0.5",
        "ratio": "r30",
        "seed": seed,
        "final_test_acc": 50.0 + seed,
        "status": "completed",
        "run_id": f"id{seed}",
        "overrides": f'pruner=infobatch,seed={seed},+tag="a,b"',
        "timestamp": f"2026-01-01T00:00:0{seed}",
        **extra,
    }


def _cuts(line):
    quoted = line.index('"')  # the overrides field, quoted
    return {"in_first_field": 5, "in_quoted_overrides": quoted + 10, "before_newline": len(line) - 1}


@pytest.mark.parametrize("where", ["in_first_field", "in_quoted_overrides", "before_newline"])
def test_a_torn_last_row_is_set_aside_by_the_next_append(tmp_path, where):
    append_result_row(tmp_path, _row(0))
    torn = result_line(_row(1))
    cut = torn[: _cuts(torn)[where]]
    with open(tmp_path / "runs.csv", "a") as f:
        f.write(cut)  # a crash mid-append: part of a row, no newline
    append_result_row(tmp_path, _row(2))
    append_result_row(tmp_path, _row(3))
    rows, problems = load_results(tmp_path)
    assert rows["seed"].tolist() == ["0", "2", "3"]
    assert rows["overrides"].tolist()[1] == 'pruner=infobatch,seed=2,+tag="a,b"'
    assert (tmp_path / "runs.csv.torn").read_text() == cut + "\n"
    assert len(problems) == 1 and "runs.csv.torn: 1 torn row(s)" in problems[0]
    assert (tmp_path / "runs.csv").read_text().count("\n") == 4  # header + 3 whole rows


def test_a_torn_header_is_set_aside_and_the_file_restarts(tmp_path):
    (tmp_path / "runs.csv").write_text("timestamp,experi")
    append_result_row(tmp_path, _row(0))
    rows, _ = load_results(tmp_path / "runs.csv")
    assert rows["seed"].tolist() == ["0"] and not (tmp_path / "runs.1.csv").exists()


def _write_lines(path, *lines):
    with open(path, "a") as f:
        f.write("".join(line if line.endswith("\n") else line + "\n" for line in lines))


def test_readers_set_aside_garbage_repeated_headers_and_unclosed_quotes_line_by_line(tmp_path):
    path = tmp_path / "runs.csv"
    append_result_row(tmp_path, _row(0))
    header = ",".join(RESULT_COLUMNS)
    _write_lines(path, "garbage", header, result_line(_row(1)), 'x,"unclosed,quote', result_line(_row(2)))
    _write_lines(path, result_line(_row(3))[:-30])  # an old torn row closed by a newline
    _write_lines(path, result_line(_row(4)))
    rows, problems = load_results(tmp_path)
    assert rows["seed"].tolist() == ["0", "1", "2", "4"]
    assert len(problems) == 4
    assert "runs.csv:3: 1 fields" in problems[0] and "runs.csv:4: a repeated header" in problems[1]
    assert "runs.csv:6: an unclosed quote" in problems[2] and "runs.csv:8:" in problems[3]


def test_a_later_bad_row_of_a_run_never_hides_its_good_row(tmp_path):
    append_result_row(tmp_path, _row(0))
    for bad in ({"status": "compl\x00eted"}, {"final_test_acc": "51.2.3"}, {"timestamp": "zz-not-a-time"}):
        _write_lines(tmp_path / "runs.csv", result_line({**_row(0), "timestamp": "2026-02-01T00:00:00", **bad}))
    rows, problems = load_results(tmp_path)
    assert rows["final_test_acc"].tolist() == ["50.0"] and len(problems) == 3
    assert "status" in problems[0] and "final_test_acc" in problems[1] and "timestamp" in problems[2]
    runs = load_runs(tmp_path)
    assert runs["seed"].tolist() == ["0"] and runs["final_test_acc"].tolist() == ["50.0"]


def _run_folders_elsewhere(tmp_path, seeds):
    results, elsewhere = tmp_path / "results", tmp_path / "scratch" / "runs"
    for seed in seeds:
        run = elsewhere / f"run{seed}"
        run.mkdir(parents=True)
        summary = _row(seed, run_dir=str(run))
        (run / "summary.json").write_text(json.dumps(summary))
        append_result_row(results, summary)
    return results, elsewhere


def _summarize(*args, env):
    return subprocess.run(
        [sys.executable, str(SUMMARIZE), *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )


def test_rebuild_follows_the_run_folders_the_rows_name(tmp_path, cli_env):
    results, _ = _run_folders_elsewhere(tmp_path, [0, 1, 2])
    before = (results / "runs.csv").read_text()
    proc = _summarize("--rebuild", results, env=cli_env)
    assert proc.returncode == 0 and "from 3 run folder(s)" in proc.stdout, proc.stderr
    assert (results / "runs.csv.bak").read_text() == before
    rows, problems = load_results(results)
    assert rows["seed"].tolist() == ["0", "1", "2"] and not problems
    assert rows["run_dir"].tolist() == [str(tmp_path / "scratch" / "runs" / f"run{s}") for s in range(3)]


def test_rebuild_refuses_when_a_row_has_no_run_folder_and_changes_nothing(tmp_path, cli_env):
    results, elsewhere = _run_folders_elsewhere(tmp_path, [0, 1, 2])
    shutil.rmtree(elsewhere / "run1")
    before = sorted((p.name, p.read_bytes()) for p in results.iterdir())
    proc = _summarize("--rebuild", results, env=cli_env)
    errors = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(errors) == 1 and errors[0].startswith("error: "), proc.stderr
    assert "1 of the 3 run(s)" in errors[0] and "run1" in errors[0] and "nothing was changed" in errors[0]
    assert sorted((p.name, p.read_bytes()) for p in results.iterdir()) == before
    with pytest.raises(ResultsWriteError):
        rebuild_index(results)


def test_run_folders_are_recorded_relative_to_the_results_folder(tmp_path):
    results = tmp_path / "res"
    assert relative_run_dir(results / "runs" / "a" / "b", results) == "runs/a/b"
    assert relative_run_dir(tmp_path / "other", results) == str(tmp_path / "other")
    write_index(results, "rid", results / "runs" / "a", "completed")
    assert json.loads((results / ".run_index" / "rid.json").read_text())["run_dir"] == "runs/a"
    (results / "runs" / "a").mkdir(parents=True)
    (results / "runs" / "a" / "summary.json").write_text(json.dumps({"run_id": "rid", "status": "completed"}))
    moved = tmp_path / "moved"
    shutil.copytree(results, moved)
    assert read_index(moved, "rid")["run_dir"] == moved / "runs" / "a"
    done = plan("auto", moved, "rid", moved / "runs" / "new")
    assert done.run_dir == moved / "runs" / "a" and done.done["status"] == "completed"
