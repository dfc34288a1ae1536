"""One run as an object: where it lives (resume plan), its trainer, checkpoints, stop hooks and records.

``run`` is the entry the CLI calls per Hydra job. Every rank trains and scores; rank 0 alone decides where
the run lives and records it, the other ranks follow its checkpoint and its stop decisions.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from alignprune_exp.config.checks import check_writable, validate_config
from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core import distributed
from alignprune_exp.core.errors import ConfigError, ResultsWriteError, RunInterrupted, TrainingDiverged
from alignprune_exp.pipeline.build import attach_dynamics, build_trainer
from alignprune_exp.runs.checkpoint import Checkpointer
from alignprune_exp.runs.code_version import code_version
from alignprune_exp.runs.records import RunRecorder, relative_run_dir
from alignprune_exp.runs.resume import FINAL_STATUSES, ResumePlan, run_id, write_index
from alignprune_exp.runs.resume import plan as resume_plan
from alignprune_exp.runs.snapshots import SnapshotRecorder
from alignprune_exp.runs.stop_signals import STOP, StopSignals
from alignprune_exp.train.trainer import Trainer

log = logging.getLogger("alignprune")

GROUPS = (
    "dataset",
    "noise",
    "model",
    "pruner",
    "ratio",
    "reference",
    "loss",
    "optimizer",
    "scheduler",
    "logger",
    "profile",
)


def run(cfg: DictConfig, run_dir: str | Path, choices: dict | None = None, overrides: str = "") -> dict:
    """Train one configured run, writing its records into ``run_dir`` and a row into ``runs.csv``.

    Bad settings and an unwritable ``results_dir`` fail before any data loads. With ``resume=auto`` (or
    ``resume=<run_dir>``) the run continues in the folder of its latest checkpoint, or returns the summary
    of a run of the same config that already finished.
    """
    validate_config(cfg)
    dist = distributed.current()
    dist.agree("the resolved config", OmegaConf.to_yaml(cfg, resolve=True))
    if dist.is_main:
        check_writable(cfg.results_dir)
    rid = run_id(OmegaConf.to_container(cfg, resolve=True))
    plan = dist.from_main(resume_plan(cfg.get("resume"), cfg.results_dir, rid, run_dir) if dist.is_main else None)
    if plan.done is not None:
        log.info("already %s in %s: skipped (resume=null runs it again)", plan.done["status"], plan.run_dir)
        if plan.done["status"] == "diverged":
            raise TrainingDiverged(
                plan.done.get("diverged_epoch"),
                plan.done.get("diverged_loss"),
                f" (an earlier run, {plan.run_dir}; resume=null runs it again)",
            )
        return plan.done
    if plan.run_dir != Path(run_dir):
        log.info("continuing the run in %s", plan.run_dir)
    with StopSignals(cfg.get("stop_grace_s", 20)) as stop:
        stop.raise_if_requested()
        session = Session(cfg, plan, rid, stop, dict(choices or {}), overrides)
        return session.lead() if dist.is_main else session.follow()


def _stop_requested(dist: distributed.Dist) -> bool:
    """A stop signal seen by any rank stops every rank at the same epoch end."""
    return dist.sum(torch.tensor([float(STOP.requested)])).item() > 0 if dist.active else STOP.requested


class Session:
    """The lifecycle of one run around its trainer; ``lead`` on rank 0 (records), ``follow`` on the others."""

    def __init__(self, cfg: DictConfig, plan: ResumePlan, rid: str, stop: StopSignals, choices: dict, overrides: str):
        self.cfg, self.plan, self.rid, self.stop = cfg, plan, rid, stop
        self.choices, self.overrides = choices, overrides
        self.dist = distributed.current()
        self.run_dir, self.t0 = plan.run_dir, time.perf_counter()

    def _stop_hook(self, trainer: Trainer, ckpt: Checkpointer | None):
        """Epoch-end hook: on a stop signal (any rank), save a checkpoint (rank 0) and stop every rank."""

        def stop_at_epoch_end(_history):
            if _stop_requested(self.dist):
                if ckpt is not None and ckpt.saved_epoch != trainer.state.epoch:
                    ckpt.save()
                raise RunInterrupted(STOP.signal_name or "a stop signal on another rank")

        return stop_at_epoch_end

    def follow(self) -> dict:
        """A rank above 0: restores rank 0's checkpoint when resuming, trains in step with it, records nothing."""
        trainer, _ = build_trainer(self.cfg)
        if self.plan.resume_from is not None:
            Checkpointer(self.run_dir, trainer, self.rid).restore()
        trainer.epoch_end_hooks.append(self._stop_hook(trainer, None))
        trainer.fit()
        if self.cfg.checkpoint:
            self.dist.barrier()  # rank 0 saves the final state meanwhile
        return {}

    def lead(self) -> dict:
        """Rank 0: build, restore or start, train, and record the outcome whatever it is."""
        cfg = self.cfg
        self.recorder = RunRecorder(self.run_dir)
        write_index(cfg.results_dir, self.rid, self.run_dir, "running")
        trainer, info = build_trainer(cfg)
        if trainer.state.budget.total == 0:
            raise ConfigError(
                f"the forward-pass budget is 0 (ratio={cfg.ratio.value}, epochs={cfg.epochs}, "
                f"{info['n_train']} training images): nothing would train; lower the ratio"
            )
        self._log_setup(info)
        self.logger = instantiate(cfg.logger)
        trainer.callbacks += [self.recorder.log_epoch, self.logger]
        ckpt, dynamics = self._attach_checkpoint(trainer)
        self.recorder.rewrite_metrics(trainer.history)
        self.logger.start(self.run_dir, OmegaConf.to_container(cfg, resolve=True), self._name(), self._tags())
        self.logger.resume(trainer.history)
        trainer.epoch_end_hooks += [ckpt.on_epoch_end, self._stop_hook(trainer, ckpt)]
        if not self.dist.active:  # a stop between batches would leave the other ranks waiting in a collective
            trainer.batch_callbacks.append(self.stop.check_batch)
        self.base = {
            **{g: self.choices.get(g) for g in GROUPS},
            **info,
            "experiment": cfg.get("experiment_name"),
            "seed": int(cfg.seed),
            "target_ratio": float(cfg.ratio.value),
            "epochs": int(cfg.epochs),
            "input_shape": list(info["input_shape"]),
            "overrides": self.overrides,
            "run_dir": relative_run_dir(self.run_dir, cfg.results_dir),
            "run_id": self.rid,
            "code_version": code_version(),
        }
        self.summary, exit_code = None, 1
        try:
            summary = self.summary = self._fit_and_record(trainer, ckpt, dynamics)
            exit_code = 0
        finally:
            self.logger.finish(self.summary, exit_code)  # a diverged run's summary too
        log.info(
            "final test acc %.2f%% | achieved ratio %.3f (target %.2f) | score noise AUROC %.3f | %s",
            summary["final_test_acc"],
            summary["achieved_ratio"],
            summary["target_ratio"],
            summary["final_score_noise_auroc"],
            self.run_dir,
        )
        return summary

    def _log_setup(self, info: dict) -> None:
        log.info(
            "data: %s | %d train (%.1f%% noisy), %d reference, %d test (%s)",
            info["dataset_source"],
            info["n_train"],
            100 * info["noise_rate"],
            info["n_reference"],
            info["n_test"],
            info["test_split"],
        )
        if self.dist.active:
            batch = int(self.cfg.batch_size)
            log.info(
                "data parallel: %d ranks, global batch %d (%d per rank)",
                self.dist.world_size,
                batch,
                batch // self.dist.world_size,
            )

    def _name(self) -> str:
        return (
            "_".join(str(self.choices.get(g, "")) for g in ("dataset", "noise", "pruner", "ratio"))
            + f"_s{self.cfg.seed}"
        )

    def _tags(self) -> list[str]:
        return [f"{g}={self.choices[g]}" for g in GROUPS if self.choices.get(g)]

    def _attach_checkpoint(self, trainer: Trainer):
        """The checkpointer with every epoch callback that has state (snapshots, dynamics), restored or fresh."""
        cfg, parts = self.cfg, {}
        if cfg.get("snapshots", True):
            parts["snapshots"] = SnapshotRecorder(self.run_dir)
            trainer.callbacks.append(parts["snapshots"])
        dynamics = attach_dynamics(trainer, int(cfg.epochs))
        if dynamics is not None:
            parts["dynamics"] = dynamics
        ckpt = Checkpointer(self.run_dir, trainer, self.rid, every=int(cfg.get("checkpoint_every", 1)), parts=parts)
        if self.plan.resume_from is not None:
            ckpt.restore()
        else:
            (self.run_dir / "snapshots.npz").unlink(missing_ok=True)
        return ckpt, dynamics

    def _record(self, result: dict, status: str, error: str | None = None) -> dict:
        """Write the summary; a final status also gets its results row; the run index follows. A write that
        fails leaves the index ``failed`` if it still can be written (a relaunch with resume=auto redoes it)."""
        summary = {
            **self.base,
            **result,
            "status": status,
            "error": error,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "total_time_s": time.perf_counter() - self.t0,
        }
        try:
            self.recorder.write_summary(summary)
            if status in FINAL_STATUSES:
                self.recorder.append_row(
                    self.cfg.results_dir, summary, filename=str(self.cfg.get("results_file") or "runs.csv")
                )
        except ResultsWriteError:
            self._try_write_index("failed")
            raise
        write_index(self.cfg.results_dir, self.rid, self.run_dir, status)
        return summary

    def _record_failure(self, trainer: Trainer, err: Exception) -> None:
        """Best effort: summary and index ``failed``; a full disk here must not hide the error that ended the run."""
        try:
            self._record(
                trainer.summarize(trainer.history, time.perf_counter() - self.t0),
                "failed",
                " ".join(str(err).split())[:500],
            )
        except ResultsWriteError as again:
            log.warning("could not record the failure either: %s", again)

    def _try_write_index(self, status: str) -> None:
        try:
            write_index(self.cfg.results_dir, self.rid, self.run_dir, status)
        except ResultsWriteError as err:
            log.warning("could not mark the run index %s: %s", status, err)

    def _fit_and_record(self, trainer: Trainer, ckpt: Checkpointer, dynamics) -> dict:
        """Train to the end of the budget; every way it can end leaves its status in the records."""
        try:
            result = trainer.fit()
            if result["train_fwd"] == 0:
                raise ConfigError(
                    f"the run trained nothing in {result['epochs_run']} epochs (0 forward passes): "
                    "check ratio, batch_size, max_epoch_factor and the pruner's settings"
                )
        except TrainingDiverged as err:
            self.summary = self._record(
                {
                    **trainer.summarize(trainer.history, time.perf_counter() - self.t0),
                    "diverged_epoch": err.epoch,
                    "diverged_loss": str(err.loss),
                },
                "diverged",
                str(err),
            )
            raise
        except RunInterrupted as err:
            where = (
                f"checkpoint {ckpt.path} (epoch {ckpt.saved_epoch})"
                if ckpt.saved_epoch
                else "no checkpoint yet, so it starts over"
            )
            raise RunInterrupted(
                f"stopped by {err} at epoch {trainer.state.epoch}: {where}; run the same command "
                f"with resume=auto (or resume={self.run_dir}) to continue"
            ) from None
        except Exception as err:
            self._record_failure(trainer, err)
            raise
        self._save_final(trainer, dynamics)
        summary = self._record(result, "completed")
        ckpt.remove()
        return summary

    def _save_final(self, trainer: Trainer, dynamics) -> None:
        """The final ``state.pt`` and ``dynamics.pt``; a failed write leaves the run ``failed``."""
        try:
            if self.cfg.checkpoint:
                try:
                    trainer.state.save(self.run_dir / "state.pt")
                finally:
                    self.dist.barrier()  # the other ranks wait here for the final state
            if dynamics is not None:
                dynamics.save(self.run_dir / "dynamics.pt", trainer.state.epoch)
        except ResultsWriteError as err:
            self._record_failure(trainer, err)
            raise
