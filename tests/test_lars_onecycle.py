"""The paper recipe's optimizer and schedule: InfoBatch's LARS (every parameter adapted) and torch's OneCycleLR
(lr and momentum) as functions of budget progress."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.models.builders import build_model
from alignprune_exp.train.lars import Lars, lars
from alignprune_exp.train.schedule import OneCycle


def test_lars_step_matches_a_hand_computation():
    w0 = torch.tensor([3.0, 4.0])  # ||w|| = 5
    w = nn.Parameter(w0.clone())
    zero = nn.Parameter(torch.zeros(2))  # ||w|| = 0: trust ratio 1
    opt = Lars([w, zero], lr=2.0, momentum=0.9, weight_decay=0.1, eta=1e-3)
    g1 = torch.tensor([30.0, -40.0])  # ||g|| = 50
    w.grad, zero.grad = g1.clone(), torch.tensor([0.5, 20.0])
    opt.step()
    trust = 1e-3 * 5.0 / (50.0 + 0.1 * 5.0)
    d1 = (g1 + 0.1 * w0).clamp(-10, 10)  # [10, -10]: the clamp bites
    assert torch.allclose(w.detach(), w0 - 2.0 * trust * d1)
    assert torch.allclose(zero.detach(), -2.0 * torch.tensor([0.5, 10.0]))
    # Second step: buf = 0.9 * buf + d, and the new trust ratio scales the whole buffer.
    w1 = w.detach().clone()
    g2 = torch.tensor([0.3, 0.4])
    w.grad = g2.clone()
    zero.grad = None
    opt.step()
    trust2 = 1e-3 * w1.norm() / (g2.norm() + 0.1 * w1.norm())
    buf = 0.9 * d1 + (g2 + 0.1 * w1).clamp(-10, 10)
    assert torch.allclose(w.detach(), w1 - 2.0 * trust2 * buf, atol=1e-7)


def test_lars_trust_ratio_is_clamped_at_50():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = Lars([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=1e-3)
    w.grad = torch.tensor([1e-6, 0.0])  # raw ratio 5e-3 / 1e-6 = 5000
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([3.0 - 50 * 1e-6, 4.0]))
    with pytest.raises(ConfigError, match="trust_clip"):
        Lars([w], lr=1.0, trust_clip=0.0)


def test_lars_can_leave_norm_and_bias_unadapted():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = lars(model, lr=1.0, adapt_norm_and_bias=False)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 3]
    assert opt.param_groups[1]["lars"] is False and opt.param_groups[1]["weight_decay"] == 0.0
    assert len(lars(model, lr=1.0).param_groups) == 1


def _bn_relative_moves(opt_name: str, compose_cfg) -> dict[str, float]:
    """||delta p|| / ||p|| of every BatchNorm weight and bias of a CIFAR ResNet-18 over one step at the peak lr 5.2,
    after two steps at OneCycle's starting lr 5.2 / 25 (so zero-initialised parameters have left zero)."""
    torch.manual_seed(0)
    model = build_model("resnet18_cifar", num_classes=10)
    opt = instantiate(compose_cfg([f"optimizer={opt_name}"]).optimizer)(model)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4) % 10
    for lr in (5.2 / 25, 5.2 / 25, 5.2):
        for group in opt.param_groups:
            group["lr"] = lr
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    bn = {
        f"{m_name}.{p_name}"
        for m_name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d)
        for p_name, _ in m.named_parameters()
    }
    return {
        n: float((p.detach() - before[n]).norm() / before[n].norm()) for n, p in model.named_parameters() if n in bn
    }


def test_one_step_at_lr_5_2_barely_moves_batchnorm(compose_cfg, one_thread):
    moves = _bn_relative_moves("lars", compose_cfg)
    assert len(moves) == 2 * 20 and all(math.isfinite(v) for v in moves.values())
    assert max(moves.values()) < 0.05  # InfoBatch's LARS: a fraction of a percent
    timm_moves = _bn_relative_moves("lars_timm", compose_cfg)
    assert max(timm_moves.values()) > 1.0  # timm + filter_bias_and_bn: beyond its own norm
    assert sorted(timm_moves.values())[len(timm_moves) // 2] > 20 * max(moves.values())


@pytest.mark.parametrize("frac", [0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
def test_onecycle_lr_and_momentum_match_torch(frac):
    total = 2001
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=5.2, total_steps=total, pct_start=0.3, div_factor=25, final_div_factor=1e4
    )
    step = round(frac * (total - 1))
    for _ in range(step):
        opt.step()
        ref.step()
    want_lr, want_m = opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]
    mine = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=5.2, momentum=0.9)
    lr = OneCycle().apply(mine, step / (total - 1))
    assert lr == pytest.approx(want_lr, rel=2e-3, abs=1e-6)
    assert mine.param_groups[0]["momentum"] == pytest.approx(want_m, abs=1e-3)


def test_onecycle_momentum_extremes_adam_betas_and_switch_off():
    sched = OneCycle()
    assert (sched.momentum(0.0), sched.momentum(0.3), sched.momentum(1.0)) == pytest.approx((0.95, 0.85, 0.95))
    adam = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3, betas=(0.9, 0.999))
    sched.apply(adam, 0.3)
    assert adam.param_groups[0]["betas"] == pytest.approx((0.85, 0.999))
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    assert OneCycle(cycle_momentum=False).apply(sgd, 0.3) == pytest.approx(1.0)
    assert sgd.param_groups[0]["momentum"] == 0.9
