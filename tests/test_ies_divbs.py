"""IES (second-difference score + threshold rule) and DivBS (greedy diverse in-batch selection)."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning import IES, DivBS
from alignprune_exp.pruning.divbs import gradient_gram, greedy_orthogonal
from alignprune_exp.scoring import SecondOrderScorer

INF = float("inf")

# Hand-made loss histories (one row per sample, one column per epoch):
#  0: linear decrease          -> second differences 0             -> mastered (score 0)
#  1: zig-zag of amplitude 0.1 -> |d2| = 0.2 every epoch           -> trains
#  2: halving decay 0.5^t       -> |d2| = 0.5^t, shrinking          -> trains while above tau
#  3: constant, then a jump    -> curve bends again                -> comes back
HISTORY = torch.tensor(
    [
        [3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4, 2.3, 2.2],
        [1.0, 1.1, 1.0, 1.1, 1.0, 1.1, 1.0, 1.1, 1.0],
        [1.0 * 0.5**t for t in range(9)],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.5],
    ]
)


def feed(scorer: SecondOrderScorer, epochs: range) -> None:
    for e in epochs:
        scorer.observe(torch.arange(4), HISTORY[:, e], e)


def expected_score(sample: int, upto: int, ma: int = 3) -> float:
    """mean |d2| over the last ``ma`` second differences of HISTORY[sample, :upto]."""
    x = HISTORY[sample, :upto].double()
    d2 = x[2:] - 2 * x[1:-1] + x[:-2]
    return d2[-ma:].abs().mean().item()


def test_second_order_score_on_hand_made_history():
    scorer = SecondOrderScorer(4, ma=3)
    assert scorer.min_observations == 6  # the reference code judges a sample from its 6th loss on
    feed(scorer, range(5))
    assert torch.equal(scorer.scores(), torch.full((4,), INF))  # 5 losses: not judged yet
    feed(scorer, range(5, 6))
    for upto in range(6, 10):
        if upto > 6:
            feed(scorer, range(upto - 1, upto))
        s = scorer.scores()
        assert s.dtype == torch.float32 and not torch.isnan(s).any()
        assert s.tolist() == pytest.approx([expected_score(i, upto) for i in range(4)], abs=1e-6)
    assert s[0] == pytest.approx(0.0, abs=1e-6) and s[1] == pytest.approx(0.2, abs=1e-6)
    assert s[3] == pytest.approx(1.0 / 3, abs=1e-6)  # the jump enters one second difference


def test_second_order_same_epoch_overwrites_and_min_observations():
    scorer = SecondOrderScorer(2, ma=1, min_observations=3)
    for e, loss in enumerate([1.0, 2.0, 4.0]):
        scorer.observe(torch.tensor([0]), torch.tensor([loss]), e)
    assert scorer.scores().tolist() == [1.0, INF]  # |4 - 4 + 1|; sample 1 never observed
    scorer.observe(torch.tensor([0]), torch.tensor([3.0]), 2)  # same epoch: replaces 4.0
    assert scorer.scores().tolist() == [0.0, INF]
    with pytest.raises(ConfigError, match="min_observations"):
        SecondOrderScorer(2, ma=3, min_observations=4)


def test_second_order_state_dict_round_trip():
    a = SecondOrderScorer(4)
    feed(a, range(7))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = SecondOrderScorer(4)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(a.scores(), b.scores())
    feed(a, range(7, 9))
    feed(b, range(7, 9))
    assert torch.equal(a.scores(), b.scores())


def test_ies_rule_on_hand_made_history():
    scorer, policy = SecondOrderScorer(4), IES(4, threshold=1e-3)
    assert policy.scores_unselected  # excluded samples keep being scored by the trainer
    trained = []
    for e in range(9):
        idx, w = policy.select(scorer.scores(), e)
        trained.append(idx.tolist())
        assert torch.equal(w, torch.ones(4))
        scorer.observe(torch.arange(4), HISTORY[:, e], e)  # every sample observed every epoch
    assert trained[:6] == [[0, 1, 2, 3]] * 6  # nobody is judged before 6 losses
    # Epoch 6 sees losses 0..5: the line and the constant are mastered; the decay (mean |d2| 0.073) trains.
    assert trained[6] == [1, 2]
    # Epoch 8: the decay's mean |d2| fell to 0.018, still above 1e-3; the constant stays out until its jump.
    assert trained[8] == [1, 2]
    assert policy.stats["mastered_fraction"] == 0.5 and not policy.stats["all_mastered"]
    # After the jump at epoch 8, sample 3 comes back; the exact thresholds decide sample 2.
    scores = scorer.scores()
    idx, _ = policy.select(scores, 9)
    assert 3 in idx.tolist() and 0 not in idx.tolist()
    idx, _ = IES(4, threshold=float(scores[2]) + 1e-6).select(scores, 9)
    assert 2 not in idx.tolist()


def test_ies_all_mastered_trains_everything():
    policy = IES(5, threshold=0.5)
    idx, w = policy.select(torch.zeros(5), 3)
    assert torch.equal(idx, torch.arange(5)) and policy.stats["all_mastered"]
    idx, _ = policy.select(torch.tensor([0.0, 0.7, INF, 0.1, 0.5]), 4)
    assert idx.tolist() == [1, 2, 4] and policy.stats["kept_fraction"] == 0.6
    with pytest.raises(ConfigError, match="threshold"):
        IES(5, threshold=-1.0)


def explicit_divbs(features, logits, targets, m, generator):
    """The spec's procedure on explicitly built gradient vectors (a slow oracle)."""
    p = F.softmax(logits.double(), 1) - F.one_hot(targets, logits.shape[1]).double()
    grads = (p[:, :, None] * features.double()[:, None, :]).flatten(1)
    rho, basis, free, chosen = grads.mean(0), [], torch.ones(len(grads), dtype=torch.bool), []
    while len(chosen) < m:
        weight = (grads @ rho).abs() * free
        i = int(torch.multinomial(weight, 1, generator=generator))
        chosen.append(i)
        free[i] = False
        q = grads[i].clone()
        for b in basis:
            q -= (b @ grads[i]) * b
        q /= q.norm()
        basis.append(q)
        rho = rho - (q @ rho) * q
    return chosen


def random_batch(b=40, c=10, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, d, generator=g).relu(),
        torch.randn(b, c, generator=g),
        torch.randint(0, c, (b,), generator=g),
    )


def test_divbs_kernel_form_equals_explicit_gradients():
    feats, logits, y = random_batch()
    gram = gradient_gram(feats, logits, y)
    p = F.softmax(logits.double(), 1) - F.one_hot(y, 10).double()
    grads = (p[:, :, None] * feats.double()[:, None, :]).flatten(1)
    assert torch.allclose(gram, grads @ grads.T, rtol=1e-10, atol=1e-12)
    ours = greedy_orthogonal(gram, 12, torch.Generator().manual_seed(4)).tolist()
    assert ours == explicit_divbs(feats, logits, y, 12, torch.Generator().manual_seed(4))


@pytest.mark.parametrize("keep,b,m", [(0.7, 40, 28), (0.1, 320, 32), (0.5, 5, 3), (0.01, 40, 1), (1.0, 40, 40)])
def test_divbs_selection_size(keep, b, m):
    feats, logits, y = random_batch(b=b)
    policy = DivBS(1000, keep_fraction=keep)
    pos = policy.select_in_batch(feats, logits, y, torch.arange(b))
    assert pos.dtype == torch.int64 and pos.numel() == m == policy.batch_keep_count(b)
    assert torch.equal(pos, pos.unique()) and 0 <= int(pos.min()) and int(pos.max()) < b


def test_divbs_is_deterministic_under_a_seed():
    feats, logits, y = random_batch()
    runs = {}
    for seed in (0, 0, 1):
        policy = DivBS(1000, keep_fraction=0.3, seed=seed)
        runs.setdefault(seed, []).append(
            [policy.select_in_batch(feats, logits, y, torch.arange(40)).tolist() for _ in range(3)]
        )
    assert runs[0][0] == runs[0][1]
    assert runs[0][0] != runs[1][0]


def test_divbs_picks_diverse_directions_and_fills_randomly_when_exhausted():
    # Ten copies each of two orthogonal gradients: the residual is spent after one of each.
    g = torch.zeros(20, 4, dtype=torch.float64)
    g[:10, 0], g[10:, 1] = 1.0, 2.0
    for seed in range(5):
        chosen = greedy_orthogonal(g @ g.T, 2, torch.Generator().manual_seed(seed)).tolist()
        assert sorted(c // 10 for c in chosen) == [0, 1]
        filled = greedy_orthogonal(g @ g.T, 7, torch.Generator().manual_seed(seed)).tolist()
        assert len(set(filled)) == 7
    # All-zero gradients (perfect predictions): a uniform random subset of the right size.
    zero = torch.zeros(30, 30, dtype=torch.float64)
    assert len(set(greedy_orthogonal(zero, 9, torch.Generator().manual_seed(0)).tolist())) == 9


def test_divbs_epoch_selection_and_config(compose_cfg):
    policy = DivBS(50, keep_fraction=0.7)
    idx, w = policy.select(torch.rand(50), 0, 0.0)
    assert torch.equal(idx, torch.arange(50)) and torch.equal(w, torch.ones(50))
    with pytest.raises(ConfigError, match="keep_fraction"):
        DivBS(50, keep_fraction=0.0)
    cfg = compose_cfg(["pruner=divbs", "ratio=r50"])
    policy = instantiate(cfg.pruner.policy, num_samples=50, seed=0)
    assert policy.keep_fraction == pytest.approx(0.5) and policy.draw_batch_size == 320
    cfg = compose_cfg(["pruner=ies"])
    policy = instantiate(cfg.pruner.policy, num_samples=50, seed=0)
    scorer = instantiate(cfg.pruner.scorer, num_samples=50)
    assert policy.threshold == 2e-3 and isinstance(scorer, SecondOrderScorer) and scorer.ma == 3  # CIFAR-100
    assert compose_cfg(["pruner=ies", "dataset=cifar10"]).pruner.policy.threshold == 1e-3
    assert compose_cfg(["pruner=ies", "dataset=digits"]).pruner.policy.threshold == 1e-3
    assert policy.select(scorer.scores(), 0)[0].numel() == 50
