"""Margin uncertainty (Coleman et al. 2019); spec static_baselines §2."""

from __future__ import annotations

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static.base import StaticPolicy


def margins(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 softmax probability per sample (label-free)."""
    top2 = logits.float().softmax(1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


class Margin(StaticPolicy):
    """Score p_(1) - p_(2) of the warm-up model.

    Args:
        keep: ``low`` (default: most uncertain, as Prune4ReL runs it) or ``high`` (most confident, what
            DeepCore's unbalanced path does — spec §2 caveat (a)).
    """

    def __init__(
        self, num_samples: int, keep_fraction: float, class_balanced: bool = False, seed: int = 0, keep: str = "low"
    ):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        if keep not in ("low", "high"):
            raise ConfigError(f"pruner.policy.keep={keep!r} is not one of: low, high")
        self.keep = keep

    def score(self, record) -> torch.Tensor:
        return margins(record.logits)
