"""Moderate coreset (Xia et al. ICLR 2023); spec static_baselines §6."""

from __future__ import annotations

import torch

from alignprune_exp.pruning.static.base import StaticPolicy, round_half_up


def class_median_distances(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """|| h_i - m_{y_i} ||_2 with m_c the coordinate-wise median of class c's features (numpy's median:
    the mean of the two middle values for an even count)."""
    h = features.float()
    dist = torch.zeros(len(h), device=h.device)
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().squeeze(1)
        s = torch.sort(h[members], dim=0).values
        k = len(members)
        median = 0.5 * (s[(k - 1) // 2] + s[k // 2])
        dist[members] = (h[members] - median).norm(dim=1)
    return dist


def middle_band(scores: torch.Tensor, budget: int) -> torch.Tensor:
    """The ``budget`` samples around the median of the ascending ranking: order[round(N(1/2 - f/2)):][:B]."""
    n = len(scores)
    order = torch.sort(scores.double(), stable=True).indices
    start = min(round_half_up(n * (0.5 - budget / (2 * n))), n - budget)
    return order[start : start + budget]


class Moderate(StaticPolicy):
    """Keep the middle band of the distance-to-class-median ranking of warm-up penultimate features.

    Global ranking of class-relative distances (not class-balanced, as the original); no hyper-parameters.
    """

    def score(self, record) -> torch.Tensor:
        return class_median_distances(record.features, record.labels.to(record.features.device))

    def rule(self, scores: torch.Tensor, budget: int) -> torch.Tensor:
        return middle_band(scores, budget)
