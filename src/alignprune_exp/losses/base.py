"""The Criterion contract: the training loss as one value per sample, plus what a criterion may own.

The trainer multiplies ``per_sample`` by the policy's weights and averages it; scorers rank on it. A
criterion may add a batch-level term (unweighted) and may own per-sample parameters with their own
optimizer step (SOP+), which is why the contract goes beyond a plain function. Capabilities are class
attributes with defaults here, read as plain attributes by the trainer and pipeline:

- ``needs_strong_view``: the trainer also forwards a strong augmentation of each batch and passes its
  logits as ``logits_strong``.
- ``per_sample_parameters``: the criterion holds per-sample state (indexed by dataset index) that only
  changes where a sample trains, so it cannot be kept identical across ranks: one process only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Criterion(ABC):
    """A training criterion: per-sample losses, an optional batch term, optional own parameters.

    Every method but ``per_sample`` has a default for a stateless criterion (no batch term, nothing to
    step, move or save).
    """

    needs_strong_view: bool = False
    per_sample_parameters: bool = False

    @abstractmethod
    def per_sample(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        indices: torch.Tensor | None = None,
        logits_strong: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss per sample [B] (no reduction).

        Args:
            logits: [B, C] weak-view (or evaluation) logits.
            targets: [B] training (noisy) labels.
            indices: [B] dataset indices (None at evaluation).
            logits_strong: [B, C] strong-view logits when ``needs_strong_view`` (else None).
        """

    def batch_term(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor | float:
        """Batch-level loss added once per batch, unweighted (none by default)."""
        return 0.0

    def zero_grad(self) -> None:
        """Clear the gradients of the criterion's own parameters (none by default)."""

    def step(self) -> None:
        """Step the optimizer of the criterion's own parameters (none by default)."""

    def to(self, device) -> Criterion:
        """Move the criterion's state to ``device`` (none by default); returns self."""
        return self

    def state_dict(self) -> dict:
        """Everything needed to restore the criterion exactly (nothing by default)."""
        return {}

    def load_state_dict(self, sd: dict) -> None:
        """Restore from ``state_dict()`` output (nothing by default)."""
