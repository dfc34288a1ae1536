"""What the records say was pruned, what ranked each epoch, and how much fell below the score mean."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alignprune_exp.pipeline.build import build_trainer
from alignprune_exp.report.tables import efficiency_rows
from alignprune_exp.scoring import DASScorer, LossScorer, Scorer, SecondOrderScorer
from tests.conftest import TINY_DIGITS


def fit(compose_cfg, *overrides):
    """A tiny digits run; returns (summary, epoch records, the scores each epoch's select ranked)."""
    trainer, _ = build_trainer(compose_cfg([*TINY_DIGITS, *overrides]))
    seen = []
    trainer.callbacks.append(lambda rec, extras: seen.append(extras["scores"].clone()))
    summary = trainer.fit()
    return summary, trainer.history, seen


def test_budget_cut_is_untrained_but_not_pruned_by_the_policy(compose_cfg):
    # neutral DAS: everyone scores 0 early, nothing is below the mean, so only the budget cuts the last epoch
    s, recs, _ = fit(
        compose_cfg, "pruner=infobatch_das", "pruner.scorer.cold_start=neutral", "pruner.scorer.window=3", "epochs=3"
    )
    kept = [r["prune/kept_fraction"] for r in recs]
    assert kept[:2] == [1.0, 1.0] and kept[2] == pytest.approx(0.1, abs=0.01)
    assert [r["prune/policy_pruned_fraction"] for r in recs] == [0.0, 0.0, 0.0]
    assert [r["prune/untrained_fraction"] for r in recs] == pytest.approx([0.0, 0.0, 1 - kept[2]])
    assert s["avg_policy_pruned_fraction"] == 0.0
    assert s["avg_untrained_fraction"] == pytest.approx((1 - kept[2]) / 3)
    assert s["avg_untrained_fraction"] == pytest.approx(0.3, abs=0.01)  # the r30 budget, all of it untrained
    assert "avg_pruned_fraction" not in s
    assert [r["score/cold_start"] for r in recs] == [False, False, False]
    assert [r["prune/below_mean_fraction"] for r in recs[:2]] == [0.0, 0.0]  # all-zero scores: none below


def test_cold_start_epochs_are_kept_out_of_the_das_auroc(compose_cfg):
    s, recs, scores = fit(compose_cfg, "pruner=infobatch_das", "pruner.scorer.window=3", "epochs=6")
    cold = [r["score/cold_start"] for r in recs]
    # three observed epochs with a reference value before DAS takes over; the select of epoch 3 is DAS's
    assert cold[:3] == [True, True, True] and not any(cold[3:])
    pruning = [r for r in recs if not r["prune/annealing"]]
    own = [r["score/noise_auroc"] for r in pruning if not r["score/cold_start"]]
    loss_ranked = [r["score/noise_auroc"] for r in pruning if r["score/cold_start"]]
    assert own and loss_ranked
    assert s["mean_score_noise_auroc"] == pytest.approx(np.mean(own))
    assert s["mean_cold_start_noise_auroc"] == pytest.approx(np.mean(loss_ranked))
    everything = np.mean(own + loss_ranked)  # the figure before: cold-start loss epochs mixed into DAS's
    assert abs(s["mean_score_noise_auroc"] - everything) > 1e-6
    # below-mean share, from the very scores each select ranked (InfoBatch's rule: strictly below the mean)
    for r, sc in zip(recs, scores):
        sc = sc.double()
        assert r["prune/below_mean_fraction"] == pytest.approx((sc < sc.mean()).double().mean().item())
    below = [r["prune/below_mean_fraction"] for r in pruning if not r["score/cold_start"]]
    assert s["mean_below_mean_fraction"] == pytest.approx(np.mean(below))
    assert 0.0 < s["mean_below_mean_fraction"] < 1.0


def test_loss_scorer_epochs_are_all_its_own(compose_cfg):
    s, recs, scores = fit(compose_cfg, "pruner=infobatch", "epochs=4", "seed=0")
    assert not any(r["score/cold_start"] for r in recs)
    assert math.isnan(s["mean_cold_start_noise_auroc"])
    pruning = [r for r in recs if not r["prune/annealing"]]
    assert s["mean_score_noise_auroc"] == pytest.approx(np.mean([r["score/noise_auroc"] for r in pruning]))
    # epoch 0: every score is the init value, none below; later a real share, which InfoBatch's policy logs too
    assert recs[0]["prune/below_mean_fraction"] == 0.0
    for r, sc in zip(recs[1:], scores[1:]):
        sc = sc.double()
        assert r["prune/below_mean_fraction"] == pytest.approx((sc < sc.mean()).double().mean().item())
        assert 0.0 < r["prune/below_mean_fraction"] < 1.0
    # InfoBatch prunes only below-mean samples: the policy's pruned share never exceeds that set
    for r in recs:
        assert r["prune/policy_pruned_fraction"] <= r["prune/below_mean_fraction"] + 1e-9
    assert s["avg_untrained_fraction"] >= s["avg_policy_pruned_fraction"] > 0.0


def test_scorers_declare_whether_a_cold_start_ranks():
    assert Scorer.ranks_by_cold_start.fget(LossScorer(10)) is False
    assert LossScorer(10).ranks_by_cold_start is False
    assert SecondOrderScorer(10).ranks_by_cold_start is False
    assert DASScorer(10, window=3).ranks_by_cold_start is True  # cold_start="loss": no trajectories yet
    assert DASScorer(10, window=3, cold_start="neutral").ranks_by_cold_start is False


def test_efficiency_table_reads_the_policy_pruned_fraction_and_older_rows():
    rows = pd.DataFrame(
        {
            "setting": ["s", "s"],
            "noise": ["sym0.5", "sym0.5"],
            "ratio": ["r30", "r30"],
            "method": ["infobatch", "infobatch"],
            "final_test_acc": [50.0, 60.0],
            "wall_time_s": [60.0, 120.0],
            "avg_policy_pruned_fraction": [0.2, np.nan],
            "avg_untrained_fraction": [0.35, np.nan],
            "avg_pruned_fraction": [np.nan, 0.4],  # a row written before the rename
        }
    )
    out = efficiency_rows(rows)
    assert out["pruned"].tolist() == pytest.approx([0.3])  # (0.2 + 0.4) / 2: not the untrained 0.35
