"""Split the training images into the training set, the clean reference set and (optionally) a holdout test set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignprune_exp.core.errors import ConfigError, DataError


@dataclass(frozen=True)
class Splits:
    """Indices into the original training images, each sorted ascending; ``train`` and ``reference`` overlap
    only for a reference with ``disjoint=false`` (the reference images also train, with their noisy labels)."""

    train: np.ndarray
    reference: np.ndarray
    holdout_test: np.ndarray | None


def resolve_count(value: int | float, total: int, name: str) -> int:
    """An int is a count, a float in (0, 1) a fraction of ``total``."""
    if isinstance(value, float) and 0 < value < 1:
        return max(1, round(value * total))
    if float(value) >= 1 and float(value).is_integer():
        return int(value)
    raise ConfigError(f"{name}={value} must be a count >= 1 or a fraction in (0, 1)")


def make_splits(
    num_images: int,
    *,
    reference,
    test_split: str,
    holdout_size: int | float,
    official_test_size: int | None,
    seed: int,
    context=None,
    train_subset: int | float | None = None,
) -> Splits:
    """Draw the holdout test set (``test_split=holdout``), then the training subset and the reference set.

    A reference that trains (``disjoint=false``) is drawn from inside ``train_subset``, so it stays inside what
    trains; its default size is then the test split's scaled by the subset's share of the pool (the same
    reference-to-training ratio as without a subset). A disjoint reference leaves the pool first and the
    subset is drawn from the rest. Either way the subset is the same for every training seed and reference.

    Args:
        num_images: number of images in the official training split.
        reference: a reference selector: ``resolve_size`` maps the test split's size to the set's size and
            ``select(pool, size, context)`` picks that many images out of the (randomly ordered) pool;
            its ``disjoint`` (default true) says whether they leave the training set.
        test_split: ``official`` (use the dataset's test split) or ``holdout``.
        holdout_size: count or fraction of training images held out as test when ``holdout``.
        official_test_size: size of the official test split, or None when the data has none.
        seed: split seed, independent of the training seed so every method sees the same split.
        context: what a selector may need beyond the pool (labels, a warm-up runner), see ``reference.py``.
        train_subset: count or fraction of the training images to train on (None: all of them).
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_images)
    if test_split == "holdout":
        n_test = resolve_count(holdout_size, num_images, "holdout_size")
        if n_test >= num_images:
            raise ConfigError(
                f"holdout_size={holdout_size} holds out {n_test} of the {num_images} training images, "
                "leaving none to train on: lower holdout_size (a count or a fraction such as 0.1)"
            )
        holdout, order = np.sort(order[:n_test]), order[n_test:]
    elif test_split == "official":
        if official_test_size is None:
            raise DataError(
                "this dataset has no official test split on disk (no test_x.npy / test_batch): "
                "run with test_split=holdout to draw a clean test set from the training images"
            )
        n_test, holdout = official_test_size, None
    else:
        raise ConfigError(f"test_split={test_split!r} is not one of: official, holdout")
    inside = train_subset is not None and not reference.disjoint
    if inside:
        subset = subset_indices(np.sort(order), train_subset, seed)
        n_ref = reference.resolve_size(max(1, round(n_test * len(subset) / len(order))))
        pool = order[np.isin(order, subset)]  # the subset, still in the split's random order
    else:
        n_ref, pool = reference.resolve_size(n_test), order
    if n_ref >= len(pool):
        held = f" after the holdout test set of {n_test}" if test_split == "holdout" else ""
        where = f"the training subset of {len(pool)}" if inside else f"{len(pool)} training images{held}"
        raise ConfigError(
            f"reference set of {n_ref} images leaves no other training images in {where}: "
            "lower reference.size / reference.fraction"
            + (" or raise train_subset" if inside else " or holdout_size" if held else "")
        )
    ref = np.asarray(reference.select(pool, n_ref, context), dtype=np.int64)
    rest = np.setdiff1d(pool, ref)
    if len(np.unique(ref)) != n_ref or len(rest) != len(pool) - n_ref:
        raise ValueError(f"{type(reference).__name__}.select must return {n_ref} distinct pool indices")
    train = subset_indices(rest, train_subset, seed) if reference.disjoint else np.sort(pool)
    return Splits(train=train, reference=np.sort(ref), holdout_test=holdout)


def subset_indices(indices: np.ndarray, size: int | float | None, seed: int) -> np.ndarray:
    """A random ``size`` (count or fraction) of ``indices``, sorted; all of them when ``size`` is None.

    Drawn from its own stream of ``seed`` (the split seed), so every method and training seed trains on the same
    images and the reference and test sets are the ones the full training set would have.
    """
    if size is None:
        return indices
    n = resolve_count(size, len(indices), "train_subset")
    if n > len(indices):
        raise ConfigError(f"train_subset={size} exceeds the {len(indices)} training images left after the splits")
    return np.sort(np.random.default_rng([int(seed), 1]).choice(indices, size=n, replace=False))
