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
Each record is saved as plain tensors under a hash of everything it depends on, so a sweep over methods
and ratios trains each protocol's run once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf, open_dict

from alignprune_exp.core import distributed
from alignprune_exp.core.errors import AlignPruneError, ConfigError
from alignprune_exp.models.builders import features_and_logits
from alignprune_exp.pruning.full import FullData
from alignprune_exp.scoring.loss import LossScorer
from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.train.budget import ForwardBudget
from alignprune_exp.train.schedule import Constant, Cosine, LRSchedule
from alignprune_exp.train.state import RunState
from alignprune_exp.train.trainer import Trainer

log = logging.getLogger("alignprune")

CACHE_VERSION = 2
PROTOCOLS = ("scoring", "dynamics")
SCHEDULERS = ("ramp", "constant", "run", "compressed")


@dataclass
class WarmupRecord:
    """What a warm-up run leaves for the selectors; every per-sample tensor is indexed by dataset index.

    Attributes:
        labels: int64 [n] noisy labels the warm-up trained on.
        probs: float16 (or float32) [E, n] training-time softmax probability of the given label, per epoch.
        forgetting: int64 [n] learned -> forgotten transitions over all presentations (Toneva et al.).
        ever_learned: bool [n] whether any presentation classified the sample correctly.
        logits: float32 [n, C] final eval-mode logits (un-augmented).
        features: [n, d] final eval-mode penultimate features (float32 or float16).
        losses: float32 [n] final eval-mode cross-entropy against the noisy label.
        logits_strong, features_strong: the same on one seeded strong view (None when the data has none).
    """

    labels: torch.Tensor
    probs: torch.Tensor
    forgetting: torch.Tensor
    ever_learned: torch.Tensor
    logits: torch.Tensor
    features: torch.Tensor
    losses: torch.Tensor
    logits_strong: torch.Tensor | None = None
    features_strong: torch.Tensor | None = None

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def num_epochs(self) -> int:
        return self.probs.shape[0]

    def to(self, device) -> "WarmupRecord":
        return WarmupRecord(**{k: v.to(device) for k, v in self.tensors().items()})

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor the record holds (the optional strong-view ones only when present)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def check(self) -> None:
        """Raise ValueError unless every tensor has the shape and dtype the selectors rely on."""
        n, e, c = self.num_samples, self.num_epochs, self.num_classes
        d = self.features.shape[-1]
        expected = {"labels": ((n,), {torch.int64}), "probs": ((e, n), {torch.float32, torch.float16}),
                    "forgetting": ((n,), {torch.int64}), "ever_learned": ((n,), {torch.bool}),
                    "logits": ((n, c), {torch.float32}), "losses": ((n,), {torch.float32}),
                    "features": ((n, d), {torch.float32, torch.float16}),
                    "logits_strong": ((n, c), {torch.float32}), "features_strong": ((n, d), {torch.float32, torch.float16})}
        if (self.logits_strong is None) != (self.features_strong is None):
            raise ValueError("logits_strong and features_strong come together")
        for name, (shape, dtypes) in expected.items():
            t = getattr(self, name)
            if t is None:
                continue
            if tuple(t.shape) != shape or t.dtype not in dtypes:
                raise ValueError(f"{name}: {t.dtype} {tuple(t.shape)}, expected {shape}")
        if not (torch.isfinite(self.logits).all() and torch.isfinite(self.probs).all()):
            raise ValueError("non-finite logits or probabilities")


class WarmupRecorder:
    """Batch callback collecting the given-label probability (float16) and forgetting events of every presentation.

    Also used by Full-training runs (``cli.run`` saves ``dynamics.pt``), so their trajectories are on disk too.
    """

    def __init__(self, labels: torch.Tensor, epochs: int):
        n, dev = len(labels), labels.device
        self.probs = torch.zeros(epochs, n, device=dev, dtype=torch.float16)
        self.forgetting = torch.zeros(n, dtype=torch.int64, device=dev)
        self.last_correct = torch.zeros(n, dtype=torch.bool, device=dev)
        self.ever_learned = torch.zeros(n, dtype=torch.bool, device=dev)

    def __call__(self, epoch: int, idx: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        logits = logits.float()
        if epoch < len(self.probs):
            self.probs[epoch, idx] = logits.softmax(1).gather(1, y[:, None]).squeeze(1).to(self.probs.dtype)
        correct = logits.argmax(1) == y
        self.forgetting[idx] += (self.last_correct[idx] & ~correct).long()
        self.last_correct[idx] = correct
        self.ever_learned[idx] |= correct


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


def _digest(t: torch.Tensor | np.ndarray) -> str:
    a = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
    return hashlib.sha256(a.tobytes()).hexdigest() + f":{a.dtype}:{list(a.shape)}"


def _plain(value):
    """JSON-able form of a cache-key ingredient (arrays and tensors by their digest)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return _digest(value)
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def cache_key(cfg: DictConfig, data, *, num_classes: int, input_shape, seed: int, amp: bool,
              cache_key_extra: dict) -> str:
    """Canonical JSON of everything the record depends on.

    The training images and noisy labels enter by digest: that pins the noise draw (``noise_seed``) and
    the reference / holdout split (``split_seed``, the reference set) exactly, so identical data under
    different seeds (e.g. human noise) shares one warm-up. The loss's own seed is the warm-up seed.
    """
    loss = _plain(cfg.loss)
    loss.pop("seed", None)
    sched = str(cfg.warmup.scheduler)
    model = _plain(cfg.model)
    if not model.get("sync_bn"):  # keys of caches made before the option existed stay valid
        model.pop("sync_bn", None)
    key = {
        "version": CACHE_VERSION,
        "dataset": {k: _plain(cfg.dataset.get(k)) for k in ("name", "crop_padding", "hflip")},
        "noise": _plain(cfg.noise), "model": model, "optimizer": _plain(cfg.optimizer), "loss": loss,
        "batch_size": int(cfg.batch_size), "seed": int(seed), "amp": bool(amp),
        "warmup": {"epochs": int(cfg.warmup.epochs), "scheduler": sched,
                   "feature_dtype": str(cfg.warmup.feature_dtype),
                   "ramp_fraction": float(cfg.warmup.get("ramp_fraction", 0.3)) if sched == "ramp" else None,
                   "run_schedule": _plain(cfg.scheduler) if sched in ("run", "compressed") else None,
                   "run_epochs": int(cfg.epochs) if sched == "run" else None},
        "strong_view": str(cfg.get("strong_view", "autoaugment")),
        "n": int(data.num_samples), "num_classes": int(num_classes), "input_shape": list(input_shape),
        "labels": _digest(data.y), "images": _digest(data.x) if isinstance(getattr(data, "x", None), torch.Tensor)
        else None,
        "extra": _plain(dict(cache_key_extra)),
    }
    return json.dumps(key, sort_keys=True, default=str)


def load_cached(path: Path, key: str) -> WarmupRecord | None:
    """The record stored at ``path`` if it is readable, complete and made under ``key``; None (logged) otherwise."""
    from alignprune_exp.core.safe_load import safe_torch_load

    if not path.is_file():
        log.info("warm-up cache miss: %s", path)
        return None
    try:
        blob = safe_torch_load(path)
        if not isinstance(blob, dict) or blob.get("key") != key:
            raise ValueError("it was made for a different configuration or data")
        record = WarmupRecord(**{f.name: blob["tensors"].get(f.name) for f in fields(WarmupRecord)})
        record.check()
    except (AlignPruneError, ValueError, KeyError, TypeError) as err:
        log.warning("warm-up cache file %s is unusable (%s): rebuilding", path, " ".join(str(err).split())[:200])
        return None
    log.info("warm-up cache hit: %s", path)
    return record


def save_cached(path: Path, key: str, record: WarmupRecord) -> None:
    """Write atomically (temporary file + rename), so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save({"key": key, "tensors": {k: v.detach().cpu() for k, v in record.tensors().items()}}, tmp)
    os.replace(tmp, path)


def _strong_view_outputs(trainer: Trainer, data, batch_size: int, seed: int, feat_dtype) -> dict:
    """Eval-mode logits and features of every training sample on one strong view drawn from ``seed + 2``
    (Prune4ReL's ``eval_train_strong``); empty when the data source has no strong view."""
    batches = getattr(data, "train_strong_eval_batches", None)
    if batches is None or getattr(data, "strong_augment", None) is None:
        return {}
    gen = torch.Generator(device=trainer.device).manual_seed(seed + 2)
    logits, feats = [], []
    for x, _, _ in batches(batch_size, gen):
        with trainer.autocast():
            f, z = features_and_logits(trainer.state.model, x)
        logits.append(z.float())
        feats.append(f.to(feat_dtype))
    return {"logits_strong": torch.cat(logits), "features_strong": torch.cat(feats)}


def train_warmup(cfg: DictConfig, data, *, num_classes: int, input_shape, device: torch.device, seed: int,
                 amp: bool) -> WarmupRecord:
    """Train a fresh model on all of ``data`` for ``warmup.epochs`` epochs and score every sample with it.

    Runs inside ``torch.random.fork_rng`` seeded from ``seed``: the global RNG the main run draws from
    afterwards is the same whether or not the warm-up ran (cache hit or miss).
    """
    epochs, n = int(cfg.warmup.epochs), data.num_samples
    if epochs < 1:
        raise ConfigError(f"warmup.epochs={epochs} must be >= 1")
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = instantiate(cfg.model, num_classes=num_classes, input_shape=tuple(input_shape)).to(device)
        seeded = {"seed": seed} if "seed" in cfg.loss else {}
        criterion = instantiate(cfg.loss, num_samples=n, num_classes=num_classes, **seeded).to(device)
        recorder = WarmupRecorder(data.y, epochs)
        state = RunState(
            model=model, optimizer=instantiate(cfg.optimizer)(model),
            scorer=LossScorer(n).to(device), policy=FullData(n, seed=seed),
            budget=ForwardBudget.from_ratio(epochs, n, 0.0),
            shuffle_gen=torch.Generator().manual_seed(seed),
            augment_gen=torch.Generator(device=device).manual_seed(seed + 1), criterion=criterion)
        trainer = Trainer(state, data, warmup_schedule(cfg), device=device, batch_size=int(cfg.batch_size),
                          eval_batch_size=int(cfg.eval_batch_size), criterion=criterion, amp=amp,
                          eval_every=epochs, max_epochs=epochs, batch_callbacks=[recorder])
        result = trainer.fit()
        model.eval()
        idx, logits, feats, losses = [], [], [], []
        feat_dtype = {"float32": torch.float32, "float16": torch.float16}[str(cfg.warmup.feature_dtype)]
        dist = trainer.dist
        with torch.no_grad():
            for x, y, i in data.train_eval_batches(int(cfg.eval_batch_size), dist=dist if dist.active else None):
                with trainer.autocast():
                    f, z = features_and_logits(model, x)
                z = z.float()
                idx.append(i)
                logits.append(z)
                feats.append(f.to(feat_dtype))
                losses.append(F.cross_entropy(z, y, reduction="none"))
            strong = _strong_view_outputs(trainer, data, int(cfg.eval_batch_size), seed, feat_dtype)
        if dist.active:  # each rank scored its share of the batches: put the records back in index order
            order = dist.gather_cat(torch.cat(idx)).argsort()
            logits, feats, losses = ([dist.gather_cat(torch.cat(t))[order]] for t in (logits, feats, losses))
    test = f"test acc {result['final_test_acc']:.2f}%" if data.eval_size("test") else "no test set"
    log.info("warm-up: %d epochs on %d samples (lr schedule %s), %d training forward passes, %s", epochs, n,
             cfg.warmup.scheduler, result["train_fwd"], test)
    return WarmupRecord(labels=data.y.long().clone(), probs=recorder.probs,
                        forgetting=recorder.forgetting, ever_learned=recorder.ever_learned,
                        logits=torch.cat(logits), features=torch.cat(feats), losses=torch.cat(losses), **strong)


def run_warmup(cfg: DictConfig, data, *, num_classes: int, input_shape, device: torch.device,
               cache_key_extra: dict | None = None, seed: int | None = None,
               protocol: str = "scoring") -> WarmupRecord:
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
    path = Path(str(cache_dir)) / f"warmup_{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
    record = load_cached(path, key)
    usable = record is not None and record.num_samples == data.num_samples and record.num_classes == num_classes
    dist = distributed.current()
    if dist.all_true(usable):  # ranks train the warm-up together unless every one of them has the record
        return record.to(device)
    record = train_warmup(cfg, data, device=device, **kwargs)
    if dist.is_main:
        save_cached(path, key, record)
    return record
