"""Plain cross-entropy, the default training criterion (contract: ``losses/base.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignprune_exp.losses.base import Criterion


class CrossEntropy(Criterion):
    """Per-sample cross-entropy from one ``reduction="none"`` call (``num_samples``/``num_classes`` unused).

    Stateless: no batch term, no strong view, no per-sample parameters (the ``Criterion`` defaults).
    """

    needs_strong_view = False
    per_sample_parameters = False

    def __init__(self, num_samples: int | None = None, num_classes: int | None = None, label_smoothing: float = 0.0):
        self.label_smoothing = float(label_smoothing)

    def per_sample(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        indices: torch.Tensor | None = None,
        logits_strong: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=self.label_smoothing)
