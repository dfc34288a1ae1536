"""A grid sweeper for paper tables: a main grid plus extra grids, skipping options that do not exist yet.

Hydra's basic sweeper runs one cartesian product. A paper table is a union: every pruner x ratio, plus
Full-training once per noise and seed at the full budget (``pruner=full ratio=r0``). And a grid names
pruners of other issues: until an option file exists, the grid's cells naming it are skipped (listed at
the start and again at the end), never filled with anything else and never failing the sweep. A value typed
on the command line that has no config file (``ratio=r99``) is a mistake, not a plan: its cells fail like any
other bad cell. A cell that fails does not stop the others: at the end the sweep prints each failed cell with
its one-line error and exits non-zero.

    hydra:
      sweeper:
        params: {noise: clean,sym0.5, pruner: infobatch,seta, ratio: r30,r50, seed: 0,1}
        extra:                      # each entry: params (and command-line sweeps) with these keys replaced
          - {pruner: full, ratio: r0}
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class CellSweeper(Sweeper):
    """Hydra's basic sweeper over the union of ``params`` and each ``extra`` grid, without missing group options.

    Args:
        max_batch_size: jobs per launcher batch (None = all at once), as in the basic sweeper.
        params: the main grid, ``{override key: comma-separated values}``.
        extra: further grids, each a dict whose keys replace (or add to) those of ``params`` and of the
            command-line sweep overrides, e.g. ``[{pruner: full, ratio: r0}]``.
        skip_missing: drop jobs whose grid (``params``, ``extra``) chooses a config-group option that has no
            file (logged once per option, at the start and the end); False fails the whole sweep up front, as
            the basic sweeper does. A missing option typed on the command line always fails its cells, which
            are reported with the failed cells at the end (the other cells run).
    """

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        extra: list[dict[str, Any]] | None = None,
        skip_missing: bool = True,
    ) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.extra = [dict(e) for e in (extra or [])]
        self.skip_missing = bool(skip_missing)
        self.skipped: dict[str, int] = {}
        # Cells choosing an option typed on the command line that has no config file: (overrides, error).
        self.invalid: list[tuple[list[str], str]] = []
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None
        self.overrides: list[list[list[str]]] = []
        self.batch_index = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def job_overrides(self, arguments: list[str]) -> list[list[str]]:
        """Every job's override list: the main grid, then each extra grid, duplicates removed, in order."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in self.params.items()]
        typed = {c for o in parser.parse_overrides(list(arguments)) for c in _choices(o)}
        base = {o.get_key_element(): o for o in parser.parse_overrides([*params, *arguments])}
        grids = [base]
        for entry in self.extra:
            grid = dict(base)
            for o in parser.parse_overrides([f"{k}={_as_override_value(v)}" for k, v in entry.items()]):
                grid[o.get_key_element()] = o
            grids.append(grid)
        jobs, seen = [], set()
        for grid in grids:
            for job in itertools.product(*[_choices(o) for o in grid.values()]):
                if job not in seen:
                    seen.add(job)
                    jobs.append(list(job))
        return self._drop_missing(jobs, typed)

    def _drop_missing(self, jobs: list[list[str]], typed: set[str]) -> list[list[str]]:
        """The jobs to launch: a job choosing a missing option typed on the command line (``typed``) goes to
        ``self.invalid``; one whose grid chooses a missing option is skipped (with ``skip_missing``)."""
        loader = self.hydra_context.config_loader
        options: dict[str, list[str] | None] = {}

        def missing(item: str) -> str | None:
            key, _, value = item.partition("=")
            group = key.lstrip("+~")
            if "." in group or "@" in group:
                return None
            if group not in options:
                options[group] = list(loader.get_group_options(group)) or None
            known = options[group]
            return None if known is None or value in known or value == "null" else f"{group}={value}"

        kept = []
        self.invalid, self.skipped = [], {}
        for job in jobs:
            absent = {item: m for item, m in ((item, missing(item)) for item in job) if m}
            mistyped = [m for item, m in absent.items() if item in typed]
            if mistyped:
                self.invalid.append((job, "; ".join(_no_such_option(m, options) for m in mistyped)))
            elif absent and self.skip_missing:
                for m in absent.values():
                    self.skipped[m] = self.skipped.get(m, 0) + 1
            else:
                kept.append(job)
        self.log_skipped()
        return kept

    def log_skipped(self) -> None:
        for choice, count in sorted(self.skipped.items()):
            log.warning(
                "%s has no config file yet: its %d cell(s) of the grid are skipped (missing, not filled)",
                choice,
                count,
            )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        jobs = self.job_overrides(arguments)
        for job, error in self.invalid:
            log.error("cell %s not run: %s", " ".join(job), error)
        size = len(jobs) if self.max_batch_size in (None, -1) else int(self.max_batch_size)
        self.overrides = [jobs[i : i + size] for i in range(0, len(jobs), max(size, 1))]
        log.info("cells sweeper: %d job(s)", len(jobs))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: list[Sequence[JobReturn]] = []
        failures: list[JobReturn] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            tic = time.perf_counter()
            self.validate_batch_is_legal(batch)
            log.debug("validated %d job configs in %.2fs", len(batch), time.perf_counter() - tic)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            failures += [r for r in results if r.status == JobStatus.FAILED]
            initial_job_idx += len(batch)
            returns.append(results)
            if any(_interrupted(r) for r in failures):
                break  # a stop signal: launch nothing more
        self.log_skipped()  # again at the end, where it is read
        if failures or self.invalid:
            report_failures(failures, initial_job_idx, jobs, invalid=self.invalid)
        return returns

    def get_job_batch(self) -> list[list[str]]:
        self.batch_index += 1
        return self.overrides[self.batch_index - 1]

    def is_done(self) -> bool:
        return self.batch_index >= len(self.overrides)


def _interrupted(job: JobReturn) -> bool:
    return type(job._return_value).__name__ == "RunInterrupted"


def report_failures(
    failures: list[JobReturn],
    launched: int,
    jobs: list[list[str]],
    invalid: Sequence[tuple[list[str], str]] = (),
) -> None:
    """Print which cells failed and why (one line each: job number, the overrides that tell it from most
    other cells, the error; ``invalid`` cells, which chose an option that does not exist, as ``#-``), then
    exit non-zero: 3 if a stop signal ended the sweep (relaunch with resume=auto), else 1."""
    interrupted = any(_interrupted(r) for r in failures)
    every = [*jobs, *(job for job, _ in invalid)]
    total = len(every)
    counts: dict[str, int] = {}
    for job in every:
        for o in job:
            counts[o] = counts.get(o, 0) + 1
    common = {o for o, n in counts.items() if n > total / 2} if total > 1 else set()
    not_started = len(jobs) - launched
    lines = [
        f"{len(failures) + len(invalid)} of {total} cell(s) failed"
        + (
            f" ({not_started} not started: the sweep was stopped; relaunch it with resume=auto)"
            if not_started > 0
            else ""
        )
        + ":"
    ]
    for job, error in invalid:
        own = [o for o in job if o not in common]
        lines.append(f"  #- {' '.join(own)}: {error} (not run)")
    for r in failures:
        err = r._return_value
        message = " ".join(str(err).split()) or type(err).__name__
        if type(err).__module__ not in ("alignprune_exp.core.errors",):
            message = f"{type(err).__name__}: {message} (traceback in the cell's log)"
        own = [o for o in (r.overrides or []) if o not in common]
        num = r.hydra_cfg.hydra.job.num if r.hydra_cfg is not None else "?"
        lines.append(f"  #{num} {' '.join(own)}: {message}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    sys.exit(3 if interrupted else 1)


def _no_such_option(choice: str, options: dict[str, list[str] | None]) -> str:
    """``ratio=r99 does not exist: no config file ratio/r99.yaml (options: r0, r30, ...)``."""
    group, _, value = choice.partition("=")
    known = ", ".join(sorted(options.get(group) or []))
    return f"{choice} does not exist: no config file {group}/{value}.yaml (options: {known})"


def _as_override_value(value: Any) -> str:
    """An extra-grid value as override text: lists become comma-separated sweeps."""
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        return ",".join(str(v) for v in value)
    return str(value)


def _choices(override) -> list[str]:
    key = override.get_key_element()
    if override.is_sweep_override():
        if not override.is_discrete_sweep():
            raise ValueError(f"{key}: the cells sweeper supports comma-separated and range() sweeps only")
        return [f"{key}={v}" for v in override.sweep_string_iterator()]
    return [f"{key}={override.get_value_element_as_str()}"]
