"""``ProgressLR``: a torch LR scheduler driven by the engine's budget progress, not by a step count."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.lr_scheduler import LRScheduler

if TYPE_CHECKING:  # only the annotation names the engine
    from alignprune_exp.plugin.engine import PruningEngine


class ProgressLR(LRScheduler):
    """Sets every group's lr to its initial lr x ``factor_fn(engine.progress)`` at each ``step()``.

    A pruned run's number of steps is known only at its end, so step-based schedules (OneCycleLR) cannot be
    sized up front (InfoBatch issue #27); a function of the fraction of the budget spent stays in step with any
    pruning. ``momentum_fn(progress)`` (optional) sets each group's ``momentum`` (SGD) or ``betas[0]`` (Adam). Call
    ``step()`` after each ``optimizer.step()``: the next batch then trains at the progress reached, as the
    project's trainer applies its schedule before each step. ``state_dict`` leaves out the engine and the functions.
    """

    _unsaved = ("optimizer", "engine", "factor_fn", "momentum_fn")

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        engine: PruningEngine,
        factor_fn: Callable[[float], float],
        momentum_fn: Callable[[float], float] | None = None,
        last_epoch: int = -1,
    ) -> None:
        self.engine, self.factor_fn, self.momentum_fn = engine, factor_fn, momentum_fn
        super().__init__(optimizer, last_epoch)

    def _progress(self) -> float:
        return min(max(float(self.engine.progress), 0.0), 1.0)

    def get_lr(self) -> list[float]:
        factor = float(self.factor_fn(self._progress()))
        return [base * factor for base in self.base_lrs]

    def step(self, epoch: int | None = None) -> None:
        if epoch is None:
            super().step()
        else:
            super().step(epoch)
        if self.momentum_fn is None:
            return
        momentum = float(self.momentum_fn(self._progress()))
        for group in self.optimizer.param_groups:
            if "momentum" in group:
                group["momentum"] = momentum
            elif "betas" in group:
                group["betas"] = (momentum, *tuple(group["betas"])[1:])

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._unsaved}
