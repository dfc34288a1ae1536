"""SeTa: random subset, k-means score groups, sliding window over epochs, partial annealing."""

from __future__ import annotations

import io

import pytest
import torch

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning import SeTa
from alignprune_exp.pruning.seta import kmeans_1d

# Five well-separated score levels with distinct group sizes (40, 25, 15, 12, 8): any sensible
# 1-D k-means with k = 5 finds exactly these groups. Sample i's level is LEVELS[i]; the order is
# shuffled so group membership cannot follow from the index.
SIZES = (40, 25, 15, 12, 8)
_perm = torch.randperm(100, generator=torch.Generator().manual_seed(7))
LEVELS = torch.repeat_interleave(torch.arange(5), torch.tensor(SIZES))[_perm]
SCORES = LEVELS.float() * 10 + torch.rand(100, generator=torch.Generator().manual_seed(1))


def group_members(levels: list[int], subset: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted indices whose level is in ``levels`` (within ``subset`` if given)."""
    mask = torch.isin(LEVELS, torch.tensor(levels))
    if subset is not None:
        keep = torch.zeros(100, dtype=torch.bool)
        keep[subset] = True
        mask &= keep
    return mask.nonzero().squeeze(1)


@pytest.mark.parametrize(
    "alpha,starts",
    [
        (0.9, [None, 1, 0, 1, 0, 1]),  # w = round(4.5) = 4 (banker's rounding), s = 1
        (0.6, [None, 1, 2, 0, 1, 2]),  # w = 3, s = 2
        (0.5, [None, 1, 2, 3, 0, 1]),  # w = round(2.5) = 2, s = 3
        (1.0, [None, 0, 0, 0, 0, 0]),  # w = k: every group every epoch
    ],
)
def test_window_positions_and_group_membership_over_epochs(alpha, starts):
    policy = SeTa(100, prune_prob=0.0, num_groups=5, alpha=alpha, delta=1.0)
    w = round(5 * alpha)
    assert policy.window == w
    for epoch, start in enumerate(starts):
        idx, weights = policy.select(SCORES, epoch, progress=0.05 * epoch)
        levels = list(range(5)) if start is None else list(range(start, start + w))
        assert torch.equal(idx, group_members(levels)), (epoch, start)
        assert torch.equal(weights, torch.ones(100))
        assert policy.stats["group_sizes"] == list(SIZES)
        assert policy.stats["window_start"] == (-1 if start is None else start)
        assert policy.stats["kept_fraction"] == idx.numel() / 100
        assert not policy.stats["annealing"]


def test_random_subset_then_groups_by_score():
    policy = SeTa(100, prune_prob=0.1, num_groups=5, alpha=0.9, delta=1.0, seed=3)
    first, _ = policy.select(SCORES, 0, progress=0.0)
    assert first.numel() == 90  # floor(0.9 * 100), all groups at the first selection
    idx, _ = policy.select(SCORES, 1, progress=0.1)
    # A fresh random 90 each epoch, then groups 1..4 of those 90: every level-0 sample is out,
    # exactly the drawn samples of levels 1..4 are in.
    assert not torch.isin(idx, group_members([0])).any()
    sizes = policy.stats["group_sizes"]
    assert sum(sizes) == 90 and idx.numel() == sum(sizes[1:])
    assert all(s <= full for s, full in zip(sizes, SIZES))
    assert LEVELS[idx].unique().tolist() == [1, 2, 3, 4]


def test_equal_scores_give_k_equal_chunks_of_the_subset():
    policy = SeTa(103, prune_prob=0.0, num_groups=5, alpha=0.6, delta=1.0)
    policy.select(torch.full((103,), 3.0), 0, progress=0.0)
    assert policy.stats["group_sizes"] == [21, 21, 21, 20, 20]
    idx, _ = policy.select(torch.full((103,), 3.0), 1, progress=0.1)
    assert idx.numel() == 21 + 21 + 20  # window of 3 chunks starting at chunk 1


def test_annealing_is_a_uniform_subset_and_does_not_move_the_window():
    policy = SeTa(1000, prune_prob=0.3, num_groups=5, alpha=0.9, delta=0.875)
    scores = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    policy.select(scores, 0, progress=0.0)
    policy.select(scores, 1, progress=0.5)
    a, wa = policy.select(scores, 2, progress=0.875)
    b, _ = policy.select(scores, 3, progress=0.95)
    assert a.numel() == b.numel() == 700 and not torch.equal(a, b)
    assert torch.equal(wa, torch.ones(1000)) and policy.stats["annealing"]
    assert policy.iteration == 2  # annealing selections do not count
    # Annealing subsets ignore the scores: the lowest-scoring samples are drawn at the base rate.
    low = scores < 0.2
    assert 0.55 < low[a].float().sum() / low.sum() < 0.85


def test_annealing_by_epochs_without_progress():
    policy = SeTa(50, prune_prob=0.2, delta=0.875, num_epochs=8)
    annealing = []
    for e in range(8):
        policy.select(torch.rand(50, generator=torch.Generator().manual_seed(e)), e)
        annealing.append(policy.stats["annealing"])
    assert annealing == [False] * 7 + [True]


def test_state_dict_round_trip_repeats_the_next_selection():
    a = SeTa(200, prune_prob=0.1, alpha=0.6, seed=5)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(2))
    for e in range(3):
        a.select(scores, e, progress=0.1 * e)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = SeTa(200, prune_prob=0.1, alpha=0.6, seed=99)
    c.load_state_dict(torch.load(buf, weights_only=True))
    assert c.iteration == 3 and c.stats == a.stats
    ia, _ = a.select(scores, 3, progress=0.3)
    ic, _ = c.select(scores, 3, progress=0.3)
    assert torch.equal(ia, ic)
    # Another seed draws another subset.
    other = SeTa(200, prune_prob=0.1, seed=6)
    assert not torch.equal(other.select(scores, 0, 0.0)[0], SeTa(200, prune_prob=0.1, seed=5).select(scores, 0, 0.0)[0])


def test_kmeans_1d_is_optimal_on_separated_levels_and_matches_sklearn():
    values = torch.sort(SCORES).values
    bounds = kmeans_1d(values, 5)
    assert (bounds[1:] - bounds[:-1]).tolist() == list(SIZES)
    sklearn = pytest.importorskip("sklearn.cluster")
    x = torch.sort(torch.empty(2000).exponential_(generator=torch.Generator().manual_seed(0))).values
    bounds = kmeans_1d(x, 5).tolist()
    ours = sum(((x[s:e].double() - x[s:e].double().mean()) ** 2).sum().item() for s, e in zip(bounds, bounds[1:]))
    km = sklearn.KMeans(5, random_state=0, n_init=4).fit(x.numpy()[:, None].astype("float64"))
    assert ours <= km.inertia_ * (1 + 1e-4)
    # Ties never split: equal values share one cluster, and fewer distinct values leave groups empty.
    tied = torch.tensor([0.0] * 6 + [1.0] * 3 + [5.0])
    bounds = kmeans_1d(tied, 5).tolist()
    assert {tuple(tied[s:e].unique().tolist()) for s, e in zip(bounds, bounds[1:]) if e > s} == {(0.0,), (1.0,), (5.0,)}


def test_invalid_configs_raise_config_errors():
    with pytest.raises(ConfigError, match="prune_prob"):
        SeTa(100, prune_prob=1.0)
    with pytest.raises(ConfigError, match="empty window"):
        SeTa(100, num_groups=5, alpha=0.05)
    with pytest.raises(ConfigError, match="num_groups"):
        SeTa(10, prune_prob=0.6, num_groups=5)
    with pytest.raises(ValueError, match="NaN"):
        SeTa(3, num_groups=1).select(torch.tensor([1.0, float("nan"), 2.0]), 0)


@pytest.mark.parametrize("option,scorer", [("seta", "LossScorer"), ("seta_das", "DASScorer")])
def test_configs_build_the_paper_defaults(compose_cfg, option, scorer):
    cfg = compose_cfg([f"pruner={option}"])
    policy = instantiate(cfg.pruner.policy, num_samples=100, seed=0)
    assert (policy.prune_prob, policy.num_groups, policy.alpha, policy.delta) == (0.1, 5, 0.9, 0.875)
    built = instantiate(cfg.pruner.scorer, num_samples=100)
    assert type(built).__name__ == scorer
    idx, w = policy.select(built.scores(), 0, progress=0.0)
    assert idx.numel() == 90 and w.shape == (100,)
