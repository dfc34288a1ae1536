"""Policies: InfoBatch selection/rescaling/annealing, Dynamic Random sizing, full data."""

from __future__ import annotations

import io
import math

import pytest
import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning import FullData, InfoBatch, Policy, RandomDynamic
from alignprune_exp.pruning.base import is_annealing


def skewed_scores(n: int = 1000, seed: int = 0) -> torch.Tensor:
    """Right-skewed, loss-like scores (about 63 % below the mean)."""
    return torch.empty(n).exponential_(generator=torch.Generator().manual_seed(seed))


def test_infobatch_kept_count_and_weights_exact():
    scores = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 20.0])  # mean 5.6: 6 below
    for r, n_keep_low in ((0.5, 3), (0.75, 1), (0.9, 0), (0.0, 6), (0.3, 4)):  # floor((1-r)*6)
        policy = InfoBatch(10, prune_prob=r, delta=0.875)
        idx, w = policy.select(scores, epoch=1, progress=0.1)
        low = scores < scores.mean()
        assert idx.dtype == torch.int64 and torch.equal(idx, idx.sort().values)
        assert idx.numel() == 4 + n_keep_low
        assert policy.stats == {
            "kept_fraction": idx.numel() / 10,
            "below_mean_fraction": 0.6,
            "annealing": False,
        }
        assert policy.last_pruned_fraction == pytest.approx(1 - idx.numel() / 10)
        kept = torch.zeros(10, dtype=torch.bool)
        kept[idx] = True
        assert kept[~low].all()  # high-score samples are never pruned
        expected_w = torch.where(kept & low, torch.tensor(1 / (1 - r)), torch.tensor(1.0))
        assert w.dtype == torch.float32 and torch.equal(w, expected_w.float())


def test_infobatch_floor_is_robust_to_float_error():
    scores = torch.cat([torch.zeros(10), torch.full((10,), 10.0)])
    idx, _ = InfoBatch(20, prune_prob=0.9, delta=1.0).select(scores, 0)
    assert idx.numel() == 10 + 1  # (1 - 0.9) * 10 is 0.999..., counted as 1


def test_infobatch_without_rescale_and_prune_all():
    scores = skewed_scores()
    idx, w = InfoBatch(1000, prune_prob=0.5, delta=0.875, rescale=False).select(scores, 1, 0.2)
    assert torch.equal(w, torch.ones(1000)) and idx.numel() < 1000
    idx, w = InfoBatch(1000, prune_prob=1.0, delta=0.875, rescale=False).select(scores, 1, 0.2)
    assert torch.equal(idx, (scores >= scores.mean()).nonzero().squeeze(1))


def test_infobatch_annealing_resets_weights():
    scores = skewed_scores()
    policy = InfoBatch(1000, prune_prob=0.5, delta=0.875)
    _, w = policy.select(scores, 5, progress=0.87)
    assert (w == 2.0).any()
    idx, w = policy.select(scores, 6, progress=0.875)
    assert torch.equal(idx, torch.arange(1000)) and torch.equal(w, torch.ones(1000))
    assert policy.stats["annealing"] and policy.stats["kept_fraction"] == 1.0


def test_annealing_rule_by_epochs():
    assert [is_annealing(e, 0.875, num_epochs=10) for e in range(10)] == [False] * 8 + [True] * 2
    assert [is_annealing(e, 0.875, num_epochs=200) for e in (173, 174, 175)] == [
        False,
        False,
        True,
    ]
    assert not is_annealing(10**6, 0.875)  # neither progress nor num_epochs: always prune
    assert is_annealing(0, 0.5, progress=0.5, num_epochs=100)  # progress takes precedence
    policy = InfoBatch(1000, prune_prob=0.5, delta=0.875, num_epochs=10)
    kept = [policy.select(skewed_scores(), e)[0].numel() for e in range(10)]
    assert all(k < 1000 for k in kept[:8]) and kept[8:] == [1000, 1000]


def test_infobatch_equal_scores_give_full_data():
    idx, w = InfoBatch(50, prune_prob=0.5, delta=0.875).select(torch.full((50,), 3.0), 0, 0.0)
    assert torch.equal(idx, torch.arange(50)) and torch.equal(w, torch.ones(50))


def test_infobatch_determinism_and_state_dict_round_trip():
    scores = skewed_scores()
    a, b = InfoBatch(1000, 0.5, 0.875, seed=3), InfoBatch(1000, 0.5, 0.875, seed=3)
    first = a.select(scores, 1, 0.1)[0]
    assert torch.equal(first, b.select(scores, 1, 0.1)[0])
    assert not torch.equal(first, a.select(scores, 2, 0.2)[0])  # a fresh subset each call
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = InfoBatch(1000, 0.5, 0.875, seed=99)
    c.load_state_dict(torch.load(buf, weights_only=True))
    assert c.stats == a.stats
    ia, wa = a.select(scores, 3, 0.3)
    ic, wc = c.select(scores, 3, 0.3)
    assert torch.equal(ia, ic) and torch.equal(wa, wc)


def test_infobatch_invalid_config_and_nan_scores():
    for kwargs in (dict(prune_prob=-0.1), dict(prune_prob=0.95, delta=1.5)):
        with pytest.raises(ConfigError):
            InfoBatch(10, **{"delta": 0.875, **kwargs})
    with pytest.raises(ConfigError):
        InfoBatch(10, prune_prob=1.2, delta=0.875, rescale=False)
    InfoBatch(10, prune_prob=0.95, delta=0.875)  # no silent clipping to keep >= 0.1, and no error
    with pytest.raises(ValueError, match="NaN"):
        InfoBatch(3, 0.5, 0.875).select(torch.tensor([1.0, float("nan"), 2.0]), 1)
    with pytest.raises(ValueError, match="shape"):
        InfoBatch(3, 0.5, 0.875).select(torch.ones(4), 1)


def test_infobatch_expected_gradient_is_unbiased():
    n, draws = 200, 2000
    losses = skewed_scores(n, seed=1)
    n_low = int((losses < losses.mean()).sum())
    policy = InfoBatch(n, prune_prob=0.5, delta=1.0, seed=0)
    totals = torch.empty(draws, dtype=torch.float64)
    for k in range(draws):
        idx, w = policy.select(losses, k, 0.0)
        totals[k] = (w[idx].double() * losses[idx].double()).sum()
    bias = 1 - math.floor(0.5 * n_low) / (0.5 * n_low)  # floor makes it unbiased up to one sample
    target = losses.double().sum()
    assert abs(totals.mean() / target - 1) < 0.005 + bias
    assert totals.std() > 0


def test_random_dynamic_matches_infobatch_size_and_differs_per_epoch():
    scores = skewed_scores()
    info = InfoBatch(1000, prune_prob=0.5, delta=0.875)
    rand = RandomDynamic(1000, prune_prob=0.5, delta=0.875, seed=1)
    idx_info, _ = info.select(scores, 1, 0.1)
    idx1, w1 = rand.select(scores, 1, 0.1)
    idx2, _ = rand.select(scores, 2, 0.2)
    assert idx1.numel() == idx_info.numel() == idx2.numel()
    assert torch.equal(w1, torch.ones(1000)) and torch.equal(idx1, idx1.sort().values)
    assert idx1.unique().numel() == idx1.numel() and not torch.equal(idx1, idx2)
    assert rand.stats["below_mean_fraction"] == info.stats["below_mean_fraction"]
    # low scores are not preferentially pruned: roughly the same share of low samples as overall
    low = scores < scores.mean()
    assert abs(low[idx1].float().mean() - low.float().mean()) < 0.06
    idx, w = rand.select(scores, 9, 0.9)
    assert torch.equal(idx, torch.arange(1000)) and rand.stats["annealing"]


def test_random_dynamic_keep_fraction_and_state():
    policy = RandomDynamic(1000, keep_fraction=0.3, delta=1.0, seed=5)
    assert policy.select(torch.zeros(1000), 0)[0].numel() == 300  # scores ignored for sizing
    clone = RandomDynamic(1000, keep_fraction=0.3, delta=1.0, seed=0)
    clone.load_state_dict(policy.state_dict())
    assert torch.equal(policy.select(torch.zeros(1000), 1)[0], clone.select(torch.zeros(1000), 1)[0])
    with pytest.raises(ConfigError, match="keep_fraction"):
        RandomDynamic(10, keep_fraction=0.0)


def test_full_data():
    policy = FullData(7)
    assert isinstance(policy, Policy)
    idx, w = policy.select(torch.arange(7.0), 3, 0.5)
    assert torch.equal(idx, torch.arange(7)) and torch.equal(w, torch.ones(7))
    assert policy.stats["kept_fraction"] == 1.0 and not policy.stats["annealing"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_policies_follow_scores_device():
    scores = skewed_scores().cuda()
    for policy in (InfoBatch(1000, 0.5, 0.875), RandomDynamic(1000), FullData(1000)):
        idx, w = policy.select(scores, 1, 0.1)
        assert idx.device.type == "cuda" and w.device.type == "cuda"
    cpu_idx, cpu_w = InfoBatch(1000, 0.5, 0.875, seed=4).select(scores.cpu(), 1, 0.1)
    gpu_idx, gpu_w = InfoBatch(1000, 0.5, 0.875, seed=4).select(scores, 1, 0.1)
    assert torch.equal(cpu_idx, gpu_idx.cpu()) and torch.equal(cpu_w, gpu_w.cpu())
