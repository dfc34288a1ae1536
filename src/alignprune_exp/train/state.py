"""Everything a run needs to continue exactly: model, optimizer, scorer bank, policy, budget and RNG states."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from alignprune_exp.core.safe_load import safe_torch_load
from alignprune_exp.losses.base import Criterion
from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.pruning.base import Policy
from alignprune_exp.runs.durable import atomic_torch_save
from alignprune_exp.scoring.base import Scorer


@dataclass
class RunState:
    """The one place that holds a run's mutable state; ``state_dict`` / ``load_state_dict`` round-trip it.

    Per-sample state (scorer bank, policy weights) is indexed by the training set's dataset index.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scorer: Scorer
    policy: Policy
    budget: ForwardBudget
    shuffle_gen: torch.Generator
    augment_gen: torch.Generator
    criterion: Criterion | None = None
    epoch: int = 0
    reference_fwd: int = 0
    selection_fwd: int = 0

    def state_dict(self) -> dict:
        rng = {
            "shuffle": self.shuffle_gen.get_state(),
            "augment": self.augment_gen.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scorer": self.scorer.state_dict(),
            "policy": self.policy.state_dict(),
            "budget": self.budget.state_dict(),
            "epoch": self.epoch,
            "criterion": self.criterion.state_dict() if self.criterion is not None else {},
            "reference_fwd": self.reference_fwd,
            "selection_fwd": self.selection_fwd,
            "rng": rng,
        }

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.scorer.load_state_dict(sd["scorer"])
        self.policy.load_state_dict(sd["policy"])
        self.budget.load_state_dict(sd["budget"])
        if self.criterion is not None:
            self.criterion.load_state_dict(sd["criterion"])
        self.epoch, self.reference_fwd = int(sd["epoch"]), int(sd["reference_fwd"])
        self.selection_fwd = int(sd.get("selection_fwd", 0))
        self.shuffle_gen.set_state(sd["rng"]["shuffle"])
        self.augment_gen.set_state(sd["rng"]["augment"])
        torch.set_rng_state(sd["rng"]["torch"])
        if "cuda" in sd["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(sd["rng"]["cuda"])

    def save(self, path: str | Path) -> None:
        """Write atomically (temporary file, fsync, rename): a crash mid-write never leaves a truncated file."""
        atomic_torch_save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore from a checkpoint through the restricted loader (no pickle code runs)."""
        self.load_state_dict(safe_torch_load(path))
