"""LARS with the semantics of InfoBatch's CIFAR example (the paper's CIFAR recipe, Table A).

InfoBatch's ``examples/lars.py`` as its ``cifar_example.py`` builds it, ``Lars(net.parameters(), ...)``:
every parameter (BatchNorm weights and biases too) is adapted. Per parameter w with gradient g:

    trust = eta * ||w|| / (||g|| + wd * ||w|| + eps), clamped to [0, trust_clip]; 1 where ||w|| or ||g|| is 0
    d     = clamp(g + wd * w, -grad_clip, grad_clip)
    buf   = momentum * buf + d                     (buf = d on the first step)
    w    -= lr * trust * buf

The trust ratio uses the raw gradient's norm and scales the whole momentum buffer. timm's ``Lars`` with
``filter_bias_and_bn`` (``optimizer=lars_timm``) instead leaves norm and bias parameters unadapted at the raw lr.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from alignprune_exp.core.errors import ConfigError


class Lars(torch.optim.Optimizer):
    """LARS over parameter groups; a group with ``lars=False`` gets neither trust ratio nor weight decay.

    Args:
        params: parameters or parameter-group dicts.
        lr: peak learning rate (schedules rescale it).
        momentum: momentum factor m of ``buf = m * buf + d`` (OneCycle may cycle it).
        weight_decay: L2 coefficient added to the gradient (and in the trust-ratio denominator).
        eta: LARS coefficient (the reference's ``eeta``).
        eps: added to the trust-ratio denominator.
        trust_clip: upper clamp of the trust ratio (lower clamp 0).
        grad_clip: element-wise clamp of the decayed gradient to [-grad_clip, grad_clip]; null for none.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 1e-3,
        eps: float = 0.0,
        trust_clip: float = 50.0,
        grad_clip: float | None = 10.0,
    ):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay), ("eps", eps)):
            if float(value) < 0:
                raise ConfigError(f"LARS {name} must be >= 0, got {value}")
        if float(eta) <= 0 or float(trust_clip) <= 0 or (grad_clip is not None and float(grad_clip) <= 0):
            raise ConfigError(f"LARS eta, trust_clip and grad_clip must be > 0, got {eta}, {trust_clip}, {grad_clip}")
        defaults = dict(
            lr=float(lr),
            momentum=float(momentum),
            weight_decay=float(weight_decay),
            eta=float(eta),
            eps=float(eps),
            trust_clip=float(trust_clip),
            grad_clip=None if grad_clip is None else float(grad_clip),
            lars=True,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            wd, lars = group["weight_decay"], group["lars"]
            if lars:
                w_norm = torch.stack(torch._foreach_norm(params)).float()
                g_norm = torch.stack(torch._foreach_norm(grads)).float()
                ratio = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                trust = torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
                scale = (-group["lr"] * trust.clamp(0.0, group["trust_clip"])).tolist()
                d = torch._foreach_add(grads, params, alpha=wd) if wd else [g.clone() for g in grads]
            else:
                scale = [-group["lr"]] * len(params)
                d = [g.clone() for g in grads]
            if group["grad_clip"] is not None:
                torch._foreach_clamp_min_(d, -group["grad_clip"])
                torch._foreach_clamp_max_(d, group["grad_clip"])
            if group["momentum"]:
                bufs = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_add_(bufs, d)
                d = bufs
            torch._foreach_add_(params, torch._foreach_mul(d, scale))
        return loss


def _norm_and_bias_params(model: nn.Module) -> set[int]:
    """ids of normalisation-layer parameters and of every other ``bias``."""
    norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    ids = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    return ids | {id(p) for name, p in model.named_parameters() if name.endswith("bias")}


def lars(
    model: nn.Module,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    eta: float = 1e-3,
    eps: float = 0.0,
    trust_clip: float = 50.0,
    grad_clip: float | None = 10.0,
    adapt_norm_and_bias: bool = True,
) -> Lars:
    """LARS over ``model``'s trainable parameters (``optimizer=lars``).

    ``adapt_norm_and_bias=True``: one group, every parameter adapted and decayed (InfoBatch's CIFAR example).
    False: norm and bias parameters in a second group with no trust ratio and no weight decay (the same file's
    ``create_optimizer_lars(bn_bias_separately=True)``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if adapt_norm_and_bias:
        groups = [{"params": params}]
    else:
        skip = _norm_and_bias_params(model)
        groups = [
            {"params": [p for p in params if id(p) not in skip]},
            {"params": [p for p in params if id(p) in skip], "weight_decay": 0.0, "lars": False},
        ]
        groups = [g for g in groups if g["params"]]
    return Lars(
        groups,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        eta=eta,
        eps=eps,
        trust_clip=trust_clip,
        grad_clip=grad_clip,
    )
