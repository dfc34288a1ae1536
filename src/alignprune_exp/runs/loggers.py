"""Metric sinks selected by the ``logger`` config group: local CSV (default) or Weights & Biases."""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path

from alignprune_exp.runs.durable import append_checked

log = logging.getLogger(__name__)


class RunLogger:
    """The metric-sink contract: ``start`` once, one call per epoch record, ``finish`` once.

    Every hook is a no-op by default, so a sink overrides only what it needs; the pipeline calls all four
    without probing for them.
    """

    def start(self, run_dir: str | Path, config: dict, name: str, tags: list[str]) -> None:
        """Open the sink for the run in ``run_dir`` (``config``: the resolved run config)."""

    def __call__(self, record: dict, extras: dict) -> None:
        """Log one epoch ``record``; ``extras`` holds tensors (scores, is_noisy, ...) for richer sinks."""

    def resume(self, history: list[dict]) -> None:
        """Called after ``start`` on a resumed run with the epoch records kept by its checkpoint.

        No-op by default. ``CSVLogger`` rewrites ``metrics.csv`` with exactly these records and
        ``WandbLogger`` re-logs them to its new W&B run.
        """

    def finish(self, summary: dict | None, exit_code: int) -> None:
        """Close the sink with the run's summary (None if the run ended before one was recorded) and exit code."""


class CSVLogger(RunLogger):
    """Writes ``metrics.csv`` in the run directory (columns fixed by the first epoch's record)."""

    def __init__(self):
        self.path: Path | None = None
        self.fields: list[str] | None = None

    def start(self, run_dir: str | Path, config: dict, name: str, tags: list[str]) -> None:
        self.path = Path(run_dir) / "metrics.csv"

    def __call__(self, record: dict, extras: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(record)
        header, row = io.StringIO(), io.StringIO()
        if new:
            csv.DictWriter(header, fieldnames=self.fields).writeheader()
        csv.DictWriter(row, fieldnames=self.fields, extrasaction="ignore").writerow(record)
        # A full disk is a one-line error like every other run file, and never leaves half a line behind.
        append_checked(self.path, row.getvalue().encode(), header=header.getvalue().encode())

    def resume(self, history: list[dict]) -> None:
        """Rewrite ``metrics.csv`` with exactly these records (a resumed run drops epochs after its checkpoint)."""
        self.fields = None
        self.path.unlink(missing_ok=True)
        for record in history:
            self(record, {})


class WandbLogger(RunLogger):
    """One W&B run per Hydra job: per-epoch metrics, clean/noisy score histograms, the run summary.

    Offline unless ``mode`` says otherwise (default from ``WANDB_MODE``); an online init that cannot reach
    the server within ``init_timeout`` falls back to offline instead of blocking the job.
    """

    def __init__(
        self,
        project: str = "alignprune-exp",
        entity: str | None = None,
        mode: str = "offline",
        group: str | None = None,
        job_type: str = "train",
        init_timeout: float = 10,
        histogram_every: int = 5,
    ):
        self.project, self.entity, self.mode, self.group = project, entity, mode, group
        self.job_type, self.init_timeout, self.histogram_every = job_type, init_timeout, histogram_every
        self.run = None

    def start(self, run_dir: str | Path, config: dict, name: str, tags: list[str]) -> None:
        import wandb

        kwargs = dict(
            project=self.project,
            entity=self.entity,
            group=self.group,
            job_type=self.job_type,
            name=name,
            tags=tags,
            config=config,
            dir=str(run_dir),
            reinit="finish_previous",
            settings=wandb.Settings(init_timeout=self.init_timeout, console="off"),
        )
        try:
            self.run = wandb.init(mode=self.mode, **kwargs)
        except Exception as err:  # network failures surface as several exception types
            if self.mode != "online":
                raise
            log.warning("W&B online init failed (%s); logging offline instead", err)
            self.run = wandb.init(mode="offline", **kwargs)

    def __call__(self, record: dict, extras: dict) -> None:
        import wandb

        payload = {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}
        epoch = int(record["epoch"])
        if self.histogram_every and epoch % self.histogram_every == 0 and "scores" in extras:
            scores, noisy = extras["scores"].float().cpu(), extras["is_noisy"].cpu()
            for part, mask in (("clean", ~noisy), ("noisy", noisy)):
                if mask.any():
                    payload[f"hist/score_{part}"] = wandb.Histogram(scores[mask].numpy())
        self.run.log(payload, step=epoch)

    def resume(self, history: list[dict]) -> None:
        """A resumed run logs to a new W&B run from its checkpoint's epoch on (earlier epochs are re-logged)."""
        for record in history:
            self(record, {})

    def finish(self, summary: dict | None, exit_code: int) -> None:
        if self.run is None:
            return
        if summary:
            self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        self.run.finish(exit_code=exit_code)
        self.run = None
