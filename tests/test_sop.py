"""SOP+ criterion against its formula, its per-sample variables' optimizer, and the strong view."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alignprune_exp.config.instantiate import instantiate
from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data.strong_augment import StrongAugment
from alignprune_exp.losses.sop_plus import SOPPlus

N, C = 10, 3


def reference_loss(z, z2, y, u_rows, v_rows, lam_c, lam_b):
    """The spec's formula (static_baselines §11) written out per term, on dense tensors."""
    Y = F.one_hot(y, C).float()
    s = torch.clamp(u_rows**2 * Y, 0, 1)
    t = torch.clamp(v_rows**2 * (1 - Y), 0, 1)
    q = torch.clamp(torch.softmax(z, 1) + s - t.detach(), min=1e-4)
    q = torch.clamp(q / q.sum(1, keepdim=True), 1e-4, 1)
    ce = -(Y * torch.log(q)).sum(1)
    mse = ((F.one_hot(z.detach().argmax(1), C).float() + s - t - Y) ** 2).sum(1)
    p = torch.softmax(z.detach(), 1)
    kl = (p * (torch.log(p) - torch.log_softmax(z2, 1))).sum(1)
    bal = -(1.0 / C) * torch.log(torch.clamp(q.mean(0), 1e-4, 1)).sum()
    return ce + mse + lam_c * kl, lam_b * bal


def make(lr_u=10.0, lr_v=100.0):
    crit = SOPPlus(N, C, lr_u=lr_u, lr_v=lr_v, lambda_c=0.9, lambda_b=0.1, seed=0)
    g = torch.Generator().manual_seed(1)
    crit.load_state_dict({"u": 0.5 * torch.randn(N, 1, generator=g), "v": 0.5 * torch.randn(N, C, generator=g)})
    return crit


def batch():
    g = torch.Generator().manual_seed(2)
    return (
        torch.randn(4, C, generator=g),
        torch.randn(4, C, generator=g),
        torch.tensor([0, 2, 2, 1]),
        torch.tensor([1, 4, 6, 9]),
    )


def test_loss_equals_its_formula_on_a_small_batch():
    crit = make()
    z, z2, y, idx = batch()
    per, bal = reference_loss(z, z2, y, crit.u.detach()[idx], crit.v.detach()[idx], 0.9, 0.1)
    assert crit.per_sample(z, y, idx, z2).tolist() == pytest.approx(per.tolist(), rel=1e-5)
    assert crit.batch_term(z, y, idx).item() == pytest.approx(bal.item(), rel=1e-5)
    no_strong, _ = reference_loss(z, z, y, crit.u.detach()[idx], crit.v.detach()[idx], 0.0, 0.1)
    assert crit.per_sample(z, y, idx).tolist() == pytest.approx(no_strong.tolist(), rel=1e-5)
    assert crit.per_sample(z, y).tolist() == pytest.approx(F.cross_entropy(z, y, reduction="none").tolist())


def test_step_moves_only_the_batch_rows_by_plain_sgd():
    crit = make(lr_u=10.0, lr_v=100.0)
    z, z2, y, idx = batch()
    z.requires_grad_()
    u0, v0 = crit.u.detach().clone(), crit.v.detach().clone()
    # expected gradients from the dense formula
    u_ref, v_ref = u0.clone().requires_grad_(), v0.clone().requires_grad_()
    per, bal = reference_loss(z, z2, y, u_ref[idx], v_ref[idx], 0.9, 0.1)
    (per.mean() + bal).backward()
    crit.zero_grad()
    (crit.per_sample(z, y, idx, z2).mean() + crit.batch_term(z, y, idx)).backward()
    crit.step()
    out = torch.ones(N, dtype=torch.bool)
    out[idx] = False
    assert torch.equal(crit.u.detach()[out], u0[out]) and torch.equal(crit.v.detach()[out], v0[out])
    assert torch.allclose(crit.u.detach(), u0 - 10.0 * u_ref.grad, atol=1e-6)
    assert torch.allclose(crit.v.detach(), v0 - 100.0 * v_ref.grad, atol=1e-5)
    assert not torch.equal(crit.u.detach()[idx], u0[idx])
    opt = crit.optimizer.param_groups
    assert all(g["momentum"] == 0 and g["weight_decay"] == 0 for g in opt)


def test_network_gradient_matches_and_state_round_trips():
    crit = make()
    z, z2, y, idx = batch()
    za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
    z2a, z2b = z2.clone().requires_grad_(), z2.clone().requires_grad_()
    per, bal = reference_loss(za, z2a, y, crit.u.detach()[idx], crit.v.detach()[idx], 0.9, 0.1)
    (per.mean() + bal).backward()
    (crit.per_sample(zb, y, idx, z2b).mean() + crit.batch_term(zb, y, idx)).backward()
    assert torch.allclose(za.grad, zb.grad, atol=1e-6) and torch.allclose(z2a.grad, z2b.grad, atol=1e-6)
    other = SOPPlus(N, C, seed=5).to("cpu")
    other.load_state_dict(crit.state_dict())
    assert torch.equal(other.u.detach(), crit.u.detach()) and torch.equal(other.v.detach(), crit.v.detach())
    with pytest.raises(ValueError):
        other.load_state_dict({"u": torch.zeros(3, 1), "v": torch.zeros(N, C)})
    with pytest.raises(ConfigError):
        SOPPlus(N, C, lr_u=-1)


def test_initial_variables_are_tiny_and_seeded():
    a, b = SOPPlus(N, C, seed=3), SOPPlus(N, C, seed=3)
    assert torch.equal(a.u, b.u) and a.v.abs().max() < 1e-7 and a.u.shape == (N, 1) and a.v.shape == (N, C)
    assert a.needs_strong_view and not SOPPlus(N, C, lambda_c=0.0).needs_strong_view


def test_sop_plus_config_builds(compose_cfg):
    cfg = compose_cfg(["loss=sop_plus"])
    crit = instantiate(cfg.loss, num_samples=N, num_classes=C)
    assert (crit.lr_u, crit.lr_v, crit.lambda_c, crit.lambda_b) == (1.0, 10.0, 0.9, 0.1)  # CIFAR-100 (the default)
    cfg = compose_cfg(["+experiment=tableD"], hydra_config=True)
    assert (cfg.loss.lr_u, cfg.loss.lr_v, cfg.warmup.epochs, cfg.dataset.name) == (1.0, 10.0, 30, "cifar100")
    assert cfg.hydra.sweeper.params.pruner == "prune4rel,infobatch,infobatch_das"
    cfg = compose_cfg(["+experiment=tableE", "pruner=prune4rel"], hydra_config=True)
    assert cfg.pruner.policy.tau == 0.975 and cfg.dataset.name == "cifar10" and cfg.warmup.epochs == 10
    assert (cfg.loss.lr_u, cfg.loss.lr_v) == (10.0, 10.0)
    assert cfg.hydra.sweeper.params.noise.split(",")[:2] == ["real_aggre", "real_worst"]


def test_strong_augment_is_seeded_and_cuts_out():
    x = torch.full((6, 3, 32, 32), 200, dtype=torch.uint8)
    aug = StrongAugment((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), crop_padding=0, hflip=True, cutout=16)
    a = aug(x, generator=torch.Generator().manual_seed(0))
    b = aug(x, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.dtype == torch.float32 and torch.equal(a, b)
    holes = (a == 0).all(1)  # normalised zero = the dataset mean
    assert holes.flatten(1).sum(1).min() >= 8 * 8 and holes.flatten(1).sum(1).max() <= 16 * 16
    assert a.flatten(1).std(1).gt(0).all()  # per-image jitter and holes
    assert torch.equal(aug(x, train=False), aug.normalize(x))
