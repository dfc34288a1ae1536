"""Forgetting events (Toneva et al. 2019); spec static_baselines §3."""

from __future__ import annotations

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static.base import StaticPolicy


class Forgetting(StaticPolicy):
    """Keep the samples forgotten most often (learned -> misclassified transitions during the warm-up).

    Events are counted at every training presentation of the warm-up (its weak-view training logits).

    Args:
        class_balanced: per noisy class with budget round(f * n_c) (default: Prune4ReL always balances).
        unlearned: count of samples never classified correctly: ``zero`` (default, DeepCore / Prune4ReL:
            they look unforgettable) or ``max`` (Toneva: the number of warm-up epochs, above any count).
    """

    keep = "high"

    def __init__(
        self,
        num_samples: int,
        keep_fraction: float,
        class_balanced: bool = True,
        seed: int = 0,
        unlearned: str = "zero",
    ):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        if unlearned not in ("zero", "max"):
            raise ConfigError(f"pruner.policy.unlearned={unlearned!r} is not one of: zero, max")
        self.unlearned = unlearned

    def score(self, record) -> torch.Tensor:
        counts = record.forgetting.float()
        if self.unlearned == "max":
            counts = torch.where(record.ever_learned, counts, torch.full_like(counts, float(record.num_epochs)))
        return counts
