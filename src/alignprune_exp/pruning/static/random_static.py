"""Uniform static baseline: a random fixed subset (spec static_baselines §13, "Uniform")."""

from __future__ import annotations

import torch

from alignprune_exp.pruning.static.base import StaticPolicy


class RandomStatic(StaticPolicy):
    """A uniformly random subset of round(f * N) samples drawn once from the policy's generator.

    Needs no warm-up unless ``class_balanced`` (the warm-up record is then only read for the noisy
    labels, to draw round(f * n_c) per class).
    """

    def __init__(self, num_samples: int, keep_fraction: float, class_balanced: bool = False, seed: int = 0):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        self.needs_warmup = self.class_balanced

    def score(self, record) -> torch.Tensor:
        """A random permutation's ranks: keeping the top B is a uniform draw (per class when balanced)."""
        return torch.randperm(self.num_samples, generator=self.generator).float()
