"""InfoBatch's official-package rules as options: the 10% keep floor and annealing by epochs."""

from __future__ import annotations

import pytest
import torch

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning import InfoBatch

SCORES = torch.arange(1000, dtype=torch.float32)  # mean 499.5: D1 = samples 0..499


def test_r1_prunes_all_of_d1_by_default_and_90_percent_with_the_official_floor():
    idx, w = InfoBatch(1000, prune_prob=1.0, delta=0.875).select(SCORES, 1, progress=0.1)
    assert idx.numel() == 500 and bool((idx >= 500).all()) and torch.equal(w, torch.ones(1000))
    floor = InfoBatch(1000, prune_prob=1.0, delta=0.875, min_keep=0.1)
    idx, w = floor.select(SCORES, 1, progress=0.1)
    kept_low = idx[idx < 500]
    assert kept_low.numel() == 50 and idx.numel() == 550  # 90% of D1 pruned, 10% kept
    assert floor.last_pruned_fraction == pytest.approx(0.45)
    assert torch.allclose(w[kept_low], torch.full((50,), 10.0)) and float(w[idx].sum()) == pytest.approx(1000.0)
    # Below the floor's reach (r = 0.5) the floor changes nothing.
    a = InfoBatch(1000, prune_prob=0.5, delta=0.875, seed=3).select(SCORES, 1, progress=0.1)
    b = InfoBatch(1000, prune_prob=0.5, delta=0.875, seed=3, min_keep=0.1).select(SCORES, 1, progress=0.1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].numel() == 750


def test_anneal_by_epochs_ignores_budget_progress():
    by_epochs = InfoBatch(1000, prune_prob=0.5, delta=0.875, num_epochs=8, anneal_by="epochs")
    by_budget = InfoBatch(1000, prune_prob=0.5, delta=0.875, num_epochs=8)
    # epoch 6 of 8: 6 + 1 > 8 * 0.875 = 7 is False -> prune; epoch 7 anneals, whatever the budget says.
    assert by_epochs.select(SCORES, 6, progress=0.95)[0].numel() == 750
    assert by_epochs.select(SCORES, 7, progress=0.1)[0].numel() == 1000 and by_epochs.stats["annealing"]
    assert by_budget.select(SCORES, 7, progress=0.1)[0].numel() == 750
    assert by_budget.select(SCORES, 6, progress=0.95)[0].numel() == 1000
    with pytest.raises(ConfigError, match="anneal_by"):
        InfoBatch(10, prune_prob=0.5, delta=0.875, anneal_by="steps")
    with pytest.raises(ConfigError, match="num_epochs"):
        InfoBatch(10, prune_prob=0.5, delta=0.875, anneal_by="epochs")


@pytest.mark.parametrize("pruner", ["infobatch", "infobatch_das"])
def test_official_rules_are_config_switches(compose_cfg, pruner):
    cfg = compose_cfg([f"pruner={pruner}"])
    default = instantiate(cfg.pruner.policy, num_samples=10)
    assert (default.min_keep, default.anneal_by, default.num_epochs) == (0.0, "budget", 200)
    cfg = compose_cfg([f"pruner={pruner}", "pruner.policy.min_keep=0.1", "pruner.policy.anneal_by=epochs"])
    official = instantiate(cfg.pruner.policy, num_samples=10)
    assert (official.min_keep, official.anneal_by, official.num_epochs) == (0.1, "epochs", 200)
