"""InfoBatch's score: the last observed per-sample loss."""

from __future__ import annotations

import torch

from alignprune_exp.scoring.base import Scorer


class LossScorer(Scorer):
    """Score = last observed training loss, overwritten (no EMA), as InfoBatch (Qin et al., 2024).

    Samples not trained in an epoch keep their stale score. All scores start at ``init_value``, so
    nothing is below the mean at epoch 0 and the first epoch trains on the full set.

    Args:
        num_samples: size of the training set.
        init_value: score of a sample never observed (InfoBatch's plug-and-play default 3.0).
    """

    def __init__(self, num_samples: int, init_value: float = 3.0) -> None:
        super().__init__(num_samples, unobserved_loss=init_value)
        self.init_value = float(init_value)

    def scores(self) -> torch.Tensor:
        """Last observed loss per sample (``init_value`` where never observed), float32 [n]."""
        return self._last_loss.clone()
