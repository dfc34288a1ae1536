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
from omegaconf import DictConfig, OmegaConf

from . import distributed
from .data.augment import BatchAugment
from .data.splits import make_splits, subset_indices
from .data.strong_augment import strong_augment_for
from .errors import AlignPruneError, ConfigError
from .reference import ReferenceContext
from .results import RunRecorder, append_result_row
from .snapshots import SnapshotRecorder
from .train.budget import ForwardBudget
from .train.state import RunState
from .data.source import InMemoryData
from .data.streaming import SourceSpec, build_streaming_data
from .train.trainer import Trainer
from .utils import instantiate, resolve_device, seed_everything

log = logging.getLogger("alignprune")

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("dataset", "noise", "model", "pruner", "ratio", "reference", "loss", "optimizer", "scheduler", "logger",
          "profile")


def pool_warmup(cfg: DictConfig, images, noisy: np.ndarray, pool: np.ndarray, device: torch.device):
    """Warm-up record of a fresh model trained on ``pool`` (noisy labels), for pseudo-clean references.

    Seeded by ``split_seed``: like every split, the reference set is the same whatever the training seed.
    """
    from .train.warmup import run_warmup

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
    data = InMemoryData(
        x=dev(images.train_x[tr]), y=dev(noisy[tr], torch.long), y_clean=dev(images.train_y[tr], torch.long),
        ref_x=dev(images.train_x[splits.reference]), ref_y=dev(ref_labels[splits.reference], torch.long),
        test_x=dev(test_x), test_y=dev(test_y, torch.long),
        augment=BatchAugment(images.mean, images.std, crop_padding=cfg.dataset.crop_padding,
                             hflip=cfg.dataset.hflip),
        strong_augment=strong_augment_for(cfg, images),
    )
    info = {"dataset_source": images.source, "num_classes": images.num_classes,
            "input_shape": tuple(images.train_x.shape[1:]), "n_train": len(tr),
            "n_reference": len(splits.reference), "n_test": len(test_y), "test_split": cfg.test_split,
            "noise_rate": float(np.mean(noisy[tr] != images.train_y[tr])),
            "reference_noise_rate": float(np.mean(ref_labels[splits.reference] != images.train_y[splits.reference])),
            "reference": reference.describe()}
    return data, info


def build_policy(cfg: DictConfig, data: InMemoryData, info: dict, device: torch.device):
    """Instantiate the pruning policy; static policies first get the (cached) warm-up record they select from."""
    policy = instantiate(cfg.pruner.policy, num_samples=info["n_train"], seed=int(cfg.seed))
    if getattr(policy, "needs_warmup", False):
        from .train.warmup import run_warmup

        policy.prepare(run_warmup(cfg, data, num_classes=info["num_classes"], input_shape=info["input_shape"],
                                  device=device, cache_key_extra={}))
    return policy


def build_trainer(cfg: DictConfig, callbacks=()) -> tuple[Trainer, dict]:
    """Build data, model, optimizer, scorer, policy and budget from the config into a ready Trainer."""
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    dist = distributed.current()
    device = distributed.device_for(dist, resolve_device(str(cfg.device)))
    seed_everything(int(cfg.seed))
    data, info = build_data(cfg, device)
    model = instantiate(cfg.model, num_classes=info["num_classes"], input_shape=info["input_shape"]).to(device)
    n = info["n_train"]
    criterion = instantiate(cfg.loss, num_samples=n, num_classes=info["num_classes"]).to(device)
    if dist.active and getattr(criterion, "per_sample_parameters", False):
        raise ConfigError(f"loss={cfg.loss._target_.rsplit('.', 1)[-1]} keeps per-sample parameters that "
                          "only one process can update: run it with a single process")
    state = RunState(
        model=model, optimizer=instantiate(cfg.optimizer)(model),
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
                      dist=dist, check_ranks=bool(cfg.get("dist_check", False)))
    info["device"] = str(device)
    return trainer, info


def run(cfg: DictConfig, run_dir: str | Path, choices: dict | None = None, overrides: str = "") -> dict:
    """Train one configured run, writing its records into ``run_dir`` and a row into ``runs.csv``."""
    run_dir, choices = Path(run_dir), dict(choices or {})
    t0 = time.perf_counter()
    dist = distributed.current()
    dist.agree("the resolved config", OmegaConf.to_yaml(cfg, resolve=True))
    if not dist.is_main:  # ranks > 0 train and score, rank 0 alone records
        trainer, info = build_trainer(cfg)
        trainer.fit()
        if cfg.checkpoint:
            dist.gather_objects(None)  # rank 0 saves the checkpoint: keep in step with it
        return {}
    recorder = RunRecorder(run_dir)
    trainer, info = build_trainer(cfg)
    log.info("data: %s | %d train (%.1f%% noisy), %d reference, %d test (%s)", info["dataset_source"],
             info["n_train"], 100 * info["noise_rate"], info["n_reference"], info["n_test"], info["test_split"])
    if dist.active:
        log.info("data parallel: %d ranks, global batch %d (%d per rank)", dist.world_size, int(cfg.batch_size),
                 int(cfg.batch_size) // dist.world_size)
    logger = instantiate(cfg.logger)
    trainer.callbacks += [recorder.log_epoch, logger]
    if cfg.get("snapshots", True):
        trainer.callbacks.append(SnapshotRecorder(run_dir))
    tags = [f"{g}={choices[g]}" for g in GROUPS if choices.get(g)]
    name = "_".join(str(choices.get(g, "")) for g in ("dataset", "noise", "pruner", "ratio")) + f"_s{cfg.seed}"
    logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True), name, tags)
    summary, exit_code = None, 1
    try:
        result = trainer.fit()
        if cfg.checkpoint:
            trainer.state.save(run_dir / "state.pt")
            dist.gather_objects(None)
        summary = {**{g: choices.get(g) for g in GROUPS}, **info, **result,
                   "experiment": cfg.get("experiment_name"), "seed": int(cfg.seed),
                   "target_ratio": float(cfg.ratio.value), "epochs": int(cfg.epochs),
                   "input_shape": list(info["input_shape"]), "overrides": overrides, "run_dir": str(run_dir),
                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "total_time_s": time.perf_counter() - t0}
        recorder.write_summary(summary)
        append_result_row(cfg.results_dir, summary)
        exit_code = 0
    finally:
        logger.finish(summary, exit_code)
    log.info("final test acc %.2f%% | achieved ratio %.3f (target %.2f) | score noise AUROC %.3f | %s",
             summary["final_test_acc"], summary["achieved_ratio"], summary["target_ratio"],
             summary["final_score_noise_auroc"], run_dir)
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def task(cfg: DictConfig) -> float:
    """Hydra task: one run. Known input errors become one line on stderr and exit status 2; in a multi-rank
    run any failure is one line naming the rank, and the process exits so that no peer waits on it."""
    hc = HydraConfig.get()
    try:
        dist = distributed.init()  # a SLURM task of a multi-task job joins its process group here
        if not dist.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        summary = run(cfg, hc.runtime.output_dir, dict(hc.runtime.choices),
                      overrides=",".join(hc.overrides.task))
    except AlignPruneError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if not distributed.current().active:
            raise
        distributed.fail(err)
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
