"""Read every results file under a folder, skipping (and reporting) unreadable rows; rebuild runs.csv.

A cluster's jobs may append to per-machine files (``results_file=runs.${hostname:}.csv``); readers merge
every ``runs*.csv``. A row torn by a crash or a full disk has the wrong number of fields: it is skipped with
a note naming the file and line, and the other rows are read. ``rebuild_index`` regenerates ``runs.csv``
from the run folders' ``summary.json`` files, the record of each run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import pandas as pd

from alignprune_exp.runs.records import RESULT_COLUMNS, append_result_row
from alignprune_exp.runs.resume import FINAL_STATUSES

log = logging.getLogger(__name__)


def result_files(results: str | Path) -> list[Path]:
    """``results`` itself if it is a file, else every ``runs*.csv`` in the folder."""
    results = Path(results)
    return [results] if results.is_file() else sorted(results.glob("runs*.csv"))


def read_rows(path: str | Path) -> tuple[list[dict], list[str]]:
    """(rows as dicts of strings, one note per skipped line) of one results file."""
    path = Path(path)
    rows, problems = [], []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            return [], [f"{path}: no header line (skipped)"]
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                problems.append(f"{path}:{reader.line_num}: {err} (skipped)")
                continue
            if not fields:
                continue
            if len(fields) != len(header):
                problems.append(
                    f"{path}:{reader.line_num}: {len(fields)} fields, expected {len(header)} "
                    "(a torn or glued row; skipped)"
                )
                continue
            rows.append(dict(zip(header, fields)))
    return rows, problems


def load_results(results: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """All readable rows of every results file (string columns), and notes on what was skipped."""
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
    """Print a one-line note of the skipped rows (the first ``limit`` named) on stderr."""
    import sys

    if problems:
        print(
            f"skipped {len(problems)} unreadable row(s): "
            + "; ".join(problems[:limit])
            + (" ..." if len(problems) > limit else ""),
            file=sys.stderr,
        )


def rebuild_index(results_dir: str | Path, filename: str = "runs.csv") -> tuple[Path, int]:
    """Regenerate ``results_dir/runs.csv`` from every ``summary.json`` below it (completed and diverged runs).

    Existing ``runs*.csv`` files are kept as ``<name>.bak``; returns the new file and its number of rows.
    """
    results_dir = Path(results_dir)
    summaries = []
    for path in sorted(results_dir.rglob("summary.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        if summary.get("status", "completed") in FINAL_STATUSES:
            summaries.append(summary)
    summaries.sort(key=lambda s: (str(s.get("timestamp", "")), str(s.get("run_dir", ""))))
    for old in result_files(results_dir):
        os.replace(old, old.with_name(old.name + ".bak"))
    out = results_dir / filename
    seen = set()
    for summary in summaries:
        key = summary.get("run_id") or summary.get("run_dir")
        if key in seen:
            continue
        seen.add(key)
        append_result_row(results_dir, {c: summary.get(c) for c in RESULT_COLUMNS}, filename=filename)
    if not seen:
        out.write_text(",".join(RESULT_COLUMNS) + "\n")
    return out, len(seen)
