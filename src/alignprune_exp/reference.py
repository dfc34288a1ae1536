"""Reference-set selection: which held-out images give DAS its clean loss trajectory (paper Sec. 3.2, 4.4.2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass
class ReferenceContext:
    """What a selector may use: labels of all training images and a warm-up runner over a pool of them.

    ``warmup(pool)`` trains a fresh model on the pool's noisy labels (short, cached) and returns its
    record (see ``train/warmup.py``), for selectors that estimate a pseudo-clean set.
    """

    noisy_labels: np.ndarray
    clean_labels: np.ndarray
    warmup: Callable[[np.ndarray], object] | None = None


class CleanValReference:
    """A random clean-labelled subset held out of the training images, never trained on by any pruner.

    Args:
        size: exact number of images; overrides ``fraction``.
        fraction: fraction of the default size (the test split's size, as in the paper), e.g. 0.001
            for Fig. 3's 0.1%; at least one image is kept.
    """

    label_source = "clean"

    def __init__(self, size: int | None = None, fraction: float | None = None):
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


class NoisyTrainReference(CleanValReference):
    """A random subset of the noisy training data with its NOISY labels (Table 5's "Noisy Train-set")."""

    label_source = "noisy"

    def describe(self) -> str:
        return "noisy_train"
