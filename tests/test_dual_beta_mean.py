"""DUAL's Beta-sampling mean pbar reads the first T epochs by default (official data_subset.py since 65e999c)."""

from __future__ import annotations

import torch

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.pruning.static import DUAL
from alignprune_exp.pruning.static.dual import beta_weights, dual_scores, weighted_sample
from tests.test_static import make_record

N, T = 200, 30


def memorising_record():
    """60 epochs: the first 30 vary (half the samples hard, p ~ 0.2), the last 30 memorise every label (p 0.99)."""
    g = torch.Generator().manual_seed(1)
    early = torch.rand(T, N, generator=g) * 0.3 + torch.where(torch.arange(N) < N // 2, 0.05, 0.6)
    late = torch.full((T, N), 0.99)
    return make_record(n=N, probs=torch.cat([early, late]))


def test_default_composes_to_the_first_t_epochs(compose_cfg):
    cfg = compose_cfg(["pruner=dual"])
    policy = instantiate(cfg.pruner.policy, num_samples=10)
    assert (cfg.pruner.policy.beta_mean_epochs, policy.beta_mean_epochs, policy.epochs) == ("scored", "scored", 30)
    assert DUAL(10, 0.5).beta_mean_epochs == "scored"
    option = compose_cfg(["pruner=dual", "pruner.policy.beta_mean_epochs=all"]).pruner.policy
    assert instantiate(option, num_samples=10).beta_mean_epochs == "all"


def test_beta_mean_uses_only_the_first_t_epochs():
    rec = memorising_record()
    probs = rec.probs.float()
    scores = dual_scores(probs[:T], 10)
    k = N // 2  # keep 50%: ratio 0.5
    first_t = weighted_sample(beta_weights(probs[:T], scores, 0.5, 4.0), k, torch.Generator().manual_seed(0))
    whole = weighted_sample(beta_weights(probs, scores, 0.5, 4.0), k, torch.Generator().manual_seed(0))
    default = DUAL(N, 0.5, seed=0)
    default.prepare(rec)
    assert torch.equal(default.subset, torch.sort(first_t).values)
    option = DUAL(N, 0.5, seed=0, beta_mean_epochs="all")
    option.prepare(rec)
    assert torch.equal(option.subset, torch.sort(whole).values) and not torch.equal(option.subset, default.subset)
    # pbar numerically: first-T mean of the hard half ~0.2, whole-run ~0.595 (memorised epochs pull it up).
    assert abs(float(probs[:T, : N // 2].mean()) - 0.2) < 0.01
    assert abs(float(probs[:, : N // 2].mean()) - 0.595) < 0.01
