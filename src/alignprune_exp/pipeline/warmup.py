"""The warm-up runs static pruners and pseudo-clean references score from, cached on disk (spec static_baselines §0).

A fresh model (the run's model, optimizer, criterion and batch size) trains on every training sample with
its noisy label through the shared Trainer (FullData policy, a budget of exactly epochs x n forward passes).
During training it records the softmax probability of the given label at each presentation (float16
[epochs, n]) and forgetting events (Forgetting); afterwards, in eval mode, final logits, penultimate
features and per-sample cross-entropy on the un-augmented view (SmallL, Margin, GraNd, EL2N, Moderate, SSP)
and logits and features on one seeded strong view (Prune4ReL's ``eval_train_strong``).

Two protocols share this code: the ``scoring`` warm-up (``warmup.epochs``, 10 / 30, with
``warmup.scheduler``) and the ``dynamics`` run Dyn-Unc and DUAL read (``warmup.dynamics_epochs``, the full
training length, with the run's own schedule: a full training run, as their official code records).
Records are cached by ``pipeline.warmup_cache``, so a sweep over methods and ratios trains each protocol's
run once.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, open_dict

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core import distributed
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.models import features_and_logits
from alignprune_exp.pipeline.warmup_cache import cache_key, cache_path, load_cached, save_cached
from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.pruning.full import FullData
from alignprune_exp.scoring.loss import LossScorer
from alignprune_exp.train.recorders import WarmupRecord, WarmupRecorder
from alignprune_exp.train.schedule import Constant, Cosine, LRSchedule
from alignprune_exp.train.state import RunState
from alignprune_exp.train.trainer import Trainer

log = logging.getLogger("alignprune")

PROTOCOLS = ("scoring", "dynamics")
SCHEDULERS = ("ramp", "constant", "run", "compressed")


class _RunPrefix(LRSchedule):
    """The run's own schedule over its first ``fraction`` of progress (the warm-up as the run's first epochs)."""

    def __init__(self, schedule: LRSchedule, fraction: float):
        self.schedule, self.fraction = schedule, fraction

    def factor(self, progress: float) -> float:
        return self.schedule.factor(min(1.0, progress * self.fraction))

    def momentum(self, progress: float) -> float | None:
        return self.schedule.momentum(min(1.0, progress * self.fraction))


def warmup_schedule(cfg: DictConfig) -> LRSchedule:
    """The warm-up's learning-rate factor as a function of its own progress (``warmup.scheduler``).

    ``ramp`` (default): linear from 1/25 of the peak (OneCycle's starting lr) to the peak over the first
    ``warmup.ramp_fraction`` of the warm-up, then the peak: it ends where Prune4ReL's warm-up is (a
    cosine over 300 epochs is ~ the peak for its first 10-30) without a first step at LARS's peak 5.2.
    ``constant``: the peak throughout (the previous default). ``run``: the run's own schedule as if the
    warm-up were its first epochs (the dynamics run uses it over the full length). ``compressed``: the run's
    whole schedule squeezed into the warm-up (ramps up and anneals to ~0).
    """
    kind = str(cfg.warmup.scheduler)
    if kind == "ramp":
        ramp = float(cfg.warmup.get("ramp_fraction", 0.3))
        if not 0.0 < ramp <= 1.0:
            raise ConfigError(f"warmup.ramp_fraction={ramp} must be in (0, 1]")
        return Cosine(warmup_fraction=ramp, min_factor=1.0, warmup_start_factor=1.0 / 25)
    if kind == "constant":
        return Constant()
    if kind == "run":
        return _RunPrefix(instantiate(cfg.scheduler), min(1.0, int(cfg.warmup.epochs) / int(cfg.epochs)))
    if kind == "compressed":
        return _RunPrefix(instantiate(cfg.scheduler), 1.0)
    raise ConfigError(f"warmup.scheduler={kind!r} is not one of: {', '.join(SCHEDULERS)}")


def protocol_config(cfg: DictConfig, protocol: str) -> DictConfig:
    """``cfg`` as the warm-up of ``protocol`` sees it: ``dynamics`` = ``warmup.dynamics_epochs`` (the
    run's ``epochs`` by default) with the run's own schedule, i.e. a full training run on all the data."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"warm-up protocol {protocol!r} is not one of: {', '.join(PROTOCOLS)}")
    if protocol == "scoring":
        return cfg
    out = cfg.copy()
    epochs = cfg.warmup.get("dynamics_epochs")
    with open_dict(out):
        out.warmup.epochs = int(cfg.epochs if epochs is None else epochs)
        out.warmup.scheduler = "run"
    return out


def _strong_view_outputs(trainer: Trainer, data, batch_size: int, seed: int, feat_dtype) -> dict:
    """Eval-mode logits and features of every training sample on one strong view drawn from ``seed + 2``
    (Prune4ReL's ``eval_train_strong``); empty when the data source has no strong view."""
    if not data.has_strong_eval_view:
        return {}
    gen = torch.Generator(device=trainer.device).manual_seed(seed + 2)
    logits, feats = [], []
    for x, _, _ in data.train_strong_eval_batches(batch_size, gen):
        with trainer.autocast():
            f, z = features_and_logits(trainer.state.model, x)
        logits.append(z.float())
        feats.append(f.to(feat_dtype))
    return {"logits_strong": torch.cat(logits), "features_strong": torch.cat(feats)}


def _warmup_trainer(
    cfg: DictConfig,
    data,
    *,
    num_classes: int,
    input_shape,
    device: torch.device,
    seed: int,
    amp: bool,
    recorder: WarmupRecorder,
) -> Trainer:
    """A fresh model, criterion and optimizer on all of ``data`` with the FullData policy for ``warmup.epochs``."""
    epochs, n = int(cfg.warmup.epochs), data.num_samples
    model = instantiate(cfg.model, num_classes=num_classes, input_shape=tuple(input_shape)).to(device)
    seeded = {"seed": seed} if "seed" in cfg.loss else {}
    criterion = instantiate(cfg.loss, num_samples=n, num_classes=num_classes, **seeded).to(device)
    state = RunState(
        model=model,
        optimizer=instantiate(cfg.optimizer)(model),
        scorer=LossScorer(n).to(device),
        policy=FullData(n, seed=seed),
        budget=ForwardBudget.from_ratio(epochs, n, 0.0),
        shuffle_gen=torch.Generator().manual_seed(seed),
        augment_gen=torch.Generator(device=device).manual_seed(seed + 1),
        criterion=criterion,
    )
    return Trainer(
        state,
        data,
        warmup_schedule(cfg),
        device=device,
        batch_size=int(cfg.batch_size),
        eval_batch_size=int(cfg.eval_batch_size),
        criterion=criterion,
        amp=amp,
        eval_every=epochs,
        max_epochs=epochs,
        batch_callbacks=[recorder],
    )


@torch.no_grad()
def _score_training_set(trainer: Trainer, data, batch_size: int, seed: int, feat_dtype) -> dict:
    """Eval-mode logits, features and cross-entropy of every training sample (and its strong view), in index
    order; each rank scores its share of the batches."""
    model, dist = trainer.state.model, trainer.dist
    model.eval()
    idx, logits, feats, losses = [], [], [], []
    for x, y, i in data.train_eval_batches(batch_size, dist=dist if dist.active else None):
        with trainer.autocast():
            f, z = features_and_logits(model, x)
        z = z.float()
        idx.append(i)
        logits.append(z)
        feats.append(f.to(feat_dtype))
        losses.append(F.cross_entropy(z, y, reduction="none"))
    strong = _strong_view_outputs(trainer, data, batch_size, seed, feat_dtype)
    if dist.active:  # put the records back in index order
        order = dist.gather_cat(torch.cat(idx)).argsort()
        logits, feats, losses = ([dist.gather_cat(torch.cat(t))[order]] for t in (logits, feats, losses))
    return {"logits": torch.cat(logits), "features": torch.cat(feats), "losses": torch.cat(losses), **strong}


def train_warmup(
    cfg: DictConfig, data, *, num_classes: int, input_shape, device: torch.device, seed: int, amp: bool
) -> WarmupRecord:
    """Train a fresh model on all of ``data`` for ``warmup.epochs`` epochs and score every sample with it.

    Runs inside ``torch.random.fork_rng`` seeded from ``seed``: the global RNG the main run draws from
    afterwards is the same whether or not the warm-up ran (cache hit or miss).
    """
    epochs, n = int(cfg.warmup.epochs), data.num_samples
    if epochs < 1:
        raise ConfigError(f"warmup.epochs={epochs} must be >= 1")
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    feat_dtype = {"float32": torch.float32, "float16": torch.float16}[str(cfg.warmup.feature_dtype)]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        recorder = WarmupRecorder(data.y, epochs)
        trainer = _warmup_trainer(
            cfg,
            data,
            num_classes=num_classes,
            input_shape=input_shape,
            device=device,
            seed=seed,
            amp=amp,
            recorder=recorder,
        )
        result = trainer.fit()
        scored = _score_training_set(trainer, data, int(cfg.eval_batch_size), seed, feat_dtype)
    test = f"test acc {result['final_test_acc']:.2f}%" if data.eval_size("test") else "no test set"
    log.info(
        "warm-up: %d epochs on %d samples (lr schedule %s), %d training forward passes, %s",
        epochs,
        n,
        cfg.warmup.scheduler,
        result["train_fwd"],
        test,
    )
    return WarmupRecord(
        labels=data.y.long().clone(),
        probs=recorder.probs,
        forgetting=recorder.forgetting,
        ever_learned=recorder.ever_learned,
        **scored,
    )


def run_warmup(
    cfg: DictConfig,
    data,
    *,
    num_classes: int,
    input_shape,
    device: torch.device,
    cache_key_extra: dict | None = None,
    seed: int | None = None,
    protocol: str = "scoring",
) -> WarmupRecord:
    """The warm-up record of ``protocol`` (``scoring`` or ``dynamics``, see ``protocol_config``) for ``data``
    under ``cfg``: from ``warmup.cache_dir`` when a valid file exists, else trained (and cached). ``seed``
    defaults to ``cfg.seed``; the record is returned on ``device``."""
    cfg = protocol_config(cfg, protocol)
    if str(cfg.warmup.feature_dtype) not in ("float32", "float16"):
        raise ConfigError(f"warmup.feature_dtype={cfg.warmup.feature_dtype!r} is not one of: float32, float16")
    seed = int(cfg.seed if seed is None else seed)
    amp = device.type == "cuda" if str(cfg.amp) == "auto" else bool(cfg.amp)
    kwargs = dict(num_classes=num_classes, input_shape=input_shape, seed=seed, amp=amp)
    cache_dir = cfg.warmup.get("cache_dir")
    if not cache_dir:
        return train_warmup(cfg, data, device=device, **kwargs)
    key = cache_key(cfg, data, cache_key_extra=cache_key_extra or {}, **kwargs)
    path = cache_path(cache_dir, key)
    record = load_cached(path, key)
    usable = record is not None and record.num_samples == data.num_samples and record.num_classes == num_classes
    dist = distributed.current()
    if dist.all_true(usable):  # ranks train the warm-up together unless every one of them has the record
        return record.to(device)
    record = train_warmup(cfg, data, device=device, **kwargs)
    if dist.is_main:
        save_cached(path, key, record)
    return record
