"""IES's score: how much each sample's loss curve still bends (mean |second difference| of recent losses)."""

from __future__ import annotations

from typing import Any

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.scoring.base import Scorer, load_tensor


class SecondOrderScorer(Scorer):
    """Score = mean |L_t - 2 L_{t-1} + L_{t-2}| over a sample's last ``ma`` second differences.

    Instance-dependent early stopping (Yuan et al., ICLR 2025; spec ``dynamic_pruning.md`` section 3):
    a sample whose loss curve has flattened (score below a threshold) is "mastered". The bank keeps the
    last ma + 2 observed losses per sample (a ring buffer, n x (ma + 2) float32 plus O(n)); a repeat in
    the same epoch overwrites. A sample with fewer than ``min_observations`` losses scores +inf, so it
    always trains and the score is never NaN. The default min_observations = ma + 3 (6 for ma = 3)
    matches the reference code, which waits for ma + 1 second differences before judging a sample.

    Args:
        num_samples: size of the training set.
        ma: number of recent second differences averaged (the reference code's ``ma``, 3).
        min_observations: fewest observed losses for a finite score, >= ma + 2 (None: ma + 3).
    """

    def __init__(self, num_samples: int, ma: int = 3, min_observations: int | None = None) -> None:
        super().__init__(num_samples)
        if int(ma) < 1:
            raise ConfigError(f"ma must be >= 1 second difference, got {ma}")
        self.ma = int(ma)
        self.history = self.ma + 2
        min_obs = self.ma + 3 if min_observations is None else int(min_observations)
        if min_obs < self.history:
            raise ConfigError(
                f"min_observations must be >= ma + 2 = {self.history} (the losses behind ma second "
                f"differences), got {min_observations}"
            )
        self.min_observations = min_obs
        self._losses = torch.zeros(self.num_samples, self.history)
        self._count = torch.zeros(self.num_samples, dtype=torch.int64)
        self._last_epoch = torch.full((self.num_samples,), -1, dtype=torch.int64)
        self._cache: torch.Tensor | None = None

    def _update(self, indices: torch.Tensor, losses: torch.Tensor, epoch: int) -> None:
        """Append each loss to its sample's ring buffer; a repeat in the same epoch overwrites."""
        count = self._count[indices]
        same_epoch = (count > 0) & (self._last_epoch[indices] == epoch)
        slot = torch.where(same_epoch, count - 1, count).remainder(self.history)
        self._losses[indices, slot] = losses
        self._last_epoch[indices] = epoch
        self._count[indices] = count + (~same_epoch).to(torch.int64)
        self._cache = None

    def recent_losses(self) -> torch.Tensor:
        """[n, ma + 2] the last ma + 2 losses of each sample, oldest first (junk where count < ma + 2)."""
        steps = torch.arange(self.history, device=self.device)
        slots = (self._count.unsqueeze(1) - self.history + steps).remainder(self.history)
        return self._losses.gather(1, slots)

    def scores(self) -> torch.Tensor:
        """Mean |second difference| per sample, float32 [n]; +inf until ``min_observations``."""
        if self._cache is None:
            x = self.recent_losses()
            d2 = x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]
            score = d2.abs().mean(dim=1)
            ready = (self._count >= self.min_observations) & ~torch.isnan(score)
            self._cache = torch.where(ready, score, torch.full_like(score, float("inf")))
        return self._cache

    def state_dict(self) -> dict[str, Any]:
        """Loss ring buffer, counts and last epochs, plus the configuration they depend on."""
        sd = super().state_dict()
        sd.update(
            ma=self.ma,
            min_observations=self.min_observations,
            losses=self._losses.clone(),
            count=self._count.clone(),
            last_epoch=self._last_epoch.clone(),
        )
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore exactly; ``ma`` must match this scorer's."""
        if int(sd["ma"]) != self.ma:
            raise ValueError(f"state has ma={sd['ma']} but this scorer has ma={self.ma}")
        super().load_state_dict(sd)
        self._losses = load_tensor(sd, "losses", self._losses)
        self._count = load_tensor(sd, "count", self._count)
        self._last_epoch = load_tensor(sd, "last_epoch", self._last_epoch)
        self.min_observations = int(sd["min_observations"])
        self._cache = None

    def to(self, device: torch.device | str) -> SecondOrderScorer:
        """Move the bank to ``device``; returns self."""
        super().to(device)
        self._losses, self._count = self._losses.to(device), self._count.to(device)
        self._last_epoch = self._last_epoch.to(device)
        self._cache = None
        return self
