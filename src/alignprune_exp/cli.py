"""The ``@hydra.main`` task behind ``train.py`` and ``alignprune-train``: compose, build, run, record."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from alignprune_exp import faultinject

from alignprune_exp.core import distributed
from alignprune_exp.runs.code_version import code_version
from alignprune_exp.config.paths import config_dir
from alignprune_exp.data.augment import BatchAugment
from alignprune_exp.data.batches import InMemoryData
from alignprune_exp.data.splits import make_splits, subset_indices
from alignprune_exp.data.streaming import SourceSpec, build_streaming_data
from alignprune_exp.data.strong_augment import strong_augment_for
from alignprune_exp.core.errors import (EXIT_DIVERGED, EXIT_INPUT, EXIT_INTERRUPTED, AlignPruneError, ConfigError, RunInterrupted,
                     TrainingDiverged)
from alignprune_exp.reference.selectors import ReferenceContext
from alignprune_exp.runs.records import RunRecorder, append_result_row
from alignprune_exp.runs.resume import FINAL_STATUSES, run_id, write_index
from alignprune_exp.runs.resume import plan as resume_plan
from alignprune_exp.runs.snapshots import SnapshotRecorder
from alignprune_exp.runs.stop_signals import STOP, StopSignals
from alignprune_exp.train import speed
from alignprune_exp.train.budget import ForwardBudget
from alignprune_exp.runs.checkpoint import Checkpointer
from alignprune_exp.train.recorders import record_dynamics
from alignprune_exp.train.state import RunState
from alignprune_exp.train.trainer import Trainer
from alignprune_exp.config.checks import check_writable, validate_config
from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.runtime import resolve_device, seed_everything

log = logging.getLogger("alignprune")

CONF_DIR = config_dir()  # the checkout's conf/, or the installed package's copy of it
GROUPS = ("dataset", "noise", "model", "pruner", "ratio", "reference", "loss", "optimizer", "scheduler", "logger",
          "profile")


def pool_warmup(cfg: DictConfig, images, noisy: np.ndarray, pool: np.ndarray, device: torch.device):
    """Warm-up record of a fresh model trained on ``pool`` (noisy labels), for pseudo-clean references.

    Seeded by ``split_seed``: like every split, the reference set is the same whatever the training seed.
    """
    from alignprune_exp.train.warmup import run_warmup

    pool = np.sort(pool)
    dev = torch.as_tensor
    data = InMemoryData(
        x=dev(images.train_x[pool]).to(device), y=dev(noisy[pool], dtype=torch.long).to(device),
        y_clean=dev(images.train_y[pool], dtype=torch.long).to(device),
        ref_x=images.train_x[:0].to(device), ref_y=torch.zeros(0, dtype=torch.long, device=device),
        test_x=images.train_x[:0].to(device), test_y=torch.zeros(0, dtype=torch.long, device=device),
        augment=BatchAugment(images.mean, images.std, crop_padding=cfg.dataset.crop_padding,
                             hflip=cfg.dataset.hflip),
        strong_augment=strong_augment_for(cfg, images))
    return run_warmup(cfg, data, num_classes=images.num_classes, input_shape=tuple(images.train_x.shape[1:]),
                      device=device, cache_key_extra={"pool": pool}, seed=int(cfg.split_seed))


def build_data(cfg: DictConfig, device: torch.device) -> tuple[InMemoryData, dict]:
    """Load images, inject noise on the full training split, then carve out reference and test sets."""
    images = instantiate(cfg.dataset.loader)
    if isinstance(images, SourceSpec):  # streamed images / precomputed features bring their own source
        return build_streaming_data(cfg, images, device)
    noisy = instantiate(cfg.noise).apply(images.train_y, num_classes=images.num_classes, dataset=images.name,
                                         data_dir=str(cfg.data_dir), seed=int(cfg.noise_seed))
    reference = instantiate(cfg.reference)
    context = ReferenceContext(noisy_labels=noisy, clean_labels=images.train_y,
                               warmup=lambda pool: pool_warmup(cfg, images, noisy, pool, device))
    splits = make_splits(len(images.train_y), reference=reference, test_split=cfg.test_split,
                         holdout_size=cfg.holdout_size, seed=int(cfg.split_seed), context=context,
                         official_test_size=None if images.test_y is None else len(images.test_y))
    if splits.holdout_test is not None:
        test_x, test_y = images.train_x[splits.holdout_test], images.train_y[splits.holdout_test]
    else:
        test_x, test_y = images.test_x, images.test_y
    ref_labels = images.train_y if reference.label_source == "clean" else noisy

    def dev(a, dtype=None):
        return torch.as_tensor(a, dtype=dtype).to(device)

    tr = subset_indices(splits.train, cfg.get("train_subset"), int(cfg.split_seed))
    ref = splits.reference[reference.eval_rows(len(splits.reference), int(cfg.split_seed))]
    data = InMemoryData(
        x=dev(images.train_x[tr]), y=dev(noisy[tr], torch.long), y_clean=dev(images.train_y[tr], torch.long),
        ref_x=dev(images.train_x[ref]), ref_y=dev(ref_labels[ref], torch.long),
        test_x=dev(test_x), test_y=dev(test_y, torch.long),
        augment=BatchAugment(images.mean, images.std, crop_padding=cfg.dataset.crop_padding,
                             hflip=cfg.dataset.hflip),
        strong_augment=strong_augment_for(cfg, images),
    )
    info = {"dataset_source": images.source, "num_classes": images.num_classes,
            "input_shape": tuple(images.train_x.shape[1:]), "n_train": len(tr),
            "n_reference": len(splits.reference), "n_reference_eval": len(ref), "n_test": len(test_y),
            "test_split": cfg.test_split,
            "noise_rate": float(np.mean(noisy[tr] != images.train_y[tr])),
            "reference_noise_rate": float(np.mean(ref_labels[splits.reference] != images.train_y[splits.reference])),
            "reference": reference.describe(), "reference_disjoint": bool(getattr(reference, "disjoint", True))}
    return data, info


def build_policy(cfg: DictConfig, data: InMemoryData, info: dict, device: torch.device):
    """Instantiate the pruning policy; static policies first get the (cached) warm-up record they select from."""
    policy = instantiate(cfg.pruner.policy, num_samples=info["n_train"], seed=int(cfg.seed))
    if getattr(policy, "needs_warmup", False):
        from alignprune_exp.train.warmup import run_warmup

        policy.prepare(run_warmup(cfg, data, num_classes=info["num_classes"], input_shape=info["input_shape"],
                                  device=device, cache_key_extra={},
                                  protocol=getattr(policy, "warmup_protocol", "scoring")))
    return policy


def build_trainer(cfg: DictConfig, callbacks=()) -> tuple[Trainer, dict]:
    """Build data, model, optimizer, scorer, policy and budget from the config into a ready Trainer."""
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    dist = distributed.current()
    device = distributed.device_for(dist, resolve_device(str(cfg.device)))
    speed.configure_backends(device, cfg.get("cudnn_benchmark", True))
    seed_everything(int(cfg.seed))
    data, info = build_data(cfg, device)
    model = instantiate(cfg.model, num_classes=info["num_classes"], input_shape=info["input_shape"]).to(device)
    memory_format = speed.memory_format(cfg.get("channels_last", "auto"), model, device)
    model = model.to(memory_format=memory_format)
    n = info["n_train"]
    criterion = instantiate(cfg.loss, num_samples=n, num_classes=info["num_classes"]).to(device)
    if dist.active and getattr(criterion, "per_sample_parameters", False):
        raise ConfigError(f"loss={cfg.loss._target_.rsplit('.', 1)[-1]} keeps per-sample parameters that "
                          "only one process can update: run it with a single process")
    state = RunState(
        model=model, optimizer=instantiate(cfg.optimizer)(model, **speed.optimizer_kwargs(cfg.optimizer, device)),
        scorer=instantiate(cfg.pruner.scorer, num_samples=n).to(device),
        policy=build_policy(cfg, data, info, device),
        budget=ForwardBudget.from_ratio(int(cfg.epochs), n, float(cfg.ratio.value)),
        shuffle_gen=torch.Generator().manual_seed(int(cfg.seed)),
        augment_gen=torch.Generator(device=device).manual_seed(int(cfg.seed) + 1),
        criterion=criterion,
    )
    amp = device.type == "cuda" if str(cfg.amp) == "auto" else bool(cfg.amp)
    trainer = Trainer(state, data, instantiate(cfg.scheduler), device=device,
                      batch_size=int(cfg.batch_size), eval_batch_size=int(cfg.eval_batch_size),
                      criterion=criterion, amp=amp, eval_every=int(cfg.eval_every),
                      max_epochs=int(np.ceil(cfg.epochs * cfg.max_epoch_factor)),
                      callbacks=list(callbacks), progress_bar=bool(cfg.progress_bar),
                      reference_batch_size=cfg.reference.get("batch_size") or (
                          info.get("n_reference_eval") if device.type == "cuda" else int(cfg.batch_size)),
                      memory_format=memory_format, forward=speed.model_forward(model, cfg.get("compile", False)),
                      dist=dist, check_ranks=bool(cfg.get("dist_check", False)))
    info["device"] = str(device)
    return trainer, info


def run(cfg: DictConfig, run_dir: str | Path, choices: dict | None = None, overrides: str = "") -> dict:
    """Train one configured run, writing its records into ``run_dir`` and a row into ``runs.csv``.

    Bad settings and an unwritable ``results_dir`` fail before any data loads. With ``resume=auto`` (or
    ``resume=<run_dir>``) the run continues in the folder of its latest checkpoint, or returns the summary
    of a run of the same config that already finished. In a data-parallel run every rank trains and
    scores; rank 0 alone decides where the run lives and records it.
    """
    validate_config(cfg)
    dist = distributed.current()
    dist.agree("the resolved config", OmegaConf.to_yaml(cfg, resolve=True))
    if dist.is_main:
        check_writable(cfg.results_dir)
    rid = run_id(cfg)
    plan = dist.gather_objects(resume_plan(cfg, rid, run_dir) if dist.is_main else None)[0]
    if plan.done is not None:
        log.info("already %s in %s: skipped (resume=null runs it again)", plan.done["status"], plan.run_dir)
        if plan.done["status"] == "diverged":
            raise TrainingDiverged(plan.done.get("diverged_epoch"), plan.done.get("diverged_loss"),
                                   f" (an earlier run, {plan.run_dir}; resume=null runs it again)")
        return plan.done
    if plan.run_dir != Path(run_dir):
        log.info("continuing the run in %s", plan.run_dir)
    with StopSignals(cfg.get("stop_grace_s", 20)) as stop:
        stop.raise_if_requested()
        if not dist.is_main:
            return _train_rank(cfg, plan, rid)
        return _train(cfg, plan, rid, stop, dict(choices or {}), overrides)


def _stop_requested(dist) -> bool:
    """A stop signal seen by any rank stops every rank at the same epoch end."""
    return dist.sum(torch.tensor([float(STOP.requested)])).item() > 0 if dist.active else STOP.requested


def _train_rank(cfg: DictConfig, plan, rid: str) -> dict:
    """A rank above 0: restores rank 0's checkpoint when resuming, trains in step with it, records nothing."""
    dist = distributed.current()
    trainer, _ = build_trainer(cfg)
    if plan.resume_from is not None:
        Checkpointer(plan.run_dir, trainer, rid).restore()

    def stop_at_epoch_end(_history):
        if _stop_requested(dist):
            raise RunInterrupted(STOP.signal_name or "a stop signal on another rank")

    trainer.epoch_end_hooks.append(stop_at_epoch_end)
    trainer.fit()
    if cfg.checkpoint:
        dist.gather_objects(None)  # rank 0 saves the final state: keep in step with it
    return {}


def _train(cfg: DictConfig, plan, rid: str, stop: StopSignals, choices: dict, overrides: str) -> dict:
    run_dir, t0 = plan.run_dir, time.perf_counter()
    dist = distributed.current()
    recorder = RunRecorder(run_dir)
    write_index(cfg.results_dir, rid, run_dir, "running")
    trainer, info = build_trainer(cfg)
    if trainer.state.budget.total == 0:
        raise ConfigError(f"the forward-pass budget is 0 (ratio={cfg.ratio.value}, epochs={cfg.epochs}, "
                          f"{info['n_train']} training images): nothing would train; lower the ratio")
    log.info("data: %s | %d train (%.1f%% noisy), %d reference, %d test (%s)", info["dataset_source"],
             info["n_train"], 100 * info["noise_rate"], info["n_reference"], info["n_test"], info["test_split"])
    if dist.active:
        log.info("data parallel: %d ranks, global batch %d (%d per rank)", dist.world_size, int(cfg.batch_size),
                 int(cfg.batch_size) // dist.world_size)
    logger = instantiate(cfg.logger)
    trainer.callbacks += [recorder.log_epoch, logger]
    parts = {}
    if cfg.get("snapshots", True):
        parts["snapshots"] = SnapshotRecorder(run_dir)
        trainer.callbacks.append(parts["snapshots"])
    dynamics = record_dynamics(trainer, cfg)
    if dynamics is not None:
        parts["dynamics"] = dynamics
    ckpt = Checkpointer(run_dir, trainer, rid, every=int(cfg.get("checkpoint_every", 1)), parts=parts)
    if plan.resume_from is not None:
        ckpt.restore()
    else:
        (run_dir / "snapshots.npz").unlink(missing_ok=True)
    recorder.rewrite_metrics(trainer.history)
    tags = [f"{g}={choices[g]}" for g in GROUPS if choices.get(g)]
    name = "_".join(str(choices.get(g, "")) for g in ("dataset", "noise", "pruner", "ratio")) + f"_s{cfg.seed}"
    logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True), name, tags)
    if hasattr(logger, "resume"):
        logger.resume(trainer.history)

    def stop_at_epoch_end(_history):
        if _stop_requested(dist):
            if ckpt.saved_epoch != trainer.state.epoch:
                ckpt.save()
            raise RunInterrupted(STOP.signal_name or "a stop signal on another rank")

    trainer.epoch_end_hooks += [ckpt.on_epoch_end, stop_at_epoch_end]
    if not dist.active:  # a stop between batches would leave the other ranks waiting in a collective
        trainer.batch_callbacks.append(stop.check_batch)
    faultinject.install(trainer)
    base = {**{g: choices.get(g) for g in GROUPS}, **info, "experiment": cfg.get("experiment_name"),
            "seed": int(cfg.seed), "target_ratio": float(cfg.ratio.value), "epochs": int(cfg.epochs),
            "input_shape": list(info["input_shape"]), "overrides": overrides, "run_dir": str(run_dir),
            "run_id": rid, "code_version": code_version()}

    def record(result: dict, status: str, error: str | None = None) -> dict:
        summary = {**base, **result, "status": status, "error": error,
                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "total_time_s": time.perf_counter() - t0}
        recorder.write_summary(summary)
        if status in FINAL_STATUSES:
            faultinject.kill_point("after_summary")
            append_result_row(cfg.results_dir, summary, filename=str(cfg.get("results_file") or "runs.csv"))
            faultinject.kill_point("after_row")
        write_index(cfg.results_dir, rid, run_dir, status)
        return summary

    summary, exit_code = None, 1
    try:
        try:
            result = trainer.fit()
            if result["train_fwd"] == 0:
                raise ConfigError(f"the run trained nothing in {result['epochs_run']} epochs (0 forward passes): "
                                  "check ratio, batch_size, max_epoch_factor and the pruner's settings")
        except TrainingDiverged as err:
            summary = record({**trainer.summarize(trainer.history, time.perf_counter() - t0),
                              "diverged_epoch": err.epoch, "diverged_loss": str(err.loss)}, "diverged", str(err))
            raise
        except RunInterrupted as err:
            where = (f"checkpoint {ckpt.path} (epoch {ckpt.saved_epoch})" if ckpt.saved_epoch
                     else "no checkpoint yet, so it starts over")
            raise RunInterrupted(f"stopped by {err} at epoch {trainer.state.epoch}: {where}; run the same command "
                                 f"with resume=auto (or resume={run_dir}) to continue") from None
        except Exception as err:
            record(trainer.summarize(trainer.history, time.perf_counter() - t0), "failed",
                   " ".join(str(err).split())[:500])
            raise
        if cfg.checkpoint:
            trainer.state.save(run_dir / "state.pt")
            dist.gather_objects(None)
        if dynamics is not None:
            dynamics.save(run_dir / "dynamics.pt", trainer.state.epoch)
        summary = record(result, "completed")
        ckpt.remove()
        exit_code = 0
    finally:
        logger.finish(summary, exit_code)
    log.info("final test acc %.2f%% | achieved ratio %.3f (target %.2f) | score noise AUROC %.3f | %s",
             summary["final_test_acc"], summary["achieved_ratio"], summary["target_ratio"],
             summary["final_score_noise_auroc"], run_dir)
    return summary


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
        distributed.pin_hydra_clock(distributed.shared_now(dist))
        if not dist.is_main:
            sys.argv.append("hydra.output_subdir=null")
    try:
        task()
    finally:
        distributed.shutdown()


__all__ = ["main", "task", "run", "build_trainer", "build_data"]
