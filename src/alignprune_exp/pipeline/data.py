"""One data assembly for every dataset: noise, reference and test splits, training subset, then the batch source.

In-memory images (``data.base.ImageData``) and datasets that build their own source (streamed images,
precomputed features: a ``data.spec.SourceSpec``) go through the same steps, so every run records the same
``info`` keys. Pseudo-clean reference selectors get their warm-up from ``pool_warmup`` here.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data.augment import BatchAugment
from alignprune_exp.data.base import ImageData
from alignprune_exp.data.spec import InMemorySpec, Part, SourceSpec
from alignprune_exp.data.splits import make_splits
from alignprune_exp.data.strong_augment import build_strong_view
from alignprune_exp.pipeline.warmup import run_warmup
from alignprune_exp.reference.selectors import ReferenceContext


def strong_augment_for(cfg: DictConfig, images: ImageData) -> BatchAugment:
    """The in-memory strong view (``strong_view``): trains the criteria that need one (SOP+) and gives
    Prune4ReL its strong-view scores; built for every run, it costs nothing unless used."""
    return build_strong_view(
        str(cfg.get("strong_view", "autoaugment")),
        images.mean,
        images.std,
        crop_padding=cfg.dataset.crop_padding,
        hflip=cfg.dataset.hflip,
    )


def source_spec(cfg: DictConfig) -> SourceSpec:
    """The configured dataset as a spec (in-memory images get the dataset's weak and strong views)."""
    loaded = instantiate(cfg.dataset.loader)
    if isinstance(loaded, SourceSpec):
        return loaded
    augment = BatchAugment(loaded.mean, loaded.std, crop_padding=cfg.dataset.crop_padding, hflip=cfg.dataset.hflip)
    return InMemorySpec(loaded, augment, strong_augment_for(cfg, loaded))


class _OfficialReference:
    """Stands in for the reference selector in ``make_splits`` when the reference is an official split:
    nothing is held out of the training images."""

    label_source = "clean"
    disjoint = True

    def resolve_size(self, default_size: int) -> int:
        return 0

    def select(self, pool: np.ndarray, size: int, context=None) -> np.ndarray:
        return pool[:0]


def _check_clean_labels(spec: SourceSpec, cfg: DictConfig, reference, official: bool) -> None:
    """Datasets whose training labels are noisy with no clean version cannot give a clean holdout or reference."""
    if spec.labels_are_clean:
        return
    if cfg.test_split == "holdout":
        raise ConfigError(
            f"{spec.name}'s training labels are real noisy labels with no clean version, so "
            "test_split=holdout cannot draw a clean test set: use test_split=official"
        )
    if reference.label_source == "clean" and not official:
        raise ConfigError(
            f"{spec.name} has no clean training labels to draw a clean reference set from: "
            "use reference=clean_val with the official validation split, or reference=noisy_train"
        )


def _official_reference(spec: SourceSpec, reference, seed: int) -> Part:
    """A random ``reference.size`` of the dataset's official clean validation split (by ``split_seed``)."""
    n_ref = reference.resolve_size(len(spec.reference_y))
    if n_ref > len(spec.reference_y):
        raise ConfigError(
            f"reference.size={n_ref} exceeds the {len(spec.reference_y)} images of "
            f"{spec.reference_name}; lower reference.size"
        )
    rows = np.sort(np.random.default_rng(seed).permutation(len(spec.reference_y))[:n_ref])
    return Part("reference", rows, spec.reference_y[rows])


def _splits(cfg: DictConfig, spec: SourceSpec, noisy: np.ndarray, reference, device: torch.device):
    """Holdout test, training subset and reference drawn from the training images (``data.splits.make_splits``)."""
    context = ReferenceContext(
        noisy_labels=noisy, clean_labels=spec.train_y, warmup=lambda pool: pool_warmup(cfg, spec, noisy, pool, device)
    )
    return make_splits(
        len(spec.train_y),
        reference=reference,
        test_split=cfg.test_split,
        holdout_size=cfg.holdout_size,
        seed=int(cfg.split_seed),
        context=context,
        official_test_size=None if spec.test_y is None else len(spec.test_y),
        train_subset=cfg.get("train_subset"),
    )


def build_data(cfg: DictConfig, device: torch.device):
    """Load the dataset, inject noise on the full training split, carve out reference and test sets, then build
    the batch source; returns (source, info).

    A clean reference (``reference=clean_val``) is the dataset's official validation split when it has one
    (paper Sec. 4.1); otherwise it is drawn from the training images by ``data.splits.make_splits``.
    """
    spec = source_spec(cfg)
    seed = int(cfg.split_seed)
    clean = spec.train_y
    noisy = instantiate(cfg.noise).apply(
        clean, num_classes=spec.num_classes, dataset=spec.name, data_dir=str(cfg.data_dir), seed=int(cfg.noise_seed)
    )
    reference = instantiate(cfg.reference)
    official = spec.reference_y is not None and reference.label_source == "clean"
    _check_clean_labels(spec, cfg, reference, official)
    splits = _splits(cfg, spec, noisy, _OfficialReference() if official else reference, device)
    if official:
        ref, ref_name = _official_reference(spec, reference, seed), spec.reference_name
    else:
        ref_labels = clean if reference.label_source == "clean" else noisy
        ref = Part("train", splits.reference, ref_labels[splits.reference])
        ref_name = f"{len(splits.reference)} training samples ({reference.label_source} labels)"
    if splits.holdout_test is not None:
        test = Part("train", splits.holdout_test, clean[splits.holdout_test])
        test_name = f"{len(splits.holdout_test)} held-out training samples (clean labels)"
    else:
        test, test_name = Part("test", np.arange(len(spec.test_y)), spec.test_y), spec.test_name
    tr = splits.train
    keep = reference.eval_rows(len(ref.rows), seed)  # the images DAS's per-epoch mean reads
    evaluated = Part(ref.split, ref.rows[keep], ref.labels[keep])
    data = spec.make_source(Part("train", tr, clean[tr]), noisy[tr], evaluated, test, device)
    info = {
        "dataset_source": spec.source,
        "num_classes": spec.num_classes,
        "input_shape": tuple(spec.input_shape),
        "n_train": len(tr),
        "n_reference": len(ref.rows),
        "n_reference_eval": len(evaluated.rows),
        "n_test": len(test.rows),
        "test_split": cfg.test_split,
        "test_set": test_name,
        "reference_set": ref_name,
        "noise_rate": float(np.mean(noisy[tr] != clean[tr])) if spec.labels_are_clean else float("nan"),
        "reference_noise_rate": _reference_noise_rate(spec, ref, clean),
        "reference": reference.describe(),
        "reference_disjoint": bool(reference.disjoint),
    }
    return data, info


def pool_warmup(cfg: DictConfig, spec: SourceSpec, noisy: np.ndarray, pool: np.ndarray, device: torch.device):
    """Warm-up record of a fresh model trained on ``pool`` (noisy labels), for pseudo-clean reference selectors.

    Seeded by ``split_seed``: like every split, the reference set is the same whatever the training seed.
    """
    pool = np.sort(pool)
    empty = Part("train", pool[:0], spec.train_y[pool[:0]])
    data = spec.make_source(Part("train", pool, spec.train_y[pool]), noisy[pool], empty, empty, device)
    return run_warmup(
        cfg,
        data,
        num_classes=spec.num_classes,
        input_shape=tuple(spec.input_shape),
        device=device,
        cache_key_extra={"pool": pool},
        seed=int(cfg.split_seed),
    )


def _reference_noise_rate(spec: SourceSpec, ref: Part, clean: np.ndarray) -> float:
    """Share of wrong labels in the whole reference set: 0 for an official clean split, NaN where the truth is
    unknown."""
    if ref.split == "reference":
        return 0.0
    if not spec.labels_are_clean or not len(ref.rows):
        return float("nan")
    return float(np.mean(ref.labels != clean[ref.rows]))
