"""Synthetic label noise with exact per-class flip counts: symmetric, pair-flip and class-dependent (asym).

Each affected class c gets exactly round(rate * n_c) flipped samples, chosen uniformly at random, so the
realised noise rate equals the requested one up to rounding (the decisions in shared/spec/README.md).
"""

from __future__ import annotations

import numpy as np

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.data.cifar100_meta import CIFAR100_COARSE_OF_FINE

NOISE_KINDS = ("sym", "asym", "pairflip")

# Classic CIFAR-10 map (Patrini et al. 2017): truck->automobile, bird->airplane, deer->horse, cat<->dog.
CIFAR10_ASYM_TARGET: np.ndarray = np.array([0, 1, 0, 5, 7, 3, 6, 7, 8, 1], dtype=np.int64)
CIFAR10_ASYM_TARGET.setflags(write=False)


def make_noisy_labels(
    labels: np.ndarray,
    kind: str,
    rate: float,
    num_classes: int,
    seed: int,
    dataset: str | None = None,
    *,
    coarse_of_fine: np.ndarray | None = None,
) -> np.ndarray:
    """Return a noisy copy of ``labels`` (int64, same length); the input is never modified.

    Args:
        labels: clean integer labels in [0, num_classes).
        kind: "sym" (to a uniformly random other class), "pairflip" (c -> c+1 mod C) or "asym"
            (CIFAR-10 classic map; CIFAR-100 next fine class inside the true super-class, cyclic).
        rate: fraction of each affected class to flip, in [0, 1].
        num_classes: number of classes C.
        seed: seed of the private ``np.random.default_rng``; the global RNG is never touched.
        dataset: "cifar10" or "cifar100", selects the asym map; None infers it from num_classes (10/100).
        coarse_of_fine: CIFAR-100 fine -> coarse map overriding the standard one (asym on cifar100 only).

    Raises:
        ConfigError: unknown kind, rate outside [0, 1], bad labels, or asym on a dataset without a map.
    """
    check_noise_setting(kind, rate)
    if num_classes < 2:
        raise ConfigError(f"label noise needs at least 2 classes, got num_classes={num_classes}")
    y = _check_labels(labels, num_classes)
    if kind == "sym":
        target = None
    elif kind == "pairflip":
        target = (np.arange(num_classes) + 1) % num_classes
    else:
        target = asym_target(num_classes, dataset, coarse_of_fine)
    if rate == 0 or len(y) == 0:
        return y.copy()

    rng = np.random.default_rng(seed)
    affected = None if target is None else target != np.arange(num_classes)
    flip = _exact_per_class_choice(y, float(rate), num_classes, rng, affected)
    noisy = y.copy()
    if target is None:
        noisy[flip] = (y[flip] + rng.integers(1, num_classes, size=int(flip.sum()))) % num_classes
    else:
        noisy[flip] = target[y[flip]]
    return noisy


def asym_target(num_classes: int, dataset: str | None, coarse_of_fine: np.ndarray | None = None) -> np.ndarray:
    """The class each asym-flipped label moves to (identity for classes asym noise leaves alone)."""
    if dataset == "imagenet1k":
        return imagenet_asym_target(num_classes)
    if dataset is None:
        dataset = {10: "cifar10", 100: "cifar100"}.get(num_classes)
    expected = {"cifar10": 10, "cifar100": 100}
    if dataset not in expected:
        raise ConfigError(
            f"asym noise is defined for imagenet1k, cifar10 and cifar100 only (got dataset={dataset!r}, "
            f"num_classes={num_classes}); use pairflip or sym for other datasets"
        )
    if num_classes != expected[dataset]:
        raise ConfigError(f"asym noise for {dataset} needs num_classes={expected[dataset]}, got {num_classes}")
    if dataset == "cifar10":
        return CIFAR10_ASYM_TARGET.copy()
    coarse = CIFAR100_COARSE_OF_FINE if coarse_of_fine is None else np.asarray(coarse_of_fine)
    if coarse.shape != (num_classes,) or not np.issubdtype(coarse.dtype, np.integer):
        raise ConfigError(
            f"coarse_of_fine must be an integer array of shape ({num_classes},), got {coarse.dtype} {coarse.shape}"
        )
    return next_in_superclass(coarse.astype(np.int64))


def imagenet_asym_target(num_classes: int) -> np.ndarray:
    """ImageNet-1K asym noise of Park et al. 2023 (Prune4ReL, ``deepcore/datasets/imagenet.py``): a flipped
    label moves to the next class, c -> (c + 1) mod C; every class is affected."""
    return (np.arange(num_classes, dtype=np.int64) + 1) % num_classes


def next_in_superclass(coarse_of_fine: np.ndarray) -> np.ndarray:
    """Map each fine class to the next fine class (ascending, cyclic) of its own super-class."""
    order = np.lexsort((np.arange(len(coarse_of_fine)), coarse_of_fine))  # fine classes grouped by super-class
    groups = coarse_of_fine[order]
    start = np.r_[True, groups[1:] != groups[:-1]]
    end = np.r_[groups[1:] != groups[:-1], True]
    successor = np.roll(order, -1)
    # The last member of each super-class wraps to the first member of the same super-class.
    successor[end] = order[np.flatnonzero(start)]
    target = np.empty_like(order)
    target[order] = successor
    return target


def _exact_per_class_choice(
    y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator, affected: np.ndarray | None
) -> np.ndarray:
    """Boolean mask choosing exactly round(rate * n_c) uniformly random samples of each affected class."""
    counts = np.bincount(y, minlength=num_classes)
    quota = np.array([round(rate * n) for n in counts.tolist()], dtype=np.int64)
    if affected is not None:
        quota[~affected] = 0
    order = np.lexsort((rng.random(len(y)), y))  # grouped by class, uniformly shuffled within each class
    class_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_in_class = np.arange(len(y)) - class_start[y[order]]
    mask = np.zeros(len(y), dtype=bool)
    mask[order] = rank_in_class < quota[y[order]]
    return mask


def check_noise_setting(kind: str, rate: float) -> None:
    """Raise ConfigError unless ``kind`` is a known noise kind and ``rate`` a number in [0, 1]."""
    if kind not in NOISE_KINDS:
        raise ConfigError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    try:
        valid = 0.0 <= float(rate) <= 1.0  # NaN fails both comparisons
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigError(f"noise rate must be a number in [0, 1], got {rate!r}")


def _check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise DataError(f"labels to corrupt must be a 1-D integer array, got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"labels to corrupt lie in [{y.min()}, {y.max()}] but num_classes={num_classes}")
    return y.astype(np.int64)
