"""One epoch's plan: the shuffled, budget-cut selection, its global batches and what has trained so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from alignprune_exp.core.distributed import Dist
from alignprune_exp.plugin.collect import AllGather, gather_pairs


def batch_bounds(n: int, batch_size: int, world_size: int = 1) -> list[tuple[int, int]]:
    """[start, stop) of each global batch over ``n`` plan positions.

    As the trainer's ``batches``, a final batch of one sample joins the previous one (BatchNorm); with several
    ranks a final batch smaller than the world size joins it too, so no rank ever gets an empty part (the
    trainer would hand such a rank an empty batch, which a DataLoader cannot collate and DDP would wait on).
    """
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < max(2, world_size):
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


@dataclass
class EpochPlan:
    """The epoch's training order (global, identical on every rank), per-sample weights and the trained log.

    ``step`` counts the global batches trained (``update`` calls); ``seen``/``losses`` hold this rank's
    (index, loss) pairs on the device, ``prefix`` the pairs of every rank already gathered (by a mid-epoch
    ``state_dict``); ``bad`` is a device flag set when an ``update`` got indices other than the plan's.
    """

    epoch: int
    indices: torch.Tensor
    weights: torch.Tensor
    selected: int
    annealing: bool
    batch_size: int
    world_size: int = 1
    step: int = 0
    seen: list[torch.Tensor] = field(default_factory=list)
    losses: list[torch.Tensor] = field(default_factory=list)
    prefix: tuple[torch.Tensor, torch.Tensor] | None = None
    bad: torch.Tensor | None = None
    bounds: list[tuple[int, int]] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    restored: bool = False  # loaded from a state: one iteration may find every batch trained
    scores: torch.Tensor | None = None  # the scores that ranked this selection (not kept in a state)

    def __post_init__(self) -> None:
        self.order = self.indices.tolist()  # the sampler's lists, read once per epoch
        if self.bad is None:
            self.bad = torch.zeros((), dtype=torch.bool, device=self.indices.device)
        self.reslice(self.batch_size, self.world_size)

    @property
    def num_batches(self) -> int:
        return len(self.bounds)

    @property
    def done(self) -> bool:
        return self.step >= self.num_batches

    def reslice(self, batch_size: int, world_size: int) -> None:
        """Cut the plan into global batches of ``batch_size`` for ``world_size`` ranks (the trained ones stay)."""
        bounds = batch_bounds(len(self.order), batch_size, world_size)
        if self.step and (batch_size != self.batch_size or self.step > len(bounds)):
            raise ValueError(
                f"epoch {self.epoch} trained {self.step} batches of {self.batch_size}: "
                f"resume it with batch_sampler({self.batch_size}), not {batch_size}"
            )
        self.batch_size, self.world_size, self.bounds = int(batch_size), int(world_size), bounds

    def part(self, step: int, rank: int) -> tuple[int, int]:
        """[lo, hi) plan positions of ``rank``'s contiguous part of global batch ``step`` (``Dist.part_bounds``)."""
        start, stop = self.bounds[step]
        lo, hi = Dist(rank, self.world_size).part_bounds(stop - start)
        return start + lo, start + hi

    def local_batch(self, step: int, rank: int) -> list[int]:
        lo, hi = self.part(step, rank)
        return self.order[lo:hi]

    def check(self, idx: torch.Tensor, lo: int, hi: int) -> None:
        """Flag (on the device, without a host sync) indices other than the plan's positions [lo, hi)."""
        self.bad.logical_or_((idx != self.indices[lo:hi]).any())

    def record(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        """Buffer one trained batch on the device."""
        self.seen.append(idx)
        self.losses.append(losses.detach())
        self.step += 1

    def gather(self, all_gather: AllGather | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's (index, loss) pairs trained so far; keeps them as the prefix and clears the local log."""
        device = self.indices.device
        mine_i = torch.cat(self.seen) if self.seen else torch.empty(0, dtype=torch.int64, device=device)
        empty = self.prefix[1].dtype if self.prefix is not None else torch.float32  # the same on every rank
        mine_l = torch.cat(self.losses) if self.losses else torch.empty(0, dtype=empty, device=device)
        new_i, new_l = gather_pairs(mine_i, mine_l, all_gather)
        if self.prefix is not None:
            new_i, new_l = torch.cat([self.prefix[0], new_i]), torch.cat([self.prefix[1].to(new_l.dtype), new_l])
        self.prefix, self.seen, self.losses = (new_i, new_l), [], []
        return new_i, new_l

    def state_dict(self, all_gather: AllGather | None = None) -> dict[str, Any]:
        """The plan, the cursor and every rank's trained pairs on the CPU (a collective under DDP)."""
        seen, losses = self.gather(all_gather)
        return {
            "epoch": self.epoch,
            "indices": self.indices.cpu(),
            "weights": self.weights.cpu(),
            "selected": self.selected,
            "annealing": self.annealing,
            "batch_size": self.batch_size,
            "step": self.step,
            "seen": seen.cpu(),
            "losses": losses.cpu(),
        }

    @classmethod
    def from_state(cls, sd: dict[str, Any], device: torch.device, world_size: int = 1) -> EpochPlan:
        plan = cls(
            epoch=int(sd["epoch"]),
            indices=sd["indices"].to(device, torch.int64),
            weights=sd["weights"].to(device, torch.float32),
            selected=int(sd["selected"]),
            annealing=bool(sd["annealing"]),
            batch_size=int(sd["batch_size"]),
            world_size=world_size,
        )
        plan.step = int(sd["step"])
        if plan.step > plan.num_batches:
            raise ValueError(f"plan state at batch {plan.step} of a plan of {plan.num_batches} batches")
        plan.prefix = (sd["seen"].to(device, torch.int64), sd["losses"].to(device))
        plan.restored = True
        return plan
