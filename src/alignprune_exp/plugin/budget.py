"""The forward-pass budget: a dynamic run may spend (1 - ratio) x the forward passes of full training."""

from __future__ import annotations

from dataclasses import dataclass

from alignprune_exp.core.errors import ConfigError


@dataclass
class ForwardBudget:
    """Training forward passes allowed and spent; the LR schedule and annealing are functions of ``progress``.

    The paper (Sec. 4.1, after InfoBatch) fixes a dynamic method's pruning ratio by its total forward
    passes rather than by its epochs: the run trains as many epochs as the budget allows and the last
    epoch is cut where the budget ends, so the achieved ratio equals the target up to one sample.
    """

    total: int
    full: int
    spent: int = 0

    @classmethod
    def from_ratio(cls, epochs: int, num_samples: int, ratio: float) -> ForwardBudget:
        """Budget for ``ratio`` pruning relative to ``epochs`` full-data epochs over ``num_samples``."""
        if not 0 <= ratio < 1:
            raise ConfigError(f"ratio={ratio} must be in [0, 1)")
        if epochs < 1 or num_samples < 1:
            raise ConfigError(f"epochs={epochs} and the training set size {num_samples} must be >= 1")
        full = int(epochs) * int(num_samples)
        return cls(total=max(1, round((1 - ratio) * full)), full=full)

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.total

    @property
    def progress(self) -> float:
        """Fraction of the budget spent, in [0, 1]."""
        return min(1.0, self.spent / self.total)

    @property
    def achieved_ratio(self) -> float:
        """1 - spent / full: the pruning ratio actually realised."""
        return 1.0 - self.spent / self.full

    def grant(self, wanted: int) -> int:
        """How many of ``wanted`` forward passes may still run."""
        return min(int(wanted), self.remaining)

    def spend(self, n: int) -> None:
        self.spent += int(n)

    def state_dict(self) -> dict:
        return {"total": self.total, "full": self.full, "spent": self.spent}

    def load_state_dict(self, sd: dict) -> None:
        self.total, self.full, self.spent = int(sd["total"]), int(sd["full"]), int(sd["spent"])
