"""Static coreset baselines on hand-made warm-up records whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static import (
    DUAL,
    EL2N,
    SSP,
    DynUnc,
    Forgetting,
    GraNd,
    Margin,
    Moderate,
    Prune4ReL,
    RandomStatic,
    SmallLoss,
)
from alignprune_exp.pruning.static.base import class_budgets
from alignprune_exp.pruning.static.dual import beta_weights, dual_scores, weighted_sample
from alignprune_exp.pruning.static.dyn_unc import dyn_unc_scores
from alignprune_exp.pruning.static.el2n import el2n_scores
from alignprune_exp.pruning.static.grand import grand_scores
from alignprune_exp.pruning.static.margin import margins
from alignprune_exp.pruning.static.moderate import class_median_distances
from alignprune_exp.train.recorders import WarmupRecord, WarmupRecorder

STATIC = [
    "random_static",
    "smalll",
    "margin",
    "forgetting",
    "grand",
    "el2n",
    "moderate",
    "ssp",
    "prune4rel",
    "dyn_unc",
    "dual",
]


def make_record(n=40, c=4, d=6, epochs=5, seed=0, labels=None, **override) -> WarmupRecord:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % c if labels is None else labels
    fields = dict(
        labels=labels.long(),
        probs=torch.rand(epochs, n, generator=g),
        forgetting=torch.randint(0, 3, (n,), generator=g),
        ever_learned=torch.ones(n, dtype=torch.bool),
        logits=torch.randn(n, c, generator=g),
        features=torch.randn(n, d, generator=g),
        losses=torch.rand(n, generator=g),
    )
    fields.update(override)
    return WarmupRecord(**fields)


def kept(policy, record):
    policy.prepare(record)
    return set(policy.select(torch.zeros(policy.num_samples), 0)[0].tolist())


def test_forgetting_counts_from_a_prediction_history():
    y = torch.tensor([0, 1, 2])
    rec = WarmupRecorder(y, epochs=4)
    right = {0: [True, False, True, False], 1: [False, True, True, True], 2: [False, False, False, False]}
    for epoch in range(4):
        logits = torch.stack([F.one_hot(y[i] if right[i][epoch] else (y[i] + 1) % 3, 3).float() * 5 for i in range(3)])
        rec(epoch, torch.arange(3), logits, y)
    assert rec.forgetting.tolist() == [2, 0, 0]
    assert rec.ever_learned.tolist() == [True, True, False]
    assert rec.probs.dtype == torch.float16  # compact trajectory: 2 bytes per entry
    assert rec.probs[:, 0].tolist() == pytest.approx(
        [F.softmax(torch.tensor([5.0, 0, 0]), 0)[0].item(), F.softmax(torch.tensor([0, 5.0, 0]), 0)[0].item()] * 2,
        rel=1e-3,
    )
    record = make_record(n=3, c=3, forgetting=rec.forgetting, ever_learned=rec.ever_learned, probs=rec.probs, labels=y)
    zero = Forgetting(3, keep_fraction=1 / 3, class_balanced=False)
    assert zero.score(record).tolist() == [2, 0, 0] and kept(zero, record) == {0}
    tough = Forgetting(3, keep_fraction=1 / 3, class_balanced=False, unlearned="max")
    assert tough.score(record).tolist() == [2, 0, 4] and kept(tough, record) == {2}


def test_margin_and_el2n_values():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    logits, labels = probs.log(), torch.tensor([0, 2, 2])
    assert margins(logits).tolist() == pytest.approx([0.5, 0.05, 0.7], abs=1e-6)
    expect = [
        math.sqrt(0.3**2 + 0.2**2 + 0.1**2),
        math.sqrt(0.4**2 + 0.35**2 + 0.75**2),
        math.sqrt(0.1**2 + 0.1**2 + 0.2**2),
    ]
    assert el2n_scores(logits, labels).tolist() == pytest.approx(expect, abs=1e-6)
    record = make_record(n=3, c=3, logits=logits, labels=labels)
    assert kept(Margin(3, 1 / 3), record) == {1}  # LOW margin: most uncertain
    assert kept(Margin(3, 1 / 3, keep="high"), record) == {2}
    assert kept(EL2N(3, 1 / 3), record) == {1}
    assert kept(EL2N(3, 1 / 3, offset=1 / 3), record) == {0}  # skip the hardest one, keep the next
    with pytest.raises(ConfigError):
        Margin(3, 0.5, keep="middle")


def test_grand_matches_autograd_last_layer_gradient_norm():
    torch.manual_seed(0)
    head = torch.nn.Linear(5, 4)
    h, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 0, 1])
    logits = head(h).detach()
    expected = []
    for i in range(6):
        head.zero_grad()
        F.cross_entropy(head(h[i : i + 1]), y[i : i + 1]).backward()
        expected.append(torch.cat([head.weight.grad.flatten(), head.bias.grad]).norm().item())
    assert grand_scores(logits, h, y).tolist() == pytest.approx(expected, rel=1e-5)
    record = make_record(n=6, c=4, d=5, logits=logits, features=h, labels=y)
    assert kept(GraNd(6, 0.5), record) == set(np.argsort(expected)[-3:].tolist())


def test_smalll_keeps_lowest_loss_globally():
    losses = torch.tensor([0.9, 0.1, 0.5, 0.3, 2.0, 0.2])
    record = make_record(n=6, c=2, losses=losses)
    assert kept(SmallLoss(6, 0.5), record) == {1, 3, 5}


def test_moderate_keeps_the_middle_of_its_distance_ranking():
    feats = torch.arange(10.0)[:, None]  # one class; median 4.5, distances 4.5, 3.5, ..., 0.5, ..., 4.5
    record = make_record(n=10, c=1, d=1, features=feats, labels=torch.zeros(10, dtype=torch.long))
    assert class_median_distances(feats, record.labels).tolist() == pytest.approx(
        [4.5, 3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5, 4.5]
    )
    # ascending order 4,5,3,6,2,7,1,8,0,9; f=0.4 keeps ranks round(10*(0.5-0.2))=3 .. 6
    assert kept(Moderate(10, 0.4), record) == {6, 2, 7, 1}
    g = torch.Generator().manual_seed(1)
    h, y = torch.randn(11, 3, generator=g), torch.tensor([0] * 5 + [1] * 6)
    d = class_median_distances(h, y)
    for c in (0, 1):
        med = np.median(h[y == c].numpy(), axis=0)
        assert d[y == c].numpy() == pytest.approx(np.linalg.norm(h[y == c].numpy() - med, axis=1), rel=1e-5)


def test_dyn_unc_and_dual_on_a_given_probability_history():
    probs = torch.tensor([[0.1, 0.2], [0.5, 0.2], [0.5, 0.2], [0.9, 0.6]])  # [E=4, n=2]
    s = math.sqrt(0.08)  # unbiased std of (a, a+0.4)
    # J=2 windows of sample 0: (.1,.5) (.5,.5) (.5,.9); sample 1: (.2,.2) (.2,.2) (.2,.6)
    assert dyn_unc_scores(probs, 2).tolist() == pytest.approx([2 * s / 3, s / 3], abs=1e-6)
    assert dual_scores(probs, 2).tolist() == pytest.approx([(s * 0.7 + s * 0.3) / 3, s * 0.6 / 3], abs=1e-6)
    whole = probs[:, 0].std().item()  # window longer than the history
    assert dyn_unc_scores(probs, 10)[0].item() == pytest.approx(whole)
    assert dual_scores(probs, 10)[0].item() == pytest.approx(whole * (1 - probs[:, 0].mean().item()))
    record = make_record(n=2, c=2, epochs=4, probs=probs)
    assert kept(DynUnc(2, 0.5, window=2), record) == {0}
    assert kept(DUAL(2, 0.5, window=2), record) == {0}
    with pytest.raises(ConfigError, match="warmup.epochs"):
        dyn_unc_scores(probs[:1], 10)


def test_dual_beta_sampling():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 50, generator=g)
    scores = dual_scores(probs, 3)
    w = beta_weights(probs, scores, ratio=0.5, c_d=4.0)
    pbar = probs.mean(0)
    mu = pbar[scores.argsort(descending=True)[:10]].mean().item()
    b = 15 * (1 - mu) * (1 - 0.5**4)
    assert w.numpy() == pytest.approx(stats.beta.pdf(pbar.numpy(), 16 - b, b) * scores.numpy(), rel=1e-4)
    pick = weighted_sample(torch.tensor([0.0, 1.0, 0.0, 2.0, 3.0]), 4, torch.Generator().manual_seed(0))
    assert set(pick[:3].tolist()) == {1, 3, 4} and pick[3].item() == 0  # zero weights come last
    record = make_record(n=50, c=5, epochs=6, probs=probs)
    a, b2 = DUAL(50, 0.3, window=3, beta_sampling=True, seed=4), DUAL(50, 0.3, window=3, beta_sampling=True, seed=4)
    assert kept(a, record) == kept(b2, record) and len(a.subset) == 15


def test_prune4rel_greedy_gain_on_a_small_similarity_graph():
    # a, b point the same way (cos 1); c, d orthogonal to them; with tau=0.975 only a~b and c~d are neighbours.
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6])
    other = (1 - conf) / 2
    logits = torch.stack([conf, other, other], 1).log()
    record = make_record(n=4, c=3, d=2, features=feats, logits=logits, labels=torch.zeros(4, dtype=torch.long))
    policy = Prune4ReL(4, 0.5, class_balanced=False, tau=0.975, eta=1.0)
    # step 1: gains tanh(conf) -> a. Then N_b = 0.9: gain_b = tanh(1.7) - tanh(0.9) = 0.22 < gain_c = tanh(0.7) = 0.60
    assert policy.choose(record).tolist() == [0, 2]
    assert math.tanh(1.7) - math.tanh(0.9) < math.tanh(0.7)
    # with no neighbours (tau above every similarity) it is plain top confidence
    assert Prune4ReL(4, 0.5, class_balanced=False, tau=1.01).choose(record).tolist() == [0, 1]
    # class-balanced round robin: labels a,b -> 0 and c,d -> 1 with every sample isolated
    rec2 = make_record(
        n=4, c=2, d=2, features=feats, logits=logits[:, :2].log_softmax(1), labels=torch.tensor([0, 0, 1, 1])
    )
    picks = Prune4ReL(4, 0.5, class_balanced=True, tau=1.01).choose(rec2).tolist()
    assert picks == [0, 2]


def test_prune4rel_round_robin_drops_exhausted_classes():
    n = 9
    labels = torch.tensor([0] * 6 + [1] * 2 + [2])
    record = make_record(n=n, c=3, d=3, labels=labels)
    picks = Prune4ReL(n, 8 / 9, class_balanced=True, tau=1.01).choose(record)
    counts = torch.bincount(labels[picks], minlength=3).tolist()
    assert len(set(picks.tolist())) == 8 and counts[1] == 2 and counts[2] == 1 and counts[0] == 5


def test_per_class_selection_sizes():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 3)
    assert class_budgets(labels, 0.5).tolist() == [5, 3, 2]  # round half up: 2.5 -> 3, 1.5 -> 2
    record = make_record(n=18, c=3, labels=labels)
    policy = Forgetting(18, 0.5)  # class-balanced by default
    chosen = torch.tensor(sorted(kept(policy, record)))
    assert torch.bincount(labels[chosen], minlength=3).tolist() == [5, 3, 2]
    for c in range(3):  # and the most-forgotten inside each class
        members = (labels == c).nonzero().squeeze(1)
        inside = set(chosen.tolist()) & set(members.tolist())
        assert min(record.forgetting[list(inside)]) >= max(
            [record.forgetting[i] for i in members.tolist() if i not in inside] or [-1]
        )
    rand = RandomStatic(18, 0.5, class_balanced=True, seed=3)
    assert rand.needs_warmup
    assert torch.bincount(labels[sorted(kept(rand, record))], minlength=3).tolist() == [5, 3, 2]


def test_ssp_scores_distance_to_prototypes():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    feats = torch.cat(
        [
            centers[0] + 0.05 * torch.randn(10, 3, generator=g),
            centers[1] + 0.05 * torch.randn(10, 3, generator=g),
            torch.tensor([[1.0, 1.0, 0.2], [0.7, 0.7, 0.0]]),
        ]
    )
    record = make_record(n=22, c=2, d=3, features=feats, labels=torch.zeros(22, dtype=torch.long))
    policy = SSP(22, 2 / 22, k=2, seed=0)
    scores = policy.score(record)
    assert set(scores.topk(2).indices.tolist()) == {20, 21}  # the in-between points are least prototypical
    assert scores[:20].max() < 0.05 < 0.2 < scores[20:].min()
    assert kept(SSP(22, 2 / 22, k=2, seed=0), record) == {20, 21}
    assert kept(SSP(22, 2 / 22, k=2, seed=0, keep_easy=True), record).isdisjoint({20, 21})


def test_static_policy_contract():
    record = make_record(n=20, c=2)
    policy = SmallLoss(20, 0.3, seed=0)
    with pytest.raises(RuntimeError, match="prepare"):
        policy.select(torch.zeros(20), 0)
    policy.prepare(record)
    idx, w = policy.select(torch.rand(20), 3, progress=0.5)
    assert idx.tolist() == sorted(idx.tolist()) and len(idx) == 6 and torch.equal(w, torch.ones(20))
    assert torch.equal(policy.select(torch.rand(20), 7)[0], idx)  # fixed whatever the scores
    fresh = SmallLoss(20, 0.3, seed=0)
    fresh.load_state_dict(policy.state_dict())
    assert torch.equal(fresh.select(torch.zeros(20), 0)[0], idx)
    rand = RandomStatic(20, 0.25, seed=5)
    assert not rand.needs_warmup and len(rand.select(torch.zeros(20), 0)[0]) == 5
    with pytest.raises(ConfigError):
        SmallLoss(20, 0.0)
    with pytest.raises(ValueError, match="samples"):
        SmallLoss(21, 0.5).prepare(record)


@pytest.mark.parametrize("name", STATIC)
def test_every_static_config_builds_and_selects(compose_cfg, name):
    cfg = compose_cfg([f"pruner={name}", "ratio=r30"])
    assert OmegaConf.to_container(cfg.pruner, resolve=True)["policy"]["keep_fraction"] == pytest.approx(0.7)
    policy = instantiate(cfg.pruner.policy, num_samples=40, seed=0)
    if policy.needs_warmup:
        policy.prepare(make_record(n=40, c=4, epochs=3))
    idx, w = policy.select(torch.zeros(40), 0)
    assert len(idx) == 28 and len(set(idx.tolist())) == 28 and w.shape == (40,)
