"""IES (Yuan et al., ICLR 2025): instance-dependent early stopping of mastered samples."""

from __future__ import annotations

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.base import Policy, below_mean


class IES(Policy):
    """Trains the samples whose score is >= ``threshold``; the rest are "mastered" this epoch.

    Meant for ``SecondOrderScorer`` (spec ``dynamic_pruning.md`` section 3): a sample leaves training
    when the mean |second difference| of its recent losses falls under the threshold. Excluded samples
    still get a no-grad forward each epoch (``scores_unselected``, counted as selection forward passes),
    so they keep being scored and come back once their loss curve bends again. Fixed threshold, no
    rescaling, no annealing: the run simply trains until the forward-pass budget is spent.

    If every sample is mastered, the epoch trains on all of them (``stats["all_mastered"]`` is True)
    rather than returning an empty set, which would stall the run until the epoch limit.

    Args:
        num_samples: size of the training set.
        threshold: tau; 1e-3 in the reference code for CIFAR-10, 2e-3 for CIFAR-100.
        seed: unused (IES draws nothing), kept for the common policy signature.
    """

    scores_unselected = True

    def __init__(self, num_samples: int, threshold: float = 1e-3, seed: int = 0) -> None:
        super().__init__(num_samples, seed)
        if not float(threshold) >= 0.0:
            raise ConfigError(f"threshold must be >= 0, got {threshold}")
        self.threshold = float(threshold)

    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the samples not mastered (sorted) and all-one weights."""
        scores = self._check_scores(scores)
        keep = scores >= self.threshold
        all_mastered = not bool(keep.any())
        if all_mastered:
            keep = torch.ones_like(keep)
        indices = keep.nonzero().squeeze(1)
        weights = torch.ones(self.num_samples, dtype=torch.float32, device=scores.device)
        finite = scores[torch.isfinite(scores)]
        n_below = int(below_mean(finite).sum()) if finite.numel() else 0
        self._finish(indices, weights, n_below, annealing=False)
        self.stats.update(
            mastered_fraction=float((scores < self.threshold).double().mean()),
            all_mastered=all_mastered,
        )
        return indices, weights
