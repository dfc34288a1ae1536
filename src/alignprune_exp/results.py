"""Run records: per-epoch ``metrics.jsonl``, ``summary.json``, and one row per run in ``runs.csv``.

Rows are appended under an exclusive file lock with a single ``write`` of a complete line, so
concurrent multirun jobs never interleave and a killed job never leaves half a row.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "timestamp", "experiment", "dataset", "noise", "model", "pruner", "ratio", "reference", "loss", "optimizer", "seed",
    "target_ratio", "achieved_ratio", "final_test_acc", "best_test_acc", "epochs", "epochs_run",
    "noise_rate", "mean_score_noise_auroc", "final_score_noise_auroc", "final_loss_noise_auroc", "mean_kept_noisy_fraction",
    "avg_pruned_fraction", "train_fwd", "reference_fwd", "n_train", "n_reference", "n_test", "test_split",
    "wall_time_s", "device", "overrides", "run_dir",
]


def _clean(value):
    """JSON-safe scalars: NaN/inf become None, tensors and numpy scalars become Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunRecorder:
    """Writes a run's own files in its Hydra output directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"

    def log_epoch(self, record: dict, _extras: dict | None = None) -> None:
        """Append one epoch's metrics as a JSON line (flushed, so a crash keeps every finished epoch)."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")

    def write_summary(self, summary: dict) -> Path:
        """Write ``summary.json`` atomically."""
        return write_json_atomic(self.run_dir / "summary.json", summary)


def write_json_atomic(path: Path, payload: dict) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({k: _clean(v) for k, v in payload.items()}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def append_result_row(results_dir: str | Path, row: dict, filename: str = "runs.csv") -> Path:
    """Append ``row`` (keys from RESULT_COLUMNS) to ``results_dir/runs.csv``, safely under concurrency.

    A file whose header differs (an older column set) is left untouched and the row goes to
    ``runs.<n>.csv`` instead, so results already written are never rewritten or lost.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    header = _csv_line(RESULT_COLUMNS)
    values = [_clean(row.get(c)) for c in RESULT_COLUMNS]
    line = _csv_line(["" if v is None else v for v in values])
    with open(results_dir / f"{filename}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = results_dir / filename
        n = 1
        while path.exists() and path.stat().st_size > 0:
            with open(path, encoding="utf-8") as f:
                if f.readline() == header:
                    break
            path = results_dir / f"{Path(filename).stem}.{n}.csv"
            n += 1
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            payload = (header if os.fstat(fd).st_size == 0 else "") + line
            os.write(fd, payload.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.name != filename:
        log.warning("%s has a different column set; this row went to %s", results_dir / filename, path)
    return path
