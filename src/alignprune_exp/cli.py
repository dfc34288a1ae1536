"""The ``@hydra.main`` task behind ``train.py`` and ``alignprune-train``, and the map from errors to exit codes.

Everything a run does is in ``pipeline.session.run``; this module only starts it under Hydra (and torchrun)
and turns the project's known errors into one line on stderr and a distinct exit status.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys

import hydra
import hydra.core.utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, OverrideParseException, SearchPathException
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

# Hydra's own input errors (an unknown option or key, a malformed override, a missing config or search path;
# MissingConfigException is a ConfigCompositionException): one line and EXIT_INPUT, like the project's own.
HYDRA_INPUT_ERRORS = (ConfigCompositionException, OverrideParseException, SearchPathException)
_FULL_ERROR = "HYDRA_FULL_ERROR"  # Hydra re-raises instead of printing its report (and exiting 1) when "1"
_raw_until_task = False  # main() set HYDRA_FULL_ERROR so errors before the task reach it raw


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
    _hydra_reports_task_errors()
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
        if multirun:  # the cell's log has it; the cells sweeper lists it at the end
            log.error("error: %s", err)
            raise
        print(f"error: {err}", file=sys.stderr)  # once: not also through the console log
        sys.exit(EXIT_DIVERGED if isinstance(err, TrainingDiverged) else EXIT_INPUT)
    except Exception as err:
        if distributed.current().active:
            distributed.fail(err)
        if multirun:
            log.exception("this cell failed")
        raise
    return float(summary.get("final_test_acc", float("nan")))


def _hydra_reports_task_errors() -> None:
    """Hand Hydra its own error report back once the task starts (main() took it only for config errors)."""
    global _raw_until_task
    if _raw_until_task:
        os.environ.pop(_FULL_ERROR, None)
        _raw_until_task = False


def one_line_hydra_error(err: Exception) -> str:
    """Hydra's multi-line config error as one line: the message, the available options, no search path."""
    parts: list[str] = []
    for raw in str(err).split("Config search path:")[0].splitlines():
        line = raw.strip()
        if not line:
            continue
        if raw.startswith("\t") and parts and parts[-1].endswith((":", ",")):
            parts[-1] += f" {line},"
        else:
            parts.append(line)
    text = "; ".join(part.rstrip(",") for part in parts).replace(".;", ";")
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        text += f" ({str(cause).strip().splitlines()[0]})"
    return f"{text}; python train.py --help lists the config groups, their options and the keys"


def _run_task() -> None:
    """Run the Hydra task; Hydra's config errors (before the task starts) become one line and EXIT_INPUT.

    Hydra prints its own report of an error and exits 1 (``hydra._internal.utils.run_and_report``) unless
    HYDRA_FULL_ERROR=1, when it re-raises. So it is set until the task starts (the task unsets it, keeping
    Hydra's report for anything the run raises), and the config errors are caught here. A user's own
    HYDRA_FULL_ERROR=1 keeps its full traceback.
    """
    global _raw_until_task
    users_own = os.environ.get(_FULL_ERROR) == "1"
    if not users_own:
        os.environ[_FULL_ERROR], _raw_until_task = "1", True
    try:
        task()
    except HYDRA_INPUT_ERRORS as err:
        if users_own:
            raise
        print(f"error: {one_line_hydra_error(err)}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    finally:
        _hydra_reports_task_errors()


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
        _run_task()
    finally:
        distributed.shutdown()


__all__ = ["main", "task"]
