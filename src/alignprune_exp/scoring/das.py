"""Dynamic Alignment Score (AlignPrune Sec. 3.2, Eqs. 3-5): loss trajectory vs reference."""

from __future__ import annotations

from typing import Any

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.scoring.base import Scorer, load_tensor

RHOS = ("pearson", "cosine")
COLD_STARTS = ("loss", "neutral")
BANK_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def das_scores(
    losses: torch.Tensor,
    ref_losses: torch.Tensor,
    mask: torch.Tensor | None = None,
    rho: str = "pearson",
    min_observations: int = 3,
) -> torch.Tensor:
    """Row-wise correlation of loss trajectories with the reference trajectory (Eq. 5).

    Each row is compared on its observed entries only. A row with fewer than ``min_observations``
    usable entries, or zero spread (Pearson: zero variance in either vector; cosine: zero norm),
    scores 0.0, meaning "no evidence of alignment". Non-finite entries count as unobserved, so the
    result is never NaN/inf. Pearson uses the centred two-pass form (means first), which stays
    accurate for tiny losses with tiny variance.

    Args:
        losses: [n, T] per-sample loss trajectories.
        ref_losses: [T] reference trajectory shared by all rows, or [n, T] one per row.
        mask: [n, T] bool, True where observed; None = all observed.
        rho: "pearson" (centred) or "cosine" (raw vectors).
        min_observations: fewest observed entries for a non-zero score (>= 2).

    Returns:
        [n] scores in [-1, 1], float64 if either input is float64 else float32.
    """
    if rho not in RHOS:
        raise ConfigError(f"unknown rho {rho!r}: use one of {', '.join(RHOS)}")
    if int(min_observations) < 2:
        raise ConfigError(f"min_observations must be >= 2, got {min_observations}")
    if losses.dim() != 2:
        raise ValueError(f"losses must be [n, T], got shape {tuple(losses.shape)}")
    dtype = torch.float64 if torch.float64 in (losses.dtype, ref_losses.dtype) else torch.float32
    x = losses.to(dtype)
    y = ref_losses.to(x.device, dtype)
    if y.dim() == 1:
        y = y.unsqueeze(0)
    if y.shape[-1] != x.shape[1] or y.shape[0] not in (1, x.shape[0]) or y.dim() != 2:
        raise ValueError(
            f"ref_losses must be [T] or [n, T] matching losses {tuple(x.shape)}, got {tuple(ref_losses.shape)}"
        )
    y = y.expand_as(x)
    valid = torch.isfinite(x) & torch.isfinite(y)
    if mask is not None:
        valid &= mask.to(x.device, torch.bool)
    zero = torch.zeros((), dtype=dtype, device=x.device)
    x = torch.where(valid, x, zero)
    y = torch.where(valid, y, zero)
    w = valid.to(dtype)
    count = w.sum(dim=1)
    ok = count >= min_observations
    if rho == "pearson":
        # Centring a constant row leaves residues of a few ulps of its magnitude: a row counts as
        # constant unless its centred sum of squares beats that rounding noise.
        noise_x = 16 * torch.finfo(dtype).eps * x.abs().amax(dim=1)
        noise_y = 16 * torch.finfo(dtype).eps * y.abs().amax(dim=1)
        x = (x - (x.sum(dim=1) / count.clamp(min=1)).unsqueeze(1)) * w
        y = (y - (y.sum(dim=1) / count.clamp(min=1)).unsqueeze(1)) * w
    sxy = (x * y).sum(dim=1)
    sxx = (x * x).sum(dim=1)
    syy = (y * y).sum(dim=1)
    if rho == "pearson":
        ok &= (sxx > count * noise_x * noise_x) & (syy > count * noise_y * noise_y)
    ok &= (sxx > 0) & (syy > 0)
    denom = torch.where(ok, sxx.sqrt() * syy.sqrt(), torch.ones((), dtype=dtype, device=x.device))
    return torch.where(ok, sxy / denom, zero).clamp(-1.0, 1.0)


class DASScorer(Scorer):
    """AlignPrune's score: DAS over a memory bank of each sample's last ``window`` observed losses.

    Paper Sec. 3.2-3.3 and Algorithm 1: DAS_i = rho(v_i, v_ref), v_i the sample's recent losses
    (Eq. 3), v_ref the reference set's mean loss at the same epochs (Eq. 4). A sample pruned in an
    epoch has no entry for it: its trajectory skips that epoch and nothing is invented, and the
    reference is read at exactly the epochs the sample was observed. Too-short or constant
    trajectories score 0.0 (neutral: no evidence of alignment). Policies prune low scores, so
    anti-aligned (noisy-like) samples go first.

    Args:
        num_samples: size of the training set.
        window: observations kept per sample (the paper's N; 25 by default, 5 for Clothing-1M);
            None = an expanding window, every observation since the first epoch (the bank grows as
            needed: n x epochs x 6 bytes in float32, e.g. 0.3 GB for 50k samples over 1000 epochs).
        rho: "pearson" (paper default) or "cosine" (ablation, Fig. 2c).
        dtype: bank precision, "float32" or "float16" (halves memory for millions of samples).
        min_observations: fewest observations (with a reference value) for a non-zero score;
            None = min(3, window), so any window >= 2 works (Table G's N = 2).
        cold_start: what ranks samples before DAS exists. ``loss`` (default): while fewer than
            ``cold_start_fraction`` of the samples have ``min_observations`` points, the whole epoch is
            ranked by each sample's last observed loss, exactly as InfoBatch; from then on by DAS (samples
            still short score 0, neutral). ``neutral``: DAS from the start, i.e. 0 for everyone until
            trajectories fill, so nothing is below the mean and InfoBatch trains on full data (the earlier
            behaviour, harmless on 200 epochs, but on Clothing-1M's 10 epochs at 70% it spends the whole
            budget before DAS exists).
        cold_start_fraction: share of samples that must have enough points for DAS to take over (0.5).

    Why a whole-epoch switch and not a per-sample mix: a loss (0 to ~10, low = easy) and a correlation
    (-1 to 1, low = anti-aligned) have no common scale, and InfoBatch and SeTa rank one score vector
    against its own mean or quantiles; any map of losses into [-1, 1] would set by fiat how many
    loss-ranked samples fall below the DAS mean. One score family per epoch keeps each ranking the
    method's own; once most samples have a trajectory the few short ones are the neutral 0 as before.
    """

    needs_reference = True

    def __init__(
        self,
        num_samples: int,
        window: int | None = 25,
        rho: str = "pearson",
        dtype: str = "float32",
        min_observations: int | None = None,
        cold_start: str = "loss",
        cold_start_fraction: float = 0.5,
    ) -> None:
        super().__init__(num_samples)
        if cold_start not in COLD_STARTS:
            raise ConfigError(f"pruner.scorer.cold_start={cold_start!r} is not one of: {', '.join(COLD_STARTS)}")
        if not 0.0 < float(cold_start_fraction) <= 1.0:
            raise ConfigError(f"pruner.scorer.cold_start_fraction={cold_start_fraction} must be in (0, 1]")
        self.cold_start, self.cold_start_fraction = cold_start, float(cold_start_fraction)
        if window is not None and int(window) < 2:
            raise ConfigError(f"window must be >= 2 epochs, got {window}")
        if rho not in RHOS:
            raise ConfigError(f"unknown rho {rho!r}: use one of {', '.join(RHOS)}")
        if dtype not in BANK_DTYPES:
            raise ConfigError(f"unknown bank dtype {dtype!r}: use one of {', '.join(BANK_DTYPES)}")
        if min_observations is None:
            min_observations = 3 if window is None else min(3, int(window))
        if int(min_observations) < 2 or (window is not None and int(min_observations) > int(window)):
            raise ConfigError(f"min_observations must be in [2, window={window}], got {min_observations}")
        self.window, self.rho, self.dtype = (None if window is None else int(window)), rho, dtype
        self.min_observations = int(min_observations)
        capacity = 8 if window is None else self.window
        self._losses = torch.zeros(self.num_samples, capacity, dtype=BANK_DTYPES[dtype])
        self._epochs = torch.full((self.num_samples, capacity), -1, dtype=torch.int16)
        self._count = torch.zeros(self.num_samples, dtype=torch.int64)
        self._ref = torch.zeros(0)  # reference mean loss per epoch, NaN where not observed
        self._cache: torch.Tensor | None = None

    def _grow_ref(self, length: int) -> None:
        """Extend the reference history with NaN up to ``length`` epochs."""
        if length > self._ref.numel():
            pad = torch.full((length - self._ref.numel(),), float("nan"), device=self.device)
            self._ref = torch.cat([self._ref, pad])

    def _update(self, indices: torch.Tensor, losses: torch.Tensor, epoch: int) -> None:
        """Write each loss into its sample's ring buffer; a repeat in the same epoch overwrites."""
        if epoch > torch.iinfo(torch.int16).max:
            raise ValueError(f"epoch {epoch} exceeds the bank's int16 epoch range")
        count = self._count[indices]
        if self.window is None and len(count):
            self._grow_bank(int(count.max()) + 1)
        capacity = self._losses.shape[1]
        last_slot = (count - 1).remainder(capacity)
        same_epoch = (count > 0) & (self._epochs[indices, last_slot] == epoch)
        slot = torch.where(same_epoch, last_slot, count.remainder(capacity))
        finfo = torch.finfo(self._losses.dtype)
        self._losses[indices, slot] = losses.clamp(finfo.min, finfo.max).to(self._losses.dtype)
        self._epochs[indices, slot] = epoch
        self._count[indices] = count + (~same_epoch).to(torch.int64)
        self._grow_ref(epoch + 1)
        self._cache = None

    def _grow_bank(self, needed: int) -> None:
        """Expanding window: widen the bank (at least doubling) so ``needed`` slots exist; empty slots are -1."""
        capacity = self._losses.shape[1]
        if needed > capacity:
            extra = max(needed, 2 * capacity) - capacity
            self._losses = torch.cat([self._losses, self._losses.new_zeros(self.num_samples, extra)], dim=1)
            self._epochs = torch.cat([self._epochs, self._epochs.new_full((self.num_samples, extra), -1)], dim=1)

    def observe_reference(self, epoch: int, mean_loss: float) -> None:
        """Record the reference set's mean loss at ``epoch`` (Eq. 4)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._grow_ref(int(epoch) + 1)
        self._ref[int(epoch)] = float(mean_loss)
        self._cache = None

    def ready_fraction(self) -> float:
        """Share of samples with at least ``min_observations`` observations that have a reference value."""
        if not self._ref.numel():
            return 0.0
        with_ref = (self._epochs >= 0) & torch.isfinite(self._ref[self._epochs.clamp(min=0).long()])
        return (with_ref.sum(1) >= self.min_observations).float().mean().item()

    @property
    def cold(self) -> bool:
        """True while the cold-start rule ranks by the last loss instead of DAS."""
        return self.cold_start == "loss" and self.ready_fraction() < self.cold_start_fraction

    @property
    def ranks_by_cold_start(self) -> bool:
        """The Scorer contract's flag: True while ``cold`` (``scores()`` is the last loss, not DAS)."""
        return self.cold

    def scores(self) -> torch.Tensor:
        """DAS per sample, float32 [n] in [-1, 1] (the last loss while ``cold``); cached until the next observation."""
        if self._cache is None and self.cold:
            self._cache = self._last_loss.clone()
        if self._cache is None:
            # Pearson and cosine are invariant to permuting both vectors together, so the
            # ring buffer's slot order (not time order) is fine.
            stored = self._epochs >= 0
            ref_at = self._ref[self._epochs.clamp(min=0).long()] if self._ref.numel() else None
            if ref_at is None:
                self._cache = torch.zeros(self.num_samples, device=self.device)
            else:
                self._cache = das_scores(self._losses.float(), ref_at, stored, self.rho, self.min_observations)
        return self._cache

    def trajectories(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(bank losses [n, slots] float32, epochs [n, slots] int64, -1 = empty), slot order; slots = window."""
        return self._losses.float(), self._epochs.long()

    def state_dict(self) -> dict[str, Any]:
        """Bank, counts and reference history, plus the configuration they depend on."""
        sd = super().state_dict()
        sd.update(
            window=self.window,
            rho=self.rho,
            dtype=self.dtype,
            min_observations=self.min_observations,
            cold_start=self.cold_start,
            cold_start_fraction=self.cold_start_fraction,
            losses=self._losses.clone(),
            epochs=self._epochs.clone(),
            count=self._count.clone(),
            ref=self._ref.clone(),
        )
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore exactly; the bank's window and dtype must match this scorer's."""
        if (sd["window"], sd["dtype"]) != (self.window, self.dtype):
            raise ValueError(
                f"state has window={sd['window']}, dtype={sd['dtype']} but this scorer has "
                f"window={self.window}, dtype={self.dtype}"
            )
        super().load_state_dict(sd)
        if self.window is None:  # an expanding bank: take the saved width
            self._grow_bank(int(sd["losses"].shape[1]))
        self._losses = load_tensor(sd, "losses", self._losses)
        self._epochs = load_tensor(sd, "epochs", self._epochs)
        self._count = load_tensor(sd, "count", self._count)
        ref = sd["ref"]
        if not isinstance(ref, torch.Tensor) or ref.dtype != torch.float32 or ref.dim() != 1:
            raise ValueError("state_dict['ref'] should be a 1-D float32 tensor")
        self._ref = ref.to(self.device).clone()
        self.rho, self.min_observations = sd["rho"], int(sd["min_observations"])
        self.cold_start = sd.get("cold_start", "neutral")
        self.cold_start_fraction = float(sd.get("cold_start_fraction", 0.5))
        self._cache = None

    def to(self, device: torch.device | str) -> DASScorer:
        """Move bank, counts and reference history to ``device``; returns self."""
        super().to(device)
        self._losses, self._epochs = self._losses.to(device), self._epochs.to(device)
        self._count, self._ref = self._count.to(device), self._ref.to(device)
        self._cache = None
        return self
