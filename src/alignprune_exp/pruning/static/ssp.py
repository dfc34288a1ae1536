"""SSP, self-supervised prototypes (Sorscher et al. NeurIPS 2022); spec static_baselines §7.

The paper embeds images with a self-supervised encoder (SwAV); none is available offline, so this uses
the warm-up model's penultimate features (the spec's documented fallback).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static.base import StaticPolicy

CHUNK = 65536  # rows per similarity block: memory O(CHUNK * k), not O(N * k)


def _best_centroid(z: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(max cosine, argmax) of each unit row of ``z`` against unit ``centroids``, in row chunks."""
    sims, assign = [], []
    for i in range(0, len(z), CHUNK):
        best = (z[i : i + CHUNK] @ centroids.T).max(1)
        sims.append(best.values)
        assign.append(best.indices)
    return torch.cat(sims), torch.cat(assign)


def spherical_kmeans(z: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """Unit centroids of cosine k-means (Lloyd iterations) on unit rows ``z``; initial centroids are ``k``
    distinct samples drawn from ``generator``; an empty cluster keeps its previous centroid."""
    init = torch.randperm(len(z), generator=generator)[:k].to(z.device)
    centroids = z[init].clone()
    for _ in range(iters):
        _, assign = _best_centroid(z, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, z)
        counts = torch.bincount(assign, minlength=k)
        new = F.normalize(sums, dim=1)
        centroids = torch.where((counts > 0)[:, None], new, centroids)
    return centroids


class SSP(StaticPolicy):
    """Score 1 - max cosine similarity to the nearest k-means centroid (prototypicality; label-free).

    Args:
        k: number of clusters; null = the number of classes (spec: [UNVERIFIED] choice).
        iters: Lloyd iterations.
        keep_easy: keep the most prototypical (LOW distance) instead of the hardest; the paper's advice
            for small kept fractions (f <~ 0.3).
    """

    def __init__(
        self,
        num_samples: int,
        keep_fraction: float,
        class_balanced: bool = False,
        seed: int = 0,
        k: int | None = None,
        iters: int = 20,
        keep_easy: bool = False,
    ):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        if k is not None and not 1 <= int(k) <= num_samples:
            raise ConfigError(f"pruner.policy.k={k} must be in [1, {num_samples}] or null")
        if int(iters) < 1:
            raise ConfigError(f"pruner.policy.iters={iters} must be >= 1")
        self.k, self.iters = None if k is None else int(k), int(iters)
        self.keep = "low" if keep_easy else "high"

    def score(self, record) -> torch.Tensor:
        z = F.normalize(record.features.float(), dim=1)
        centroids = spherical_kmeans(z, self.k or record.num_classes, self.iters, self.generator)
        return 1.0 - _best_centroid(z, centroids)[0]
