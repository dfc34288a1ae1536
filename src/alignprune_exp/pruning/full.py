"""Full-data training expressed as a policy (the no-pruning baseline)."""

from __future__ import annotations

import torch

from alignprune_exp.pruning.base import Policy


class FullData(Policy):
    """Every sample trains every epoch with weight 1."""

    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All indices, all weights 1."""
        return self._full(self._check_scores(scores), annealing=False)
