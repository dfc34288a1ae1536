"""Run records: per-epoch ``metrics.jsonl``, ``summary.json``, and one row per run in ``runs.csv``.

Rows are appended under an exclusive file lock, checked to be written whole (a failed append is rolled
back and raised), once per ``run_id``, one row per line (line breaks inside values become spaces); a row
torn by a crash is moved to ``<file>.torn`` by the next append, so no later row glues to it.
``summary.json`` in the run folder is the record runs.csv can be rebuilt from (``report.read.rebuild_index``).
Run folders are recorded relative to the results folder (absolute only when outside it).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import math
import os
from contextlib import contextmanager
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
    "mean_cold_start_noise_auroc",
    "final_score_noise_auroc",
    "final_loss_noise_auroc",
    "mean_kept_noisy_fraction",
    "mean_weighted_noisy_share",
    "avg_policy_pruned_fraction",
    "avg_untrained_fraction",
    "mean_below_mean_fraction",
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


def relative_run_dir(run_dir: str | Path, results_dir: str | Path) -> str:
    """``run_dir`` as recorded in rows, summaries and the run index: relative to ``results_dir`` when inside
    it (a copied or committed results folder keeps finding its runs), else absolute."""
    run, root = Path(os.path.abspath(run_dir)), Path(os.path.abspath(results_dir))
    try:
        return run.relative_to(root).as_posix()
    except ValueError:
        return str(run)


def resolve_recorded_run_dir(run_dir: str | Path, results_dir: str | Path) -> Path:
    """The folder a recorded ``run_dir`` names: relative ones are relative to ``results_dir``."""
    path = Path(run_dir)
    return path if path.is_absolute() else Path(results_dir) / path


class RunRecorder:
    """Writes a run's own files in its Hydra output directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"

    def log_epoch(self, record: dict, _extras: dict | None = None) -> None:
        """Append one epoch's metrics as a JSON line (whole or not at all, synced: a crash keeps every
        finished epoch; a full disk raises ``runs.durable.WriteFailed``)."""
        line = json.dumps({k: _clean(v) for k, v in record.items()}) + "\n"
        append_checked(self.metrics_path, line.encode("utf-8"))

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


def parse_line(line: str) -> list[str] | None:
    """The fields of one results line, or None when it is not one whole CSV record (an unclosed quote)."""
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error:
        return None


def _has_run_id(path: Path, run_id: str) -> bool:
    if not path.exists():
        return False
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    header = parse_line(lines[0]) or []
    if "run_id" not in header:
        return False
    col = header.index("run_id")
    return any((fields := parse_line(line)) and len(fields) == len(header) and fields[col] == run_id for line in lines)


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def result_header() -> str:
    """The header line of a results file."""
    return _csv_line(RESULT_COLUMNS)


def result_line(row: dict) -> str:
    """One results line of ``row`` (keys from RESULT_COLUMNS): one line whatever the values hold."""
    values = [_clean(row.get(c)) for c in RESULT_COLUMNS]
    return _csv_line([" ".join(v.splitlines()) if isinstance(v, str) else ("" if v is None else v) for v in values])


@contextmanager
def results_lock(results_dir: Path, filename: str):
    """The exclusive lock every writer of ``results_dir/filename`` (and its ``runs.<n>.csv``) holds."""
    with open(results_dir / f"{filename}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def set_aside_torn_tail(path: Path) -> int:
    """Move an unfinished last line of ``path`` (a row torn by a crash) to ``<path>.torn``; the file then ends
    at its last whole row. Call under :func:`results_lock`. Returns the bytes moved."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    append_checked(path.with_name(path.name + ".torn"), data[keep:] + b"\n")  # durable first, then cut
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, keep)
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning("%s ended in a torn row (%d bytes): moved to %s.torn", path, len(data) - keep, path.name)
    return len(data) - keep


def _target_file(results_dir: Path, filename: str, header: str) -> Path:
    """``results_dir/filename``, or the first ``runs.<n>.csv`` with this header (or none yet)."""
    path, n = results_dir / filename, 1
    while path.exists() and path.stat().st_size > 0:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
        if first == header:
            break
        if not first.endswith("\n") and header.startswith(first):  # only a torn header: set it aside
            set_aside_torn_tail(path)
            break
        path = results_dir / f"{Path(filename).stem}.{n}.csv"
        n += 1
    return path


def append_result_row(results_dir: str | Path, row: dict, filename: str = "runs.csv") -> Path:
    """Append ``row`` (keys from RESULT_COLUMNS) to ``results_dir/runs.csv``, safely under concurrency.

    A file whose header differs (an older column set) is left untouched and the row goes to
    ``runs.<n>.csv`` instead, so results already written are never rewritten or lost. A row whose
    ``run_id`` is already in the file is not appended again (a resumed run that had written it). A torn
    last row is set aside in ``<file>.torn`` first.

    Raises:
        ResultsWriteError: the row could not be written whole (disk full, permissions); the file is unchanged.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    header, line = result_header(), result_line(row)
    with results_lock(results_dir, filename):
        path = results_dir / filename
        try:
            path = _target_file(results_dir, filename, header)
            set_aside_torn_tail(path)
            if row.get("run_id") and _has_run_id(path, str(row["run_id"])):
                log.info("%s already has the row of run %s; not appended again", path, row["run_id"])
                return path
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
