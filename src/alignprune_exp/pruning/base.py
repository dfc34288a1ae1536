"""The Policy contract and the rules InfoBatch-style policies share (annealing, below-mean set)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch

from alignprune_exp.core.errors import ConfigError


def is_annealing(epoch: int, delta: float, progress: float | None = None, num_epochs: int | None = None) -> bool:
    """Whether an epoch belongs to the final full-data (annealing) phase.

    With ``progress`` (fraction of the forward-pass budget spent): annealing iff progress >= delta.
    Otherwise with ``num_epochs``: InfoBatch's rule, annealing iff epoch + 1 > num_epochs * delta
    (0-based epoch; its sampler counts epochs from 1; 10 epochs, delta 0.875: epochs 0-7 prune,
    8-9 anneal; 200 epochs: the last 25 anneal). With neither: never.
    """
    if progress is not None:
        return float(progress) >= delta
    if num_epochs is not None:
        return epoch + 1 > num_epochs * delta
    return False


def is_annealing_by_epochs(epoch: int, delta: float, progress: float, budget_epochs: float) -> bool:
    """InfoBatch's epoch rule over the epochs a budget-matched run will actually train.

    A pruned run's epoch count T is known only at its end, but annealing trains on full data, so the budget
    left, R = budget_epochs x (1 - progress) full-data epochs, is exactly the number of epochs still to run if
    annealing started now: the run would last epoch + R epochs. The rule anneals iff
    epoch >= delta x (epoch + R), i.e. R <= (1 - delta) / delta x epoch (0-based ``epoch`` = epochs done),
    so the annealing epochs are the last (1 - delta) of the epochs the run trains, within one epoch (the
    last, cut epoch counts as one). Once true it stays true (each annealing epoch spends one epoch of R).
    Unpruned (R = T - epoch) it anneals from epoch delta x T on: InfoBatch's ``epoch + 1 > delta x T``
    wherever delta x T is whole (200 epochs: the last 25), one epoch later otherwise.
    """
    remaining = float(budget_epochs) * max(0.0, 1.0 - float(progress))
    return epoch >= delta * (epoch + remaining) - 1e-9


def floor_count(fraction: float, n: int) -> int:
    """floor(fraction * n), immune to float representation error ((1 - 0.9) * 10 -> 1, not 0)."""
    return math.floor(fraction * n + 1e-6)


def below_mean(scores: torch.Tensor) -> torch.Tensor:
    """Bool mask of samples strictly below the mean score over all samples (InfoBatch's D1)."""
    scores64 = scores.double()
    return scores64 < scores64.mean()


def check_unit_interval(name: str, value: float, closed_right: bool = True) -> float:
    """``value`` as a float, or ConfigError if outside [0, 1] (or [0, 1) when not closed_right)."""
    value = float(value)
    if not (0.0 <= value <= 1.0) or (not closed_right and value == 1.0):
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ConfigError(f"{name} must be in {interval}, got {value}")
    return value


class Policy(ABC):
    """Chooses each epoch which samples train and with what loss weight; knows nothing of models.

    Each policy owns a CPU ``torch.Generator`` seeded from ``seed``; random draws happen on CPU and
    move to the scores' device. ``stats`` is always a dict: empty before the first ``select``, then
    ``kept_fraction``, ``below_mean_fraction`` and ``annealing`` (plus policy-specific keys) for logging.

    Capabilities are declared here with their defaults and overridden by the subclasses that have them;
    the trainer and pipeline read them as plain attributes (never probe with hasattr/getattr):

    - ``selects_in_batch``: the trainer draws batches of ``draw_batch_size`` samples and trains on the
      positions ``select_in_batch`` returns (DivBS).
    - ``draw_batch_size``: size of the drawn batches (None: the trainer's ``batch_size``).
    - ``scores_unselected``: samples left out this epoch get a no-grad forward so the scorer keeps
      observing them (IES).
    - ``needs_warmup``: ``prepare(record)`` must run, with a cached warm-up record, before ``select``
      (static policies).
    - ``warmup_protocol``: which cached run that record comes from: ``"scoring"`` (the short static
      warm-up) or ``"dynamics"`` (the full-length run).
    - ``anneal_by``: ``"budget"`` or ``"epochs"``, the annealing rule (see ``_init_annealing``).

    Args:
        num_samples: size of the training set.
        seed: seed of the policy's private generator.
    """

    selects_in_batch: bool = False
    draw_batch_size: int | None = None
    scores_unselected: bool = False
    needs_warmup: bool = False
    warmup_protocol: str = "scoring"
    anneal_by: str = "budget"

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        if int(num_samples) < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}: check the dataset size")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.stats: dict[str, Any] = {}

    @abstractmethod
    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's training set.

        Returns:
            (indices: int64 sorted ascending, on scores.device; weights: float32 [num_samples]
            on scores.device, 1.0 where not rescaled).
        """

    def select_in_batch(
        self, feats: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor:
        """Positions (sorted int64) of a drawn batch's samples that train; only where ``selects_in_batch``.

        Args:
            feats: [B, d] penultimate features from a no-grad forward.
            logits: [B, C] logits of the same forward.
            y: [B] training (noisy) labels.
            idx: [B] dataset indices.
        """
        raise NotImplementedError(
            f"{type(self).__name__} selects per epoch, not inside batches (selects_in_batch is False): "
            "the trainer calls select_in_batch only on policies that declare selects_in_batch = True"
        )

    def prepare(self, record) -> None:
        """Build the policy's selection from a cached warm-up record (the pipeline calls it where ``needs_warmup``).

        Static policies implement it (``StaticPolicy.prepare``); dynamic ones select from live scores.
        """
        raise NotImplementedError(
            f"{type(self).__name__} takes no warm-up record: prepare(record) belongs to static policies"
        )

    def _init_annealing(
        self,
        delta: float,
        num_epochs: int | None,
        anneal_by: str = "budget",
        budget_fraction: float | None = None,
    ) -> None:
        """Validate and keep the annealing settings InfoBatch-style policies share (see ``is_annealing``).

        ``anneal_by="epochs"`` ignores where delta of the budget is and anneals by InfoBatch's epoch rule: with
        ``budget_fraction`` (the run's budget, 1 - ratio, as a fraction of ``num_epochs`` full-data epochs)
        over the epochs the run will train (``is_annealing_by_epochs``); without it, or when ``select`` gets
        no ``progress``, over ``num_epochs`` itself (right only for a run that trains exactly that many epochs).
        """
        self.delta = check_unit_interval("delta", delta)
        if num_epochs is not None and int(num_epochs) < 1:
            raise ConfigError(f"num_epochs must be >= 1, got {num_epochs}")
        if anneal_by not in ("budget", "epochs"):
            raise ConfigError(f"anneal_by must be 'budget' or 'epochs', got {anneal_by!r}")
        if anneal_by == "epochs" and num_epochs is None:
            raise ConfigError("anneal_by=epochs needs num_epochs: set pruner.policy.num_epochs=${epochs}")
        if budget_fraction is not None and not 0.0 < float(budget_fraction) <= 1.0:
            raise ConfigError(f"budget_fraction must be in (0, 1] (1 - ratio), got {budget_fraction}")
        self.num_epochs = None if num_epochs is None else int(num_epochs)
        self.budget_fraction = None if budget_fraction is None else float(budget_fraction)
        self.anneal_by = anneal_by

    def annealing(self, epoch: int, progress: float | None) -> bool:
        """Whether this epoch is in the final full-data phase."""
        if self.anneal_by == "epochs":
            if progress is not None and self.budget_fraction is not None:
                return is_annealing_by_epochs(epoch, self.delta, progress, self.budget_fraction * self.num_epochs)
            progress = None
        return is_annealing(epoch, self.delta, progress, self.num_epochs)

    @property
    def last_pruned_fraction(self) -> float:
        """Fraction of samples left out by the last ``select`` (0.0 before any)."""
        return 1.0 - float(self.stats.get("kept_fraction", 1.0))

    def _check_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Validate a [num_samples] score vector; NaN scores mean an upstream bug."""
        if scores.shape != (self.num_samples,):
            raise ValueError(f"scores must have shape ({self.num_samples},), got {tuple(scores.shape)}")
        if torch.isnan(scores).any():
            raise ValueError("scores contain NaN: the scorer produced an invalid value (a bug upstream)")
        return scores.detach()

    def _finish(
        self, indices: torch.Tensor, weights: torch.Tensor, below: int, annealing: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Record ``stats`` for this selection and return it."""
        self.stats = {
            "kept_fraction": indices.numel() / self.num_samples,
            "below_mean_fraction": below / self.num_samples,
            "annealing": bool(annealing),
        }
        return indices, weights

    def _full(self, scores: torch.Tensor, annealing: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """All samples with weight 1 (epoch 0, annealing, or full-data training)."""
        indices = torch.arange(self.num_samples, device=scores.device)
        weights = torch.ones(self.num_samples, dtype=torch.float32, device=scores.device)
        below = int(below_mean(scores).sum())
        return self._finish(indices, weights, below, annealing)

    def state_dict(self) -> dict[str, Any]:
        """Generator state and last stats (tensors and primitives only)."""
        return {
            "num_samples": self.num_samples,
            "generator": self.generator.get_state(),
            "stats": dict(self.stats),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore exactly, so the next ``select`` repeats the draw the saved policy would make."""
        if int(sd["num_samples"]) != self.num_samples:
            raise ValueError(f"state is for {sd['num_samples']} samples but this policy has {self.num_samples}")
        self.generator.set_state(sd["generator"].cpu())
        self.stats = dict(sd["stats"])

    def to(self, device: torch.device | str) -> Policy:
        """No device state (the generator stays on CPU); returns self."""
        return self
