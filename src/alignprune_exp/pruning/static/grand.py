"""GraNd (Paul et al. 2021), last-layer approximation as in DeepCore / Prune4ReL; spec static_baselines §4."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignprune_exp.pruning.static.base import StaticPolicy


def grand_scores(logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Norm of the cross-entropy gradient w.r.t. the last linear layer's weight and bias.

    With g = softmax(z) - onehot(y) and penultimate features h: ||[g, g h^T]|| = ||g|| * sqrt(1 + ||h||^2).
    """
    g = logits.float().softmax(1) - F.one_hot(labels, logits.shape[1]).float()
    h2 = features.float().pow(2).sum(1)
    return g.norm(dim=1) * torch.sqrt(1.0 + h2)


class GraNd(StaticPolicy):
    """Keep the HIGHEST last-layer gradient norms of the warm-up model (one run, Prune4ReL's repeat=1)."""

    keep = "high"

    def score(self, record) -> torch.Tensor:
        return grand_scores(record.logits, record.features, record.labels)
