"""The warm-up cache: records stored as plain tensors under a hash of everything they depend on.

A sweep over methods and ratios trains each warm-up protocol's run once; a file that is unreadable, made for
another configuration or data, or malformed is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from alignprune_exp.core.errors import AlignPruneError
from alignprune_exp.core.safe_load import safe_torch_load
from alignprune_exp.data.batches import InMemoryData
from alignprune_exp.runs.durable import atomic_torch_save
from alignprune_exp.train.recorders import WarmupRecord

log = logging.getLogger("alignprune")

CACHE_VERSION = 2


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


def cache_key(
    cfg: DictConfig, data, *, num_classes: int, input_shape, seed: int, amp: bool, cache_key_extra: dict
) -> str:
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
        "noise": _plain(cfg.noise),
        "model": model,
        "optimizer": _plain(cfg.optimizer),
        "loss": loss,
        "batch_size": int(cfg.batch_size),
        "seed": int(seed),
        "amp": bool(amp),
        "warmup": {
            "epochs": int(cfg.warmup.epochs),
            "scheduler": sched,
            "feature_dtype": str(cfg.warmup.feature_dtype),
            "ramp_fraction": float(cfg.warmup.get("ramp_fraction", 0.3)) if sched == "ramp" else None,
            "run_schedule": _plain(cfg.scheduler) if sched in ("run", "compressed") else None,
            "run_epochs": int(cfg.epochs) if sched == "run" else None,
        },
        "strong_view": str(cfg.get("strong_view", "autoaugment")),
        "n": int(data.num_samples),
        "num_classes": int(num_classes),
        "input_shape": list(input_shape),
        "labels": _digest(data.y),
        "images": _digest(data.x) if isinstance(data, InMemoryData) else None,
        "extra": _plain(dict(cache_key_extra)),
    }
    return json.dumps(key, sort_keys=True, default=str)


def load_cached(path: Path, key: str) -> WarmupRecord | None:
    """The record stored at ``path`` if it is readable, complete and made under ``key``; None (logged) otherwise."""
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
    """Write atomically (temporary file + fsync + rename), so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"key": key, "tensors": {k: v.detach().cpu() for k, v in record.tensors().items()}}, path)


def cache_path(cache_dir: str | Path, key: str) -> Path:
    """Where the record of ``key`` lives in ``cache_dir``."""
    return Path(str(cache_dir)) / f"warmup_{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
