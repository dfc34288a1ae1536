"""Read every results file under a folder, setting aside (and reporting) unreadable rows; rebuild runs.csv.

A cluster's jobs may append to per-machine files (``results_file=runs.${hostname:}.csv``); readers merge
every ``runs*.csv``. Results files hold one row per line, and readers parse them line by line: a line that
is not one whole record of the header's width (a row torn by a crash or a full disk, two rows glued, an
unclosed quote), a repeated header, or a row whose status, timestamp or a numeric field does not parse is
set aside with a note naming the file and line, and never merged with the next line. Rows set aside by
appends (``<file>.torn``) are noted too. Relative ``run_dir`` values are resolved against the folder of
their results file. ``rebuild_index`` regenerates ``runs.csv`` from the run folders' ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

from alignprune_exp.core.errors import ResultsWriteError
from alignprune_exp.runs.durable import atomic_write_bytes
from alignprune_exp.runs.records import (
    parse_line,
    relative_run_dir,
    resolve_recorded_run_dir,
    result_header,
    result_line,
    results_lock,
)
from alignprune_exp.runs.resume import FINAL_STATUSES

log = logging.getLogger(__name__)

STATUSES = ("", "failed", *FINAL_STATUSES)
NUMERIC = (
    "seed",
    "target_ratio",
    "achieved_ratio",
    "final_test_acc",
    "best_test_acc",
    "epochs",
    "epochs_run",
    "noise_rate",
    "mean_score_noise_auroc",
    "final_score_noise_auroc",
    "final_loss_noise_auroc",
    "mean_kept_noisy_fraction",
    "avg_pruned_fraction",
    "train_fwd",
    "reference_fwd",
    "n_train",
    "n_reference",
    "n_test",
    "wall_time_s",
)


def result_files(results: str | Path) -> list[Path]:
    """``results`` itself if it is a file, else every ``runs*.csv`` in the folder."""
    results = Path(results)
    return [results] if results.is_file() else sorted(results.glob("runs*.csv"))


def _bad_field(row: dict) -> str | None:
    """What does not parse in a row of the right width, or None."""
    if row.get("status", "") not in STATUSES:
        return f"status {row['status'][:40]!r}"
    for col in NUMERIC:
        value = row.get(col, "")
        try:
            if value != "":
                float(value)
        except ValueError:
            return f"{col} {value[:40]!r}"
    stamp = row.get("timestamp", "")
    try:
        if stamp:
            datetime.fromisoformat(stamp)
    except ValueError:
        return f"timestamp {stamp[:40]!r}"
    return None


def read_rows(path: str | Path) -> tuple[list[dict], list[str]]:
    """(rows as dicts of strings, one note per line set aside) of one results file, read line by line."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        lines = [line.removesuffix("\r") for line in f.read().split("\n")]
    header = parse_line(lines[0]) if lines else None
    if not header:
        return [], [f"{path}: no header line (skipped)"]
    rows, problems = [], []
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue
        fields = parse_line(line)
        if fields is None:
            problems.append(f"{path}:{number}: an unclosed quote (a torn row; set aside)")
        elif fields == header:
            problems.append(f"{path}:{number}: a repeated header (set aside)")
        elif len(fields) != len(header):
            problems.append(
                f"{path}:{number}: {len(fields)} fields, expected {len(header)} (a torn or glued row; set aside)"
            )
        elif (bad := _bad_field(row := dict(zip(header, fields)))) is not None:
            problems.append(f"{path}:{number}: {bad} does not parse (set aside)")
        else:
            if row.get("run_dir"):
                row["run_dir"] = str(resolve_recorded_run_dir(row["run_dir"], path.parent))
            rows.append(row)
    torn = path.with_name(path.name + ".torn")
    if torn.is_file():
        n = sum(1 for line in torn.read_text(errors="replace").splitlines() if line)
        problems.append(f"{torn}: {n} torn row(s) set aside by later appends")
    return rows, problems


def load_results(results: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """All readable rows of every results file (string columns), and notes on what was set aside."""
    paths = result_files(results)
    if not paths:
        raise FileNotFoundError(f"no runs*.csv in {results}: run train.py with results_dir={results} first")
    rows, problems = [], []
    for path in paths:
        r, p = read_rows(path)
        rows += r
        problems += p
    frame = pd.DataFrame(rows, dtype=str).fillna("")
    return frame, problems


def report(problems: list[str], limit: int = 10) -> None:
    """Print a one-line note of the rows set aside (the first ``limit`` named) on stderr."""
    if problems:
        print(
            f"skipped {len(problems)} unreadable row(s): "
            + "; ".join(problems[:limit])
            + (" ..." if len(problems) > limit else ""),
            file=sys.stderr,
        )


def _key(record: dict) -> str:
    return str(record.get("run_id") or record.get("run_dir") or "")


def _find_summaries(results_dir: Path, rows: list[dict]) -> dict[str, tuple[Path, dict]]:
    """Final-status summaries by run key: of every run folder under ``results_dir`` and every one a row names."""
    folders = {p.parent for p in results_dir.rglob("summary.json")}
    folders |= {Path(r["run_dir"]) for r in rows if r.get("run_dir")}
    found = {}
    for folder in sorted(folders):
        path = folder / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        if isinstance(summary, dict) and summary.get("status", "completed") in FINAL_STATUSES:
            old = found.get(_key(summary) or str(folder))
            if old is None or str(old[1].get("timestamp", "")) <= str(summary.get("timestamp", "")):
                found[_key(summary) or str(folder)] = (folder, summary)
    return found


def rebuild_index(results_dir: str | Path, filename: str = "runs.csv") -> tuple[Path, int]:
    """Regenerate ``results_dir/runs.csv`` from the ``summary.json`` of every run folder under it and of every
    run folder the current rows name (completed and diverged runs).

    Refuses (``ResultsWriteError``, nothing changed) when a run that has a row has no summary to be found: a
    rebuild never loses a row. Existing ``runs*.csv`` files are kept as ``<name>.bak``; returns the new file
    and its number of rows.
    """
    results_dir = Path(results_dir)
    with results_lock(results_dir, filename):
        old_files = result_files(results_dir)
        rows = [r for path in old_files for r in read_rows(path)[0]]
        found = _find_summaries(results_dir, rows)
        missing = sorted({_key(r) for r in rows} - set(found))
        if missing:
            example = next(r for r in rows if _key(r) == missing[0])
            raise ResultsWriteError(
                f"--rebuild {results_dir}: {len(missing)} of the {len({_key(r) for r in rows})} run(s) with a row "
                f"have no run folder with a summary.json to be found (e.g. {example.get('run_dir') or missing[0]}); "
                "nothing was changed: copy those run folders back under the results folder first"
            )
        summaries = sorted(found.values(), key=lambda fs: (str(fs[1].get("timestamp", "")), str(fs[0])))
        text = result_header() + "".join(
            result_line({**s, "run_dir": relative_run_dir(folder, results_dir)}) for folder, s in summaries
        )
        out = results_dir / filename
        for old in old_files:
            atomic_write_bytes(old.with_name(old.name + ".bak"), old.read_bytes())
        atomic_write_bytes(out, text.encode("utf-8"))
        for old in old_files:
            if old != out:
                os.remove(old)
            torn = old.with_name(old.name + ".torn")  # its rows are in the rebuilt file, from their summaries
            if torn.exists():
                os.replace(torn, torn.with_name(torn.name + ".bak"))
    return out, len(summaries)


__all__ = ["NUMERIC", "STATUSES", "load_results", "read_rows", "rebuild_index", "report", "result_files"]
