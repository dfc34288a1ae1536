"""Dyn-Unc, dynamic uncertainty (He et al. CVPR 2024); spec static_baselines §9."""

from __future__ import annotations

import torch

from alignprune_exp.errors import ConfigError
from alignprune_exp.pruning.static.base import StaticPolicy


def windows(probs: torch.Tensor, window: int) -> torch.Tensor:
    """Sliding windows [K, n, J] over a [E, n] probability history, J = min(window, E), K = E - J + 1.

    A warm-up shorter than the window uses its whole history as one window.
    """
    if probs.shape[0] < 2:
        raise ConfigError(f"a {probs.shape[0]}-epoch warm-up has no probability variation: "
                          "set warmup.epochs >= 2 for dyn_unc / dual")
    j = min(int(window), probs.shape[0])
    return probs.float().unfold(0, j, 1)


def dyn_unc_scores(probs: torch.Tensor, window: int = 10) -> torch.Tensor:
    """mean over windows of the (unbiased) std of the given-label probability inside the window."""
    return windows(probs, window).std(dim=-1).mean(0)


class DynUnc(StaticPolicy):
    """Keep the HIGHEST dynamic uncertainty over the warm-up's per-epoch training-time probabilities.

    Args:
        window: J, the sliding-window length in epochs (10).
    """

    keep = "high"

    def __init__(self, num_samples: int, keep_fraction: float, class_balanced: bool = False, seed: int = 0,
                 window: int = 10):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        if int(window) < 2:
            raise ConfigError(f"pruner.policy.window={window} must be >= 2")
        self.window = int(window)

    def score(self, record) -> torch.Tensor:
        return dyn_unc_scores(record.probs, self.window)
