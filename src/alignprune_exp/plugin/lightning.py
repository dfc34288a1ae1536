"""Lightning glue for ``PruningEngine``: a callback that ends each epoch, stops at the budget and checkpoints.

Import it as ``alignprune_exp.plugin.lightning`` (needs ``pip install alignprune-exp[lightning]``); the package's
``__init__`` does not load it, so ``alignprune_exp.plugin`` stays torch-only. See docs/plugin.md, "Lightning".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.plugin.data import PlanBatchSampler
from alignprune_exp.plugin.engine import PruningEngine
from alignprune_exp.plugin.schedule import ProgressLR

__all__ = ["AlignPruneCallback", "LightningPlanSampler", "plan_sampler"]


class LightningPlanSampler(PlanBatchSampler):
    """``engine.batch_sampler`` whose ``len`` is 0 once the budget is spent: Lightning's teardown asks a loader's
    length after the last epoch, where the engine's own sampler raises (no epoch left to plan)."""

    def __len__(self) -> int:
        if self.engine.exhausted and self.engine._plan is None:  # nothing open, nothing left
            return 0
        return super().__len__()


def plan_sampler(engine: PruningEngine, global_batch_size: int) -> LightningPlanSampler:
    """The ``batch_sampler=`` of a LightningModule's ``train_dataloader``: ``engine.batch_sampler`` (same rank
    and batch checks, same batches) with a length Lightning may read after the run."""
    base = engine.batch_sampler(global_batch_size)
    return LightningPlanSampler(engine, base.batch_size, base.rank, base.world_size)


def _world_size(trainer: pl.Trainer) -> int:
    """The run's process count, known before launch: a DDP strategy's cluster world size is set only at fit."""
    return max(int(trainer.world_size), int(trainer.num_nodes) * int(trainer.num_devices))


def _loaders(obj: Any) -> list[DataLoader]:
    """The DataLoaders inside what ``trainer.train_dataloader`` returns (a loader, a list or a dict of them)."""
    if isinstance(obj, DataLoader):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        return [dl for item in obj for dl in _loaders(item)]
    return []


class AlignPruneCallback(pl.Callback):
    """Drives a ``PruningEngine`` inside ``Trainer.fit``: the LightningModule's ``training_step`` returns
    ``engine.update(per_sample_loss, idx)`` and its ``train_dataloader`` returns a DataLoader over
    ``plan_sampler(engine, batch_size)``; this callback does the rest.

    - ``setup`` refuses (one-line ``ConfigError``) the Trainer flags that would change what trains:
      ``use_distributed_sampler=True`` with several processes (Lightning re-wraps the engine's sampler),
      ``reload_dataloaders_every_n_epochs != 1`` (Lightning would keep the first epoch's ``len`` and cut or
      stretch later epochs, whose sizes the pruning changes), ``accumulate_grad_batches != 1`` (the engine scales
      each batch as a whole optimizer step), ``limit_train_batches`` / ``overfit_batches``, and a ``max_epochs``
      too small to spend the budget even at full data (``max_epochs=-1`` is the intended setting).
    - each epoch's start checks the loader holds this engine's ``plan_sampler``; each batch, one ``update``.
    - ``on_train_epoch_end`` calls ``engine.end_epoch(pl_module, reference=..., loss_fn=...)`` (``reference``: a
      loader of clean ``(x, y)`` or a callable, as ``end_epoch``) and sets ``trainer.should_stop`` once the
      budget is spent; ``history`` keeps every epoch's figures.
    - ``state_dict`` / ``load_state_dict`` put the engine's state in Lightning checkpoints, so
      ``trainer.fit(ckpt_path=...)`` from an epoch-end checkpoint resumes exactly.

    Args:
        engine: the run's engine, built on the module's device (same arguments and seed on every rank).
        reference: the clean reference set for DAS (a loader or a callable), or None for loss-ranked presets.
        loss_fn: ``loss_fn(model(x), y, reduction="none")`` of the reference pass.
        log: log ``alignprune/{selected,trained,progress,reference_loss}`` at each epoch's end.
    """

    def __init__(
        self,
        engine: PruningEngine,
        reference: Iterable | Callable | None = None,
        *,
        loss_fn: Callable = F.cross_entropy,
        log: bool = True,
    ) -> None:
        if not isinstance(engine, PruningEngine):
            raise TypeError(f"AlignPruneCallback needs a PruningEngine, got {type(engine).__name__}")
        self.engine, self.reference, self.loss_fn, self.log = engine, reference, loss_fn, log
        self.history: list[dict[str, Any]] = []
        self._cursor: tuple[int, int] | None = None

    # -- the flags the engine depends on ----------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        world = _world_size(trainer)
        if world > 1 and getattr(trainer._accelerator_connector, "use_distributed_sampler", True):
            raise ConfigError(
                f"{world} processes with use_distributed_sampler=True: Lightning would re-wrap the engine's sampler "
                "and change the selection; pass Trainer(use_distributed_sampler=False)"
            )
        if trainer.reload_dataloaders_every_n_epochs != 1:
            raise ConfigError(
                f"reload_dataloaders_every_n_epochs={trainer.reload_dataloaders_every_n_epochs}: Lightning keeps "
                "a loader's first length, but pruned epochs vary; pass Trainer(reload_dataloaders_every_n_epochs=1)"
            )
        if trainer.accumulate_grad_batches != 1:
            raise ConfigError(
                f"accumulate_grad_batches={trainer.accumulate_grad_batches}: engine.update scales each batch as one "
                "optimizer step; use accumulate_grad_batches=1 and a larger batch_sampler(global_batch_size)"
            )
        if trainer.limit_train_batches != 1.0 or trainer.overfit_batches != 0:
            raise ConfigError(
                f"limit_train_batches={trainer.limit_train_batches}, overfit_batches={trainer.overfit_batches}: "
                "the engine plans whole epochs; leave both at their defaults"
            )
        max_epochs = trainer.max_epochs
        if max_epochs is not None and max_epochs != -1:
            # at full data an epoch spends num_samples passes: fewer epochs than this cannot spend the budget
            needed = -(-self.engine.budget.remaining // self.engine.num_samples)
            if max_epochs - trainer.current_epoch < needed:
                raise ConfigError(
                    f"max_epochs={max_epochs} stops before the forward-pass budget is spent (at least {needed} "
                    "more epochs): pass Trainer(max_epochs=-1); the callback stops the run at the budget"
                )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dev, mine = torch.device(pl_module.device), self.engine.device
        if dev.type != mine.type or (mine.index is not None and dev.index != mine.index):
            raise ConfigError(
                f"the engine is on {mine} but the module on {dev}: build the engine with device={str(dev)!r}"
            )
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, ProgressLR) and config.interval != "step":
                raise ConfigError(
                    f"ProgressLR with interval={config.interval!r}: it follows the budget batch by batch; return "
                    '{"scheduler": sched, "interval": "step"} from configure_optimizers'
                )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loaders = _loaders(trainer.train_dataloader)
        ours = [dl for dl in loaders if isinstance(dl.batch_sampler, LightningPlanSampler)]
        if loaders and not any(dl.batch_sampler.engine is self.engine for dl in ours):
            kind = type(loaders[0].batch_sampler).__name__
            raise ConfigError(
                f"the train loader's batch sampler is a {kind}, not this engine's plan_sampler: return "
                "DataLoader(dataset, batch_sampler=plan_sampler(engine, batch_size)) from train_dataloader"
            )

    # -- one batch, one epoch ---------------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._cursor = self.engine.cursor

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        before, (epoch, step) = self._cursor, self.engine.cursor
        if before is not None and (epoch, step) != (before[0], before[1] + 1):
            raise RuntimeError(
                f"training_step ran {step - before[1]} engine.update calls in batch {batch_idx}: "
                "return engine.update(per_sample_loss, idx) from it, once per batch"
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        plan = self.engine._plan
        if plan is None:
            raise RuntimeError("the epoch ended with no engine epoch open: did training_step call engine.update?")
        if not plan.done:
            raise RuntimeError(
                f"Lightning ended epoch {plan.epoch} after {plan.step} of its {plan.num_batches} batches: "
                "leave limit_train_batches, max_steps and max_time unset; the callback stops the run"
            )
        stats = self.engine.end_epoch(pl_module, reference=self.reference, loss_fn=self.loss_fn)
        self.history.append(stats)
        if self.log:
            values = {k: float(stats[k]) for k in ("selected", "trained", "progress", "reference_loss")}
            pl_module.log_dict(
                {f"alignprune/{k}": v for k, v in values.items() if stats[k] is not None},
                on_epoch=True,
                rank_zero_only=True,
            )
        if self.engine.exhausted:
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.engine.exhausted and not trainer.interrupted:
            rank_zero_warn(
                f"training stopped at {self.engine.budget.spent} of {self.engine.budget.total} forward passes: "
                "pass Trainer(max_epochs=-1) and no max_steps/max_time to spend the budget"
            )

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The engine's state (a collective under DDP; Lightning dumps checkpoints on every rank) and the history."""
        return {"engine": self.engine.state_dict(), "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the engine; a mid-epoch state is refused (Lightning resumes its batch count, not the sampler's)."""
        if state_dict["engine"]["plan"] is not None:
            plan = state_dict["engine"]["plan"]
            raise ConfigError(
                f"checkpoint saved inside epoch {plan['epoch']} (batch {plan['step']}): resume from an epoch-end "
                "checkpoint (ModelCheckpoint(every_n_epochs=1)) or use the plain loop for mid-epoch resume"
            )
        self.engine.load_state_dict(state_dict["engine"])
        self.history = list(state_dict.get("history", []))
