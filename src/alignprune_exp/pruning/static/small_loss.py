"""SmallL (Jiang et al. 2018, MentorNet-style small-loss selection); spec static_baselines §1."""

from __future__ import annotations

import torch

from alignprune_exp.pruning.static.base import StaticPolicy


class SmallLoss(StaticPolicy):
    """Keep the LOWEST warm-up cross-entropy (network logits vs the noisy label, eval view); global by default."""

    keep = "low"

    def score(self, record) -> torch.Tensor:
        return record.losses.float()
