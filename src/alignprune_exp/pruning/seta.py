"""SeTa (Zhou, Gao, Wang, CVPR 2025): random down-sampling, then a sliding window over score groups."""

from __future__ import annotations

from typing import Any

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.base import (
    Policy,
    below_mean,
    check_unit_interval,
    floor_count,
)

SKETCH_SIZE = 4096


def _lloyd_1d(
    x: torch.Tensor, prefix: torch.Tensor, prefix_sq: torch.Tensor, centroids: torch.Tensor, max_iter: int
) -> tuple[torch.Tensor, float]:
    """Lloyd iterations on sorted ``x`` from ``centroids`` (ascending); (boundaries [k + 1], inertia)."""
    m = x.numel()
    ends = torch.tensor([0, m], device=x.device)
    bounds = None
    for _ in range(max_iter):
        cuts = torch.searchsorted(x, (centroids[1:] + centroids[:-1]) / 2)
        new_bounds = torch.cat([ends[:1], cuts, ends[1:]])
        if bounds is not None and torch.equal(new_bounds, bounds):
            break
        bounds = new_bounds
        sizes = bounds[1:] - bounds[:-1]
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        # An empty cluster keeps its centroid (Lloyd's usual convention).
        centroids = torch.where(sizes > 0, sums / sizes.clamp(min=1), centroids)
    sizes = (bounds[1:] - bounds[:-1]).double()
    sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
    squares = prefix_sq[bounds[1:]] - prefix_sq[bounds[:-1]]
    inertia = float((squares - sums * sums / sizes.clamp(min=1)).sum())
    return bounds, inertia


def _kmeans_pp_1d(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (D^2 sampling) on ``x``; draws by inverse CDF so ``x`` may live on any device."""
    pick = int(torch.randint(x.numel(), (1,), generator=generator))
    centers = [x[pick]]
    dist2 = (x - centers[0]) ** 2
    for _ in range(1, k):
        cdf = dist2.cumsum(0)
        total = cdf[-1]
        if not float(total) > 0:
            centers.append(centers[-1])
            continue
        u = float(torch.rand(1, generator=generator, dtype=torch.float64)) * total
        pick = int(torch.searchsorted(cdf, u.reshape(1)).clamp(max=x.numel() - 1))
        centers.append(x[pick])
        dist2 = torch.minimum(dist2, (x - centers[-1]) ** 2)
    return torch.sort(torch.stack(centers)).values


def kmeans_1d(values: torch.Tensor, k: int, n_init: int = 10, max_iter: int = 100, seed: int = 0) -> torch.Tensor:
    """Cluster boundaries of 1-D k-means on ``values`` sorted ascending.

    In one dimension every Lloyd assignment is a set of contiguous ranges of the sorted values cut at
    the midpoints between consecutive centroids, so an iteration is a ``searchsorted`` plus prefix
    sums, O(k log n) after the sort. Lloyd only reaches a local optimum, so it runs from the
    (j + 0.5) / k quantiles and from ``n_init`` k-means++ seedings (D^2 sampling on a quantile sketch
    of at most SKETCH_SIZE values) of a private generator seeded with ``seed``, and keeps the lowest
    inertia: deterministic, like the reference code's scikit-learn KMeans(random_state=0). Equal
    values always share a cluster; a cluster is empty only when there are fewer distinct values
    than clusters.

    Args:
        values: [m] sorted ascending.
        k: number of clusters.
        n_init: k-means++ restarts besides the quantile start.
        max_iter: Lloyd iterations per start at most (stops once the assignment is stable).
        seed: seed of the seeding generator.

    Returns:
        int64 [k + 1] boundaries b: cluster j is ``values[b[j]:b[j + 1]]``, clusters ascending by mean.
    """
    m = values.numel()
    x = values.double()
    prefix = torch.cat([x.new_zeros(1), x.cumsum(0)])
    prefix_sq = torch.cat([x.new_zeros(1), (x * x).cumsum(0)])
    quantile_pos = ((torch.arange(k, dtype=torch.float64, device=x.device) + 0.5) * m / k).long()
    starts = [x[quantile_pos.clamp(max=m - 1)]]
    generator = torch.Generator().manual_seed(int(seed))
    # Seeding only needs the shape of the distribution: D^2 sampling runs on a quantile sketch.
    sketch = x[torch.linspace(0, m - 1, min(m, SKETCH_SIZE), device=x.device).round().long()]
    starts += [_kmeans_pp_1d(sketch, k, generator) for _ in range(int(n_init))]
    best, best_inertia = None, float("inf")
    for centroids in starts:
        bounds, inertia = _lloyd_1d(x, prefix, prefix_sq, centroids, max_iter)
        if best is None or inertia < best_inertia:
            best, best_inertia = bounds, inertia
    return best


class SeTa(Policy):
    """SeTa's per-epoch selection (spec ``dynamic_pruning.md`` section 2; paper Table A defaults).

    Pruning phase: R = a uniform random subset of floor((1 - prune_prob) * N) samples; R is grouped
    into ``num_groups`` groups by 1-D k-means on the scores (``kmeans_1d``, best of several starts),
    ordered from low score ("easy") to high; the first pruning selection trains all groups, and the
    ``it``-th one (it >= 1) trains the window groups[start : start + w], w = round(k * alpha)
    (Python's banker's rounding), start = it mod (k - w + 1), so the window slides easy -> hard and
    back. If all scores in R are equal, the groups are k consecutive chunks of R (R is in random
    order). Annealing ("partial annealing", see ``is_annealing``): a fresh uniform random subset of
    floor((1 - prune_prob) * N) samples, no score used. Weights are always 1: SeTa does not rescale
    (biased by design).

    Unlike the reference code: one selection per epoch (no re-pruning per batch), prune_prob is never
    clipped, and no global RNG is touched.

    Args:
        num_samples: size of the training set.
        prune_prob: fraction r of all samples removed at random before grouping, in [0, 1).
        num_groups: k, the number of score groups.
        alpha: window scale; the window spans round(k * alpha) groups, at least 1.
        delta: fraction of the run (budget, or epochs) after which annealing starts.
        num_epochs: epoch count for the annealing rule when ``select`` gets no ``progress``.
        seed: seed of the private generator drawing R.
    """

    def __init__(
        self,
        num_samples: int,
        prune_prob: float = 0.1,
        num_groups: int = 5,
        alpha: float = 0.9,
        delta: float = 0.875,
        num_epochs: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(num_samples, seed)
        self.prune_prob = check_unit_interval("prune_prob", prune_prob, closed_right=False)
        self._init_annealing(delta, num_epochs)
        if int(num_groups) < 1:
            raise ConfigError(f"num_groups must be >= 1, got {num_groups}")
        self.num_groups = int(num_groups)
        self.alpha = check_unit_interval("alpha", alpha)
        self.window = round(self.num_groups * self.alpha)
        if self.window < 1:
            raise ConfigError(
                f"alpha={alpha} with num_groups={num_groups} gives an empty window "
                f"(round(k * alpha) = 0): raise alpha or num_groups"
            )
        self.subset_size = floor_count(1.0 - self.prune_prob, self.num_samples)
        if self.subset_size < self.num_groups:
            raise ConfigError(
                f"the random subset has {self.subset_size} samples, fewer than num_groups="
                f"{self.num_groups}: lower prune_prob or num_groups"
            )
        self.iteration = 0  # pruning-phase selections made so far (the reference code's ``it``)

    def window_start(self, iteration: int) -> int | None:
        """First group of the window at the ``iteration``-th pruning selection (None: all groups)."""
        if iteration == 0:
            return None
        return iteration % (self.num_groups - self.window + 1)

    def groups(self, subset: torch.Tensor, scores: torch.Tensor) -> list[torch.Tensor]:
        """``subset`` split into ``num_groups`` groups by score, ascending (may hold empty groups)."""
        values = scores[subset]
        if bool((values == values[0]).all()):
            return list(torch.tensor_split(subset, self.num_groups))
        sorted_values, order = torch.sort(values, stable=True)
        bounds = kmeans_1d(sorted_values, self.num_groups).tolist()
        ranked = subset[order]
        return [ranked[bounds[j] : bounds[j + 1]] for j in range(self.num_groups)]

    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training indices (sorted) and all-one weights [num_samples] for this epoch."""
        scores = self._check_scores(scores)
        device = scores.device
        weights = torch.ones(self.num_samples, dtype=torch.float32, device=device)
        n_below = int(below_mean(scores).sum())
        subset = torch.randperm(self.num_samples, generator=self.generator)[: self.subset_size]
        subset = subset.to(device)
        if self.annealing(epoch, progress):
            indices, annealing, start, sizes = subset, True, None, []
        else:
            groups = self.groups(subset, scores)
            start = self.window_start(self.iteration)
            chosen = groups if start is None else groups[start : start + self.window]
            indices, annealing = torch.cat(chosen), False
            sizes = [int(g.numel()) for g in groups]
            self.iteration += 1
        indices = torch.sort(indices).values
        self._finish(indices, weights, n_below, annealing)
        self.stats.update(window_start=-1 if start is None else int(start), group_sizes=sizes)
        return indices, weights

    def state_dict(self) -> dict[str, Any]:
        """Generator state, stats and the pruning-selection counter."""
        sd = super().state_dict()
        sd["iteration"] = self.iteration
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore exactly, window position included."""
        super().load_state_dict(sd)
        self.iteration = int(sd["iteration"])


__all__ = ["SeTa", "kmeans_1d"]
