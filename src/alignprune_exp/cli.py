"""The ``@hydra.main`` task behind ``train.py`` and ``alignprune-train``, and the map from errors to exit codes.

Everything a run does is in ``pipeline.session.run``; this module only starts it under Hydra (and torchrun)
and turns the project's known errors into one line on stderr and a distinct exit status.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys

import hydra
import hydra.core.utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from alignprune_exp.config.paths import config_dir
from alignprune_exp.core import distributed
from alignprune_exp.core.errors import (
    EXIT_DIVERGED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    AlignPruneError,
    RunInterrupted,
    TrainingDiverged,
)
from alignprune_exp.pipeline.session import run

log = logging.getLogger("alignprune")

CONF_DIR = config_dir()  # the checkout's conf/, or the installed package's copy of it


def pin_hydra_clock(now: _dt.datetime) -> None:
    """Make Hydra's ``${now:...}`` resolve to ``now`` in this process (run and sweep folders named by time).

    Hydra's resolver reads ``datetime.now()`` from ``hydra.core.utils``; every rank of a torchrun job runs
    Hydra itself, and pinning all of them to rank 0's instant gives one run folder instead of one per rank.
    """

    class _Pinned(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return now

    hydra_utils.datetime = _Pinned


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def task(cfg: DictConfig) -> float:
    """Hydra task: one run. Known errors become one line on stderr and a distinct exit status; in a sweep a
    failing cell raises instead of exiting, so the launcher runs every other cell and the ``cells`` sweeper
    reports the failures at the end; in a multi-rank run any other failure is one line naming the rank, and
    the process exits so that no peer waits on it.
    """
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        dist = distributed.init()  # a SLURM task of a multi-task job joins its process group here
        if not dist.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        summary = run(cfg, hc.runtime.output_dir, dict(hc.runtime.choices), overrides=",".join(hc.overrides.task))
    except RunInterrupted as err:
        log.warning("%s", err)
        if multirun:
            raise
        print(f"stopped: {err}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except AlignPruneError as err:
        log.error("error: %s", err)
        if multirun:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED if isinstance(err, TrainingDiverged) else EXIT_INPUT)
    except Exception as err:
        if distributed.current().active:
            distributed.fail(err)
        if multirun:
            log.exception("this cell failed")
        raise
    return float(summary.get("final_test_acc", float("nan")))


def main() -> None:
    """Console entry (``train.py``, ``alignprune-train``). Under torchrun every rank joins the process group
    before Hydra starts, and run folders named by time use rank 0's clock, so all ranks share one folder
    (ranks > 0 write no ``.hydra`` files into it)."""
    dist = distributed.init() if distributed.launched_world_size() > 1 else distributed.SINGLE
    if dist.active:
        pin_hydra_clock(distributed.shared_now(dist))
        if not dist.is_main:
            sys.argv.append("hydra.output_subdir=null")
    try:
        task()
    finally:
        distributed.shutdown()


__all__ = ["main", "task"]
