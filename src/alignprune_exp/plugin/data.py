"""The data side of the engine: a dataset that returns each sample's index, and the plan's batch sampler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch.utils.data import Dataset, Sampler

if TYPE_CHECKING:  # the engine builds its samplers; only the annotation names it here
    from alignprune_exp.plugin.engine import PruningEngine


class IndexedDataset(Dataset):
    """``dataset[i]`` -> ``(*dataset[i], i)``: the engine needs every sample's dataset index next to its loss.

    Plain attributes only (no ``__getattr__`` delegation), so it pickles and works in DataLoader workers under
    spawn, forkserver and fork. The wrapped dataset is ``.dataset``.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        item = self.dataset[index]
        return (*item, index) if isinstance(item, tuple | list) else (item, index)


class PlanBatchSampler(Sampler[list[int]]):
    """This rank's part of each global batch of the engine's current epoch plan; pass it as ``batch_sampler=``.

    Iteration starts at the first batch the engine has not trained yet, so a DataLoader re-created after
    ``engine.load_state_dict`` resumes mid-epoch by itself (a state saved after the epoch's last batch yields
    nothing once, then ``end_epoch`` follows); iterating an epoch whose batches are all trained raises.
    ``len`` is the number of batches the next (or current) iteration yields. ``state_dict`` /
    ``load_state_dict`` serve torchdata's ``StatefulDataLoader``: the state is the position reached, checked
    against the engine's on load. Every rank's engine plans the same epoch; the parts of a global batch are
    contiguous and differ in size by at most one.
    """

    def __init__(self, engine: PruningEngine, batch_size: int, rank: int, world_size: int) -> None:
        self.engine, self.batch_size, self.rank, self.world_size = engine, int(batch_size), int(rank), int(world_size)
        self._position = 0
        self._start: tuple[int, int] | None = None  # (epoch, first batch) of the iteration under way

    def _plan(self):
        return self.engine.open_epoch(self.batch_size, self.rank, self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        plan = self._plan()
        restored, plan.restored = plan.restored, False
        if plan.done and not restored:  # saved after the last batch, before end_epoch: nothing left to yield
            raise RuntimeError(
                f"every batch of epoch {plan.epoch} is trained: call engine.end_epoch(...) before the next epoch"
            )
        self._start = (plan.epoch, plan.step)
        for step in range(plan.step, plan.num_batches):
            self._position = step + 1
            yield plan.local_batch(step, self.rank)

    def __len__(self) -> int:
        plan = self._plan()
        if self._start is not None and self._start[0] == plan.epoch:
            return plan.num_batches - self._start[1]
        return plan.num_batches - plan.step

    def state_dict(self) -> dict[str, Any]:
        """The engine's epoch and the number of its batches yielded so far (0 before its iteration starts)."""
        epoch = self.engine.epoch
        return {"epoch": epoch, "position": self._position if self._start and self._start[0] == epoch else 0}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Check that a saved loader position matches the engine's restored cursor (save both at the same step)."""
        epoch, step = self.engine.cursor
        if (int(sd["epoch"]), int(sd["position"])) != (epoch, step):
            raise ValueError(
                f"the loader state is at batch {sd['position']} of epoch {sd['epoch']} but the engine at batch "
                f"{step} of epoch {epoch}: save the loader's and the engine's states after the same update()"
            )
        self._position = step
