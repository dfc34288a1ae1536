"""Which folder a run writes to and whether it resumes: run ids, the run index, ``resume=auto|<run_dir>``.

A run's id hashes its resolved config minus the keys that only say how to run it (``resume``,
``checkpoint_every``, ...). ``results_dir/.run_index/<id>.json`` points at the folder of the latest run
with that id and its status, so relaunching the same command (or grid) with ``resume=auto`` finds it. The index
records the folder relative to ``results_dir`` when it lies inside it (a moved results folder still resumes).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.runs.durable import atomic_write_bytes
from alignprune_exp.runs.records import relative_run_dir, resolve_recorded_run_dir

# Keys that do not change what a run computes, left out of its id.
NOT_IN_RUN_ID = ("resume", "checkpoint_every", "stop_grace_s", "progress_bar", "logger", "checkpoint", "results_file")
FINAL_STATUSES = ("completed", "diverged")  # a relaunch with resume=auto skips these: they have their row


def run_id(config: dict) -> str:
    """16 hex digits identifying what the run computes, from its resolved config (a plain dict)."""
    config = {k: v for k, v in config.items() if k not in NOT_IN_RUN_ID}
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def index_path(results_dir: str | Path, rid: str) -> Path:
    return Path(results_dir) / ".run_index" / f"{rid}.json"


def write_index(results_dir: str | Path, rid: str, run_dir: str | Path, status: str) -> None:
    path = index_path(results_dir, rid)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"run_id": rid, "run_dir": relative_run_dir(run_dir, results_dir), "status": status}
    atomic_write_bytes(path, json.dumps(entry).encode())


def read_index(results_dir: str | Path, rid: str) -> dict | None:
    """The index entry of ``rid`` with ``run_dir`` resolved against ``results_dir``, or None."""
    try:
        entry = json.loads(index_path(results_dir, rid).read_text())
        entry["run_dir"] = resolve_recorded_run_dir(entry["run_dir"], results_dir)
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_folder(a: str | Path, b: str | Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


@dataclass
class ResumePlan:
    run_dir: Path
    resume_from: Path | None = None  # checkpoint.pt to continue from
    done: dict | None = None  # summary of a finished run (nothing to do)


def plan(resume: str | None, results_dir: str | Path, rid: str, default_run_dir: str | Path) -> ResumePlan:
    """Where this run writes and what it continues from, following ``resume`` (None, ``auto`` or a run folder)."""
    if resume in (None, "", "never"):
        return ResumePlan(Path(default_run_dir))
    if resume == "auto":
        entry = read_index(results_dir, rid)
        if entry is None or not Path(entry["run_dir"]).is_dir():
            return ResumePlan(Path(default_run_dir))
        run_dir = Path(entry["run_dir"])
    else:
        run_dir = Path(str(resume))
        if not (run_dir / "checkpoint.pt").is_file() and not (run_dir / "summary.json").is_file():
            raise ConfigError(
                f"resume={resume}: no checkpoint.pt or summary.json in that folder; give a run folder "
                "of an interrupted run, or resume=auto"
            )
    summary = _read_summary(run_dir)
    if resume != "auto" and summary and summary.get("run_id") not in (None, rid):
        raise ConfigError(
            f"resume={resume} was run with another config (run id {summary.get('run_id')}, this one "
            f"{rid}): resume it with its own overrides"
        )
    entry = read_index(results_dir, rid)
    finished = entry is not None and entry.get("status") in FINAL_STATUSES and _same_folder(entry["run_dir"], run_dir)
    if finished and summary and summary.get("run_id") == rid:  # the index is marked after the row is written
        return ResumePlan(run_dir, done=summary)
    ckpt = run_dir / "checkpoint.pt"
    return ResumePlan(run_dir, resume_from=ckpt if ckpt.is_file() else None)


def _read_summary(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
