"""The shared trainer: forward-pass budget, LR schedule over it, augmentation, exact state round trip."""

from __future__ import annotations

import math

import pytest
import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data.augment import BatchAugment
from alignprune_exp.pipeline.build import build_trainer
from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.train.schedule import Constant, MultiStep, OneCycle
from tests.conftest import TINY_DIGITS


def test_budget_counts_and_ratio():
    b = ForwardBudget.from_ratio(epochs=10, num_samples=1000, ratio=0.3)
    assert (b.total, b.full) == (7000, 10000)
    assert b.grant(8000) == 7000
    b.spend(3500)
    assert b.progress == pytest.approx(0.5) and b.grant(8000) == 3500
    b.spend(3500)
    assert b.exhausted and b.achieved_ratio == pytest.approx(0.3)
    with pytest.raises(ConfigError):
        ForwardBudget.from_ratio(epochs=10, num_samples=10, ratio=1.0)


def test_onecycle_matches_torch_onecycle_shape():
    sched = OneCycle(pct_start=0.3, div_factor=25, final_div_factor=1e4)
    assert sched.factor(0.0) == pytest.approx(1 / 25)
    assert sched.factor(0.3) == pytest.approx(1.0)
    assert sched.factor(1.0) == pytest.approx(1 / 25 / 1e4)
    # torch's OneCycleLR over 1000 steps visits the same values at the same fractions.
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1.0, total_steps=1001, pct_start=0.3, div_factor=25, final_div_factor=1e4, cycle_momentum=False
    )
    lrs = []
    for _ in range(1001):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    for step in (0, 150, 300, 600, 1000):
        assert sched.factor(step / 1000) == pytest.approx(lrs[step], rel=0.02, abs=1e-6)


def test_multistep_and_apply():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.02)
    sched = MultiStep(milestones=[0.5], gamma=0.1)
    assert sched.apply(opt, 0.49) == pytest.approx(0.02)
    assert sched.apply(opt, 0.5) == pytest.approx(0.002)
    assert Constant().apply(opt, 0.9) == pytest.approx(0.02)


def test_augment_crop_flip_is_a_shifted_copy():
    aug = BatchAugment(mean=(0.0,), std=(1.0,), crop_padding=2, hflip=True)
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = aug.random_crop_flip(x, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)
    norm = aug(x, g, train=False)
    assert torch.allclose(norm, x.float() / 255)


def test_last_single_sample_batch_is_merged(compose_cfg):
    trainer, _ = build_trainer(compose_cfg([*TINY_DIGITS, "batch_size=10"]))
    policy = trainer.state.policy
    policy.select = lambda *a, **kw: (torch.arange(21), torch.ones(trainer.data.num_samples))
    plan = trainer.open_plan()
    assert [b - a for a, b in plan.bounds] == [10, 11]
    trainer.train_epoch(plan)
    assert plan.step == 2 and trainer.state.budget.spent == 21


@pytest.mark.parametrize("pruner", ["full", "random_dynamic", "infobatch", "infobatch_das"])
@pytest.mark.parametrize("ratio", ["r30", "r70"])
def test_every_pruner_lands_on_the_target_ratio(compose_cfg, pruner, ratio):
    # 12 epochs: even at r70 the DAS bank has 3 observations per sample before the budget ends.
    trainer, _ = build_trainer(
        compose_cfg(
            [
                *TINY_DIGITS,
                f"pruner={pruner}",
                f"ratio={ratio}",
                "epochs=12",
                "pruner.scorer.window=3" if pruner.endswith("das") else "seed=0",
            ]
        )
    )
    summary = trainer.fit()
    target = float(ratio[1:]) / 100
    assert abs(summary["achieved_ratio"] - target) <= 0.02
    assert summary["train_fwd"] == trainer.state.budget.total
    if pruner == "full":
        assert summary["avg_policy_pruned_fraction"] == 0.0
        assert summary["epochs_run"] == math.ceil(12 * (1 - target))
    if pruner in ("infobatch", "infobatch_das"):
        assert summary["avg_policy_pruned_fraction"] > 0.0


def test_state_round_trip_resumes_exactly(compose_cfg, tmp_path):
    cfg = compose_cfg(
        [
            *TINY_DIGITS,
            "pruner=infobatch_das",
            "pruner.scorer.window=3",
            "model=small_cnn",
            "model.width=8",
            "model.depth=2",
        ]
    )
    a, _ = build_trainer(cfg)
    for _ in range(3):
        a.run_epoch()
    a.state.save(tmp_path / "state.pt")
    b, _ = build_trainer(cfg)
    b.state.load(tmp_path / "state.pt")
    assert b.state.epoch == 3 and b.state.budget.spent == a.state.budget.spent
    torch.testing.assert_close(b.state.scorer.scores(), a.state.scorer.scores())
    ra, rb = a.run_epoch(), b.run_epoch()
    assert ra["prune/kept_fraction"] == rb["prune/kept_fraction"]
    assert ra["train/loss"] == pytest.approx(rb["train/loss"], rel=1e-6)
    for pa, pb in zip(a.state.model.parameters(), b.state.model.parameters()):
        torch.testing.assert_close(pa, pb)
