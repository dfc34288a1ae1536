"""EL2N (Paul et al. 2021); spec static_baselines §5."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static.base import StaticPolicy, round_half_up, top_k


def el2n_scores(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """|| softmax(z) - onehot(y) ||_2 per sample."""
    return (logits.float().softmax(1) - F.one_hot(labels, logits.shape[1]).float()).norm(dim=1)


class EL2N(StaticPolicy):
    """Keep the HIGHEST error norm of the warm-up model (one run).

    Args:
        offset: fraction of N to skip at the hardest end before keeping B (data_diet's offset variant,
            recommended under label noise); 0 = plain EL2N. Not combinable with ``class_balanced``.
    """

    keep = "high"

    def __init__(
        self, num_samples: int, keep_fraction: float, class_balanced: bool = False, seed: int = 0, offset: float = 0.0
    ):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        if not 0.0 <= float(offset) < 1.0:
            raise ConfigError(f"pruner.policy.offset={offset} must be in [0, 1)")
        if offset and class_balanced:
            raise ConfigError("pruner.policy.offset > 0 works on the global ranking: set class_balanced=false")
        self.offset = float(offset)

    def score(self, record) -> torch.Tensor:
        return el2n_scores(record.logits, record.labels)

    def rule(self, scores: torch.Tensor, budget: int) -> torch.Tensor:
        skip = min(round_half_up(self.offset * len(scores)), len(scores) - budget)
        return top_k(scores, skip + budget, "high")[skip:]
