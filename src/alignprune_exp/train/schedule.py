"""Learning-rate schedules as functions of budget progress, so pruning never desynchronises them.

Step-based schedulers (torch's OneCycleLR) must know the number of steps up front, which a pruned run
does not (InfoBatch issue #27); here the multiplier is a pure function of the fraction of the
forward-pass budget spent, applied before every optimizer step.
"""

from __future__ import annotations

import math

import torch


class LRSchedule:
    """Base: ``factor(progress)`` scales each parameter group's configured (peak) learning rate;
    ``momentum(progress)``, when not None, sets each group's momentum (Adam-style: betas[0])."""

    def factor(self, progress: float) -> float:
        raise NotImplementedError

    def momentum(self, progress: float) -> float | None:
        return None

    def apply(self, optimizer: torch.optim.Optimizer, progress: float) -> float:
        """Set every group's lr to its base lr x factor(progress) (and its momentum); returns the first group's lr."""
        progress = min(max(progress, 0.0), 1.0)
        f, m = self.factor(progress), self.momentum(progress)
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * f
            if m is not None and "momentum" in group:
                group["momentum"] = m
            elif m is not None and "betas" in group:
                group["betas"] = (m, *tuple(group["betas"])[1:])
        return optimizer.param_groups[0]["lr"]


def _cos_interp(start: float, end: float, t: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


class OneCycle(LRSchedule):
    """torch's OneCycleLR (two-phase, cosine) over progress instead of steps, with its defaults: momentum
    cycles inversely to the lr, max_momentum -> base_momentum while the lr rises, back while it falls
    (InfoBatch's CIFAR example). ``cycle_momentum=False`` leaves the optimizer's momentum as configured."""

    def __init__(
        self,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ):
        self.pct_start, self.div_factor, self.final_div_factor = pct_start, div_factor, final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)

    def momentum(self, progress: float) -> float | None:
        if not self.cycle_momentum:
            return None
        if progress < self.pct_start:
            return _cos_interp(self.max_momentum, self.base_momentum, progress / self.pct_start)
        return _cos_interp(
            self.base_momentum, self.max_momentum, (progress - self.pct_start) / max(1e-12, 1 - self.pct_start)
        )

    def factor(self, progress: float) -> float:
        initial = 1.0 / self.div_factor
        final = initial / self.final_div_factor
        if progress < self.pct_start:
            return _cos_interp(initial, 1.0, progress / self.pct_start)
        return _cos_interp(1.0, final, (progress - self.pct_start) / max(1e-12, 1 - self.pct_start))


class MultiStep(LRSchedule):
    """Multiply by ``gamma`` at each milestone, given as fractions of the budget (0.5 = halfway)."""

    def __init__(self, milestones: list[float] = (0.5,), gamma: float = 0.1):
        self.milestones, self.gamma = sorted(float(m) for m in milestones), gamma

    def factor(self, progress: float) -> float:
        return self.gamma ** sum(progress >= m for m in self.milestones)


class Constant(LRSchedule):
    """The configured learning rate throughout."""

    def factor(self, progress: float) -> float:
        return 1.0


class Cosine(LRSchedule):
    """Linear warm-up over the first ``warmup_fraction`` of the budget, then cosine decay to ``min_factor``:
    timm's CosineLRScheduler as used by the ConvNeXt / DeiT / Swin recipes (Table 4), over budget progress.

    Args:
        warmup_fraction: share of the budget spent warming up (5 of 100 epochs = 0.05).
        min_factor: final lr as a fraction of the peak.
        warmup_start_factor: lr at the start of the warm-up as a fraction of the peak.
    """

    def __init__(self, warmup_fraction: float = 0.05, min_factor: float = 0.0, warmup_start_factor: float = 0.0):
        self.warmup_fraction, self.min_factor = float(warmup_fraction), float(min_factor)
        self.warmup_start_factor = float(warmup_start_factor)

    def factor(self, progress: float) -> float:
        w = self.warmup_fraction
        if progress < w:
            return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * progress / w
        return _cos_interp(1.0, self.min_factor, (progress - w) / max(1e-12, 1.0 - w))


class LinearDecay(LRSchedule):
    """The peak lr until ``start_fraction`` of the budget, then linearly down to zero at its end
    (Co-teaching+'s NEWS recipe: Adam at 0.001, decayed linearly from epoch 80 of 200)."""

    def __init__(self, start_fraction: float = 0.4):
        self.start_fraction = float(start_fraction)

    def factor(self, progress: float) -> float:
        if progress <= self.start_fraction:
            return 1.0
        return (1.0 - progress) / max(1e-12, 1.0 - self.start_fraction)
