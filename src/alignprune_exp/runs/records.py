"""Run records: per-epoch ``metrics.jsonl``, ``summary.json``, and one row per run in ``runs.csv``.

Rows are appended under an exclusive file lock, checked to be written whole (a failed append is rolled
back and raised), once per ``run_id``; ``summary.json`` in the run folder is the record runs.csv can be
rebuilt from (``results_read.rebuild_index``).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import math
from pathlib import Path

from alignprune_exp.core.errors import ResultsWriteError
from alignprune_exp.runs.durable import append_checked, atomic_write_bytes

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "timestamp",
    "experiment",
    "dataset",
    "noise",
    "model",
    "pruner",
    "ratio",
    "reference",
    "loss",
    "optimizer",
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
    "test_split",
    "wall_time_s",
    "device",
    "overrides",
    "run_dir",
    "status",
    "code_version",
    "run_id",
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

    def append_row(self, results_dir: str | Path, summary: dict, filename: str = "runs.csv") -> Path:
        """Append the run's row to ``results_dir/filename`` (see :func:`append_result_row`)."""
        return append_result_row(results_dir, summary, filename=filename)

    def rewrite_metrics(self, history: list[dict]) -> None:
        """Replace ``metrics.jsonl`` by exactly these records (on resume: drop epochs after the checkpoint)."""
        text = "".join(json.dumps({k: _clean(v) for k, v in r.items()}) + "\n" for r in history)
        atomic_write_bytes(self.metrics_path, text.encode("utf-8"))


def write_json_atomic(path: Path, payload: dict) -> Path:
    text = json.dumps({k: _clean(v) for k, v in payload.items()}, indent=2, sort_keys=True) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def _has_run_id(path: Path, run_id: str) -> bool:
    if not path.exists():
        return False
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return any(r.get("run_id") == run_id for r in csv.DictReader(f))


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def append_result_row(results_dir: str | Path, row: dict, filename: str = "runs.csv") -> Path:
    """Append ``row`` (keys from RESULT_COLUMNS) to ``results_dir/runs.csv``, safely under concurrency.

    A file whose header differs (an older column set) is left untouched and the row goes to
    ``runs.<n>.csv`` instead, so results already written are never rewritten or lost. A row whose
    ``run_id`` is already in the file is not appended again (a resumed run that had written it).

    Raises:
        ResultsWriteError: the row could not be written whole (disk full, permissions); the file is unchanged.
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
        if row.get("run_id") and _has_run_id(path, str(row["run_id"])):
            log.info("%s already has the row of run %s; not appended again", path, row["run_id"])
            return path
        try:
            append_checked(path, line.encode("utf-8"), header.encode("utf-8"))
        except OSError as err:
            raise ResultsWriteError(
                f"could not append the result row to {path} ({err.strerror or err}); the file is unchanged and "
                f"the run's summary.json has the result: free space, then run "
                f"scripts/summarize_runs.py --rebuild {results_dir}"
            ) from None
    if path.name != filename:
        log.warning("%s has a different column set; this row went to %s", results_dir / filename, path)
    return path
