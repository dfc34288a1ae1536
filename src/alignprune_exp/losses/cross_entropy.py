"""Training criteria selected by the ``loss`` config group; each yields one loss per sample.

The trainer multiplies the per-sample vector by the policy's weights and averages it; scorers rank on
it. A criterion may add a batch-level term (unweighted) and may own per-sample parameters with their
own optimizer step (SOP+), which is why the contract goes beyond a plain function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class CrossEntropy:
    """Per-sample cross-entropy from one ``reduction="none"`` call (``num_samples``/``num_classes`` unused)."""

    needs_strong_view = False

    def __init__(self, num_samples: int | None = None, num_classes: int | None = None,
                 label_smoothing: float = 0.0):
        self.label_smoothing = float(label_smoothing)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor | None = None,
                   logits_strong: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=self.label_smoothing)

    def batch_term(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor | float:
        """Batch-level loss added once per batch (none for plain CE)."""
        return 0.0

    def zero_grad(self) -> None:
        pass

    def step(self) -> None:
        pass

    def to(self, device) -> "CrossEntropy":
        return self

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass
