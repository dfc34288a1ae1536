"""``anneal_by=epochs`` counts the epochs a budget-matched run actually trains, not the full-data ``epochs``."""

from __future__ import annotations

import pytest
import torch

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.pruning import InfoBatch
from alignprune_exp.pruning import base as pruning_base

N, EPOCHS, DELTA = 1000, 200, 0.875


def simulate(policy, ratio: float) -> tuple[int, int]:
    """Run the trainer's budget loop (select, grant, spend) with loss-like scores: (epochs trained, annealing)."""
    budget = ForwardBudget.from_ratio(EPOCHS, N, ratio)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(N, generator=g)
    epoch = annealing = 0
    while not budget.exhausted and epoch < 10 * EPOCHS:
        scores = base * (1.0 + 0.1 * torch.rand(N, generator=g)) / (1 + epoch / 50)
        indices, _ = policy.select(scores, epoch, progress=budget.progress)
        budget.spend(budget.grant(len(indices)))
        annealing += bool(policy.stats["annealing"])
        epoch += 1
    return epoch, annealing


@pytest.mark.parametrize("ratio", [0.5, 0.7])
def test_epoch_rule_anneals_the_last_share_of_the_epochs_trained(ratio):
    policy = InfoBatch(N, 0.5, DELTA, num_epochs=EPOCHS, anneal_by="epochs", budget_fraction=1 - ratio)
    epochs, annealing = simulate(policy, ratio)
    assert epochs > 1.2 * (1 - ratio) * EPOCHS  # InfoBatch keeps ~75% a pruning epoch: more epochs than budget
    assert annealing > 0
    assert abs(annealing - (1 - DELTA) * epochs) <= 1.0, (epochs, annealing)
    # Without the budget the rule counts 200 epochs the run never reaches: no annealing at all (the old rule).
    old = InfoBatch(N, 0.5, DELTA, num_epochs=EPOCHS, anneal_by="epochs")
    assert simulate(old, ratio)[1] == 0


def test_the_budget_rule_is_unchanged():
    by_budget = InfoBatch(N, 0.5, DELTA, num_epochs=EPOCHS, budget_fraction=0.5)
    epochs, annealing = simulate(by_budget, 0.5)
    ref_epochs, ref_annealing = simulate(InfoBatch(N, 0.5, DELTA, num_epochs=EPOCHS), 0.5)
    assert (epochs, annealing) == (ref_epochs, ref_annealing) and annealing == 12


def test_unpruned_run_anneals_from_delta_x_t():
    # Full data every epoch: progress = e / T, R = T - e; annealing from epoch delta x T on (InfoBatch's rule
    # wherever delta x T is whole: 8 epochs -> 7, 200 -> 175; 10 epochs: from 9, InfoBatch from 8).
    for t, first in ((8, 7), (10, 9), (200, 175)):
        flags = [pruning_base.is_annealing_by_epochs(e, DELTA, e / t, float(t)) for e in range(t)]
        assert flags == [False] * first + [True] * (t - first)
    assert [pruning_base.is_annealing(e, DELTA, num_epochs=200) for e in (174, 175)] == [False, True]
    # Budget of 100 full-data epochs (r50): at epoch 126 with 20 epochs left, 126 >= 0.875 x 146 = 127.75 is
    # False; at epoch 128 with 18.1 left, 128 >= 0.875 x 146.1 = 127.84 anneals.
    assert not pruning_base.is_annealing_by_epochs(126, DELTA, 1 - 20 / 100, 100.0)
    assert pruning_base.is_annealing_by_epochs(128, DELTA, 1 - 18.1 / 100, 100.0)


@pytest.mark.parametrize(("ratio", "value"), [("r50", 0.5), ("r70", 0.7)])
def test_composed_epoch_rule_anneals_a_budget_matched_run(compose_cfg, ratio, value):
    # The official-rule switch as a run composes it: before the fix num_epochs = 200 and a 129- or 78-epoch
    # run never reached epoch 175, so it never annealed.
    cfg = compose_cfg(["pruner=infobatch", f"ratio={ratio}", "pruner.policy.anneal_by=epochs"])
    epochs, annealing = simulate(instantiate(cfg.pruner.policy, num_samples=N), value)
    assert cfg.epochs == EPOCHS and annealing > 0
    assert abs(annealing - (1 - DELTA) * epochs) <= 1.0, (epochs, annealing)


@pytest.mark.parametrize(("ratio", "expected"), [("r50", 0.5), ("r70", 0.3)])
def test_infobatch_configs_pass_the_budget_fraction(compose_cfg, ratio, expected):
    for pruner in ("infobatch", "infobatch_das", "infobatch_das_expanding"):
        cfg = compose_cfg([f"pruner={pruner}", f"ratio={ratio}", "pruner.policy.anneal_by=epochs"])
        policy = instantiate(cfg.pruner.policy, num_samples=10)
        assert policy.budget_fraction == pytest.approx(expected) and policy.num_epochs == cfg.epochs
