"""The static-coreset contract: score every sample once from a warm-up record, keep a fixed subset forever.

Spec static_baselines.md: "keep HIGH" sorts descending and keeps the first B = round(f * N); "keep LOW"
ascending; "class-balanced" applies the rule inside each noisy-label class with budget round(f * n_c).
The subset then trains for the run's whole schedule; with a kept fraction f = 1 - ratio it spends exactly
the forward-pass budget of a dynamic run at the same ratio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.base import Policy

log = logging.getLogger("alignprune")


def round_half_up(x: float) -> int:
    """round(x) with halves going up (Python's round sends 2.5 to 2), immune to float error."""
    return math.floor(x + 0.5 + 1e-9)


def top_k(scores: torch.Tensor, k: int, keep: str) -> torch.Tensor:
    """Indices of the ``k`` highest (``keep="high"``) or lowest (``"low"``) scores; ties go to the lower index."""
    if keep not in ("high", "low"):
        raise ConfigError(f"keep={keep!r} is not one of: high, low")
    order = torch.sort(scores.double(), descending=keep == "high", stable=True).indices
    return order[:k]


def class_budgets(labels: torch.Tensor, fraction: float, num_classes: int | None = None) -> torch.Tensor:
    """round(f * n_c) per class (spec convention for class-balanced selection)."""
    counts = torch.bincount(labels, minlength=num_classes or 0)
    return torch.tensor([round_half_up(fraction * int(c)) for c in counts.tolist()], dtype=torch.int64)


def per_class(
    scores: torch.Tensor, labels: torch.Tensor, fraction: float, rule: Callable[[torch.Tensor, int], torch.Tensor]
) -> torch.Tensor:
    """``rule(class_scores, budget) -> positions`` applied inside each class with budget round(f * n_c)."""
    picks = []
    for c, b in enumerate(class_budgets(labels, fraction).tolist()):
        members = (labels == c).nonzero().squeeze(1)
        if b > 0:
            picks.append(members[rule(scores[members], b)])
    return torch.cat(picks) if picks else labels.new_zeros(0)


class StaticPolicy(Policy):
    """A fixed subset chosen once, in ``prepare(record)``, from a warm-up record; weights 1 every epoch.

    Subclasses define ``score(record)`` (one value per sample) and the class attribute ``keep``
    (``"high"`` or ``"low"``), or override ``choose`` for a method-specific rule.

    Args:
        num_samples: size of the training set.
        keep_fraction: f in (0, 1], the kept fraction (1 - pruning ratio).
        class_balanced: apply the rule per noisy-label class with budget round(f * n_c).
        seed: seed of the private generator (random tie-breaks and sampling, where a method has them).
    """

    needs_warmup = True  # RandomStatic clears it per instance unless class-balanced
    keep = "high"

    def __init__(self, num_samples: int, keep_fraction: float, class_balanced: bool = False, seed: int = 0):
        super().__init__(num_samples, seed)
        if not 0.0 < float(keep_fraction) <= 1.0:
            raise ConfigError(f"keep_fraction={keep_fraction} must be in (0, 1]: check ratio.value")
        self.keep_fraction = float(keep_fraction)
        self.class_balanced = bool(class_balanced)
        self.subset: torch.Tensor | None = None

    @property
    def budget(self) -> int:
        """B = round(f * N), at least one sample."""
        return max(1, round_half_up(self.keep_fraction * self.num_samples))

    def score(self, record) -> torch.Tensor:
        """One float per sample; the keep rule ranks it."""
        raise NotImplementedError(f"{type(self).__name__} defines neither score() nor choose()")

    def choose(self, record, budget: int | None = None) -> torch.Tensor:
        """Indices of the kept samples: global top-``budget`` by ``keep``, or per class when class-balanced.

        ``budget`` overrides B (callers needing an exact count, e.g. reference selection); the
        class-balanced rule then uses the fraction budget / N per class.
        """
        budget = self.budget if budget is None else int(budget)
        scores = self.score(record)
        if self.class_balanced:
            return per_class(scores, record.labels.to(scores.device), budget / self.num_samples, self.rule)
        return self.rule(scores, budget)

    def rule(self, scores: torch.Tensor, budget: int) -> torch.Tensor:
        """Positions of the ``budget`` kept scores (default: the ``keep`` end of the ranking)."""
        return top_k(scores, budget, self.keep)

    def prepare(self, record) -> None:
        """Compute the fixed subset from the warm-up record (once)."""
        if record is not None and record.num_samples != self.num_samples:
            raise ValueError(f"warm-up record has {record.num_samples} samples, policy {self.num_samples}")
        subset = self.choose(record).reshape(-1).long()
        if subset.numel() == 0 or len(torch.unique(subset)) != subset.numel():
            raise ValueError(f"{type(self).__name__} chose {subset.numel()} indices, not a non-empty set")
        self.subset = torch.sort(subset.cpu()).values
        log.info("%s: fixed subset of %d / %d samples", type(self).__name__, len(self.subset), self.num_samples)

    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed subset (sorted) with weights 1, whatever the scores."""
        scores = self._check_scores(scores)
        if self.subset is None:
            if self.needs_warmup:
                raise RuntimeError(f"{type(self).__name__}.prepare(record) must run before select()")
            self.prepare(None)
        weights = torch.ones(self.num_samples, dtype=torch.float32, device=scores.device)
        return self._finish(self.subset.to(scores.device), weights, 0, annealing=False)

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["subset"] = None if self.subset is None else self.subset.clone()
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        super().load_state_dict(sd)
        self.subset = None if sd.get("subset") is None else sd["subset"].cpu().long().clone()
