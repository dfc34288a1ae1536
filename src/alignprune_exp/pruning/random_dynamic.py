"""Dynamic Random: a fresh uniform subset every epoch, sized like InfoBatch's (a baseline)."""

from __future__ import annotations

import math

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.base import (
    Policy,
    below_mean,
    check_unit_interval,
    floor_count,
)


class RandomDynamic(Policy):
    """Each pruning epoch trains a uniformly random subset, weights 1 (uniform is unbiased).

    Subset size: with ``keep_fraction`` None, exactly InfoBatch's kept count for the same scores
    (N - |D1| + floor((1 - prune_prob) * |D1|), D1 = below-mean samples) — the scores only count,
    never choose; otherwise round(keep_fraction * N), at least 1. Same annealing rule as InfoBatch.

    Args:
        num_samples: size of the training set.
        prune_prob: InfoBatch's r used to size the subset, in [0, 1].
        delta: fraction of the run after which annealing (full data) starts.
        keep_fraction: fixed kept fraction in (0, 1] instead of InfoBatch-matched sizing.
        num_epochs: epoch count for the annealing rule when ``select`` gets no ``progress``.
        seed: seed of the private generator drawing the subsets.
    """

    def __init__(
        self,
        num_samples: int,
        prune_prob: float = 0.5,
        delta: float = 0.875,
        keep_fraction: float | None = None,
        num_epochs: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(num_samples, seed)
        self.prune_prob = check_unit_interval("prune_prob", prune_prob)
        self._init_annealing(delta, num_epochs)
        if keep_fraction is not None and not 0.0 < float(keep_fraction) <= 1.0:
            raise ConfigError(f"keep_fraction must be in (0, 1] or null, got {keep_fraction}")
        self.keep_fraction = None if keep_fraction is None else float(keep_fraction)

    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sorted uniform random subset of indices and all-one weights."""
        scores = self._check_scores(scores)
        if self.annealing(epoch, progress):
            return self._full(scores, annealing=True)
        n_low = int(below_mean(scores).sum())
        if self.keep_fraction is None:
            size = self.num_samples - n_low + floor_count(1.0 - self.prune_prob, n_low)
        else:
            size = max(1, math.floor(self.keep_fraction * self.num_samples + 0.5))
        pick = torch.randperm(self.num_samples, generator=self.generator)[:size]
        indices = torch.sort(pick).values.to(scores.device)
        weights = torch.ones(self.num_samples, dtype=torch.float32, device=scores.device)
        return self._finish(indices, weights, n_low, annealing=False)
