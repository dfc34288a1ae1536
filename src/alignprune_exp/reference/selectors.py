"""Reference-set selection: which held-out images give DAS its clean loss trajectory (paper Sec. 3.2, 4.4.2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static import Moderate, SmallLoss


@dataclass
class ReferenceContext:
    """What a selector may use: labels of all training images and a warm-up runner over a pool of them.

    ``warmup(pool)`` trains a fresh model on the pool's noisy labels (short, cached) and returns its
    record (see ``pipeline/warmup.py``), for selectors that estimate a pseudo-clean set.
    """

    noisy_labels: np.ndarray
    clean_labels: np.ndarray
    warmup: Callable[[np.ndarray], object] | None = None


class CleanValReference:
    """A random subset of the training images whose CLEAN labels give DAS its reference trajectory.

    Args:
        size: exact number of images; overrides ``fraction``.
        fraction: fraction of the default size (the test split's size, as in the paper), e.g. 0.001
            for Fig. 3's 0.1%; at least one image is kept.
        disjoint: true = the reference images leave the training set (for every pruner); false (the
            config default) = they stay in it with their noisy labels, as the paper samples the reference
            "from the training split" and reports 50k-image Full-training numbers.
        eval_size: evaluate the per-epoch mean loss on a fixed random subset of this many reference images
            (by ``split_seed``) instead of all of them (the paper's definition, None); the whole set is
            still held out of training.
        batch_size: images per batch of the reference pass (None = the whole set per batch on CUDA,
            halved on out-of-memory; the training ``batch_size`` on CPU, where large batches run slower).
    """

    label_source = "clean"

    def __init__(
        self,
        size: int | None = None,
        fraction: float | None = None,
        disjoint: bool = False,
        eval_size: int | None = None,
        batch_size: int | None = None,
    ):
        self.disjoint = bool(disjoint)
        for name, value in (("eval_size", eval_size), ("batch_size", batch_size)):
            if value is not None and int(value) < 1:
                raise ConfigError(f"reference.{name}={value} must be >= 1 (or null)")
        self.eval_size = None if eval_size is None else int(eval_size)
        self.batch_size = None if batch_size is None else int(batch_size)
        if size is not None and int(size) < 1:
            raise ConfigError(f"reference.size={size} must be >= 1 (or null for the test split's size)")
        if fraction is not None and not 0 < float(fraction) <= 1:
            raise ConfigError(f"reference.fraction={fraction} must be in (0, 1] (or null)")
        self.size = None if size is None else int(size)
        self.fraction = None if fraction is None else float(fraction)

    def resolve_size(self, default_size: int) -> int:
        """Number of reference images given the test split's size."""
        if self.size is not None:
            return self.size
        if self.fraction is not None:
            return max(1, round(self.fraction * default_size))
        return default_size

    def select(self, pool: np.ndarray, size: int, context: ReferenceContext | None = None) -> np.ndarray:
        """The first ``size`` images of the randomly ordered pool."""
        return pool[:size]

    def describe(self) -> str:
        """Short description for logs and results."""
        return "clean_val"

    def eval_rows(self, n_reference: int, seed: int) -> np.ndarray:
        """Positions (sorted) of the reference images whose mean loss DAS uses each epoch: all of them, or
        ``eval_size`` drawn once by ``seed`` (the same for every training seed and pruner)."""
        if self.eval_size is None or self.eval_size >= n_reference:
            return np.arange(n_reference)
        return np.sort(np.random.default_rng([int(seed), 7]).permutation(n_reference)[: self.eval_size])


class NoisyTrainReference(CleanValReference):
    """A random subset of the noisy training data with its NOISY labels (Table 5's "Noisy Train-set")."""

    label_source = "noisy"

    def describe(self) -> str:
        return "noisy_train"


class PseudoCleanReference(CleanValReference):
    """A pseudo-clean subset of the noisy training pool, with its NOISY labels (paper Table 5; spec
    static_baselines §1 and §6).

    A short warm-up trains a fresh model on the whole pool (``context.warmup``, cached, seeded by
    ``split_seed``); the static method then keeps ``size`` pool images by its own selection rule at kept
    fraction size / len(pool): ``smalll`` the lowest warm-up losses, ``moderate`` the middle band of the
    distance-to-class-median ranking. With ``disjoint=true`` the chosen images leave the training set.

    Args:
        method: ``smalll`` or ``moderate``.
        size, fraction: as ``CleanValReference``.
    """

    label_source = "noisy"
    METHODS = ("smalll", "moderate")

    def __init__(
        self,
        method: str = "smalll",
        size: int | None = None,
        fraction: float | None = None,
        disjoint: bool = False,
        eval_size: int | None = None,
        batch_size: int | None = None,
    ):
        super().__init__(size=size, fraction=fraction, disjoint=disjoint, eval_size=eval_size, batch_size=batch_size)
        if method not in self.METHODS:
            raise ConfigError(f"reference.method={method!r} is not one of: {', '.join(self.METHODS)}")
        self.method = method

    def select(self, pool: np.ndarray, size: int, context: ReferenceContext | None = None) -> np.ndarray:
        """``size`` pool images chosen by the method from a warm-up on the pool (record rows = sorted pool)."""
        if context is None or context.warmup is None:
            raise ConfigError("a pseudo-clean reference needs a warm-up runner: build the data through the CLI")
        ordered = np.sort(np.asarray(pool))
        record = context.warmup(ordered)
        selector = {"smalll": SmallLoss, "moderate": Moderate}[self.method](
            num_samples=len(ordered), keep_fraction=size / len(ordered)
        )
        picks = selector.choose(record, budget=size).cpu().numpy()
        return ordered[picks]

    def describe(self) -> str:
        return f"pseudo_clean_{self.method}"
