"""InfoBatch (Qin et al., ICLR 2024): prune below-mean samples at random, rescale the kept ones."""

from __future__ import annotations

import torch

from alignprune_exp.pruning.base import (
    Policy,
    below_mean,
    check_unit_interval,
    floor_count,
)


class InfoBatch(Policy):
    """Unbiased dynamic pruning (InfoBatch Sec. 3; AlignPrune Sec. 3.3 feeds it DAS, not loss).

    Each pruning epoch: D1 = samples scoring strictly below the mean over all samples; a uniform
    random subset of D1 of size floor((1 - prune_prob) * |D1|) is kept, everything else in D1 is
    pruned, and kept D1 samples get loss weight 1 / (1 - prune_prob) so the expected gradient
    equals the full-data one. Annealing epochs (see ``is_annealing``) train on all samples with
    weight 1; with neither ``progress`` nor ``num_epochs`` known, every epoch prunes. Equal scores
    (epoch 0) leave nothing below the mean, hence full data.

    Two rules of the official ``infobatch`` package are options (the defaults follow the paper's text,
    see docs/paper_recipe.md): ``min_keep=0.1`` keeps at least that fraction of D1 (its
    ``keep_ratio = max(0.1, 1 - r)``, with weights 1 / keep_ratio), and ``anneal_by="epochs"`` anneals the
    last ``1 - delta`` of the epochs the run trains instead of after ``delta`` of the forward-pass budget.
    prune_prob is never clipped (invalid values raise ConfigError) and weights are rebuilt on every call.

    Args:
        num_samples: size of the training set.
        prune_prob: probability r that a below-mean sample is pruned, in [0, 1]; at r = 1 (and
            min_keep 0) no below-mean sample is kept, so no 1 / (1 - r) weight is needed (Fig. 2a's r = 1.0).
        delta: fraction of the run (budget, or epochs) after which annealing starts.
        num_epochs: epoch count for the annealing rule when ``select`` gets no ``progress`` (or always,
            with ``anneal_by="epochs"``).
        rescale: weight kept below-mean samples by 1 / keep fraction; False keeps weights 1.
        seed: seed of the private generator drawing the kept subset.
        min_keep: floor of the kept fraction of D1 (0: none; the official package: 0.1).
        anneal_by: "budget" (progress >= delta) or "epochs" (InfoBatch's epoch rule: the last (1 - delta) of
            the epochs the run trains anneal, see ``is_annealing_by_epochs``).
        budget_fraction: the run's forward-pass budget as a fraction (1 - ratio) of ``num_epochs`` full-data
            epochs; ``anneal_by="epochs"`` needs it to count a budget-matched run's epochs (None: it counts
            ``num_epochs``, which a pruned run outlasts, so annealing would start late or never).
    """

    def __init__(
        self,
        num_samples: int,
        prune_prob: float,
        delta: float,
        num_epochs: int | None = None,
        rescale: bool = True,
        seed: int = 0,
        min_keep: float = 0.0,
        anneal_by: str = "budget",
        budget_fraction: float | None = None,
    ) -> None:
        super().__init__(num_samples, seed)
        self.rescale = bool(rescale)
        self.prune_prob = check_unit_interval("prune_prob", prune_prob)
        self.min_keep = check_unit_interval("min_keep", min_keep)
        self._init_annealing(delta, num_epochs, anneal_by, budget_fraction)

    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training indices (sorted) and per-sample weights [num_samples] for this epoch."""
        scores = self._check_scores(scores)
        if self.annealing(epoch, progress):
            return self._full(scores, annealing=True)
        low = below_mean(scores)
        low_idx = low.nonzero().squeeze(1)
        keep = max(self.min_keep, 1.0 - self.prune_prob)
        n_keep = floor_count(keep, low_idx.numel())
        pick = torch.randperm(low_idx.numel(), generator=self.generator)[:n_keep]
        kept_low = low_idx[pick.to(scores.device)]
        kept = ~low
        kept[kept_low] = True
        weights = torch.ones(self.num_samples, dtype=torch.float32, device=scores.device)
        if self.rescale and kept_low.numel():
            weights[kept_low] = 1.0 / keep
        return self._finish(kept.nonzero().squeeze(1), weights, low_idx.numel(), annealing=False)
