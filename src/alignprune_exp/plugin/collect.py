"""Epoch-end collectives of the engine: the (index, loss) gather across ranks and the reference-set loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.distributed as td
from torch import nn

AllGather = Callable[[torch.Tensor], list[torch.Tensor]]


def distributed_world() -> int:
    """World size of the default process group, 1 when torch.distributed is not initialised."""
    if td.is_available() and td.is_initialized():
        return td.get_world_size()
    return 1


def distributed_rank() -> int:
    """Rank in the default process group, 0 when torch.distributed is not initialised."""
    if td.is_available() and td.is_initialized():
        return td.get_rank()
    return 0


def torch_all_gather(t: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's equally shaped ``t`` in rank order (``torch.distributed.all_gather``)."""
    parts = [torch.empty_like(t) for _ in range(td.get_world_size())]
    td.all_gather(parts, t.contiguous())
    return parts


def _exchange(t: torch.Tensor, counts: list[int], all_gather: AllGather) -> torch.Tensor:
    """Concatenate every rank's first ``counts[r]`` rows of ``t``, padded to the longest part for the gather."""
    padded = t.new_zeros((max(counts), *t.shape[1:]))
    padded[: t.shape[0]] = t
    return torch.cat([p[:c] for p, c in zip(all_gather(padded), counts)])


def gather_pairs(
    indices: torch.Tensor, losses: torch.Tensor, all_gather: AllGather | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (index, loss) pairs, rank-major, with the indices as int64 and the losses in their own dtype.

    Indices and losses travel in separate gathers: packing both into one float tensor (InfoBatch's plug-in)
    rounds indices above 2**24 (float32) or 256 (bf16). Parts of unequal length are padded to the longest and cut
    back by the exchanged counts (one host read of the counts per call: once per epoch). ``all_gather`` (a
    callable returning every rank's tensor) defaults to torch.distributed's; without an initialised process group
    and without ``all_gather`` the inputs come back as they are.
    """
    indices = indices.reshape(-1).to(torch.int64)
    losses = losses.reshape(-1)
    if indices.numel() != losses.numel():
        raise ValueError(f"got {indices.numel()} indices but {losses.numel()} losses")
    if all_gather is None:
        if distributed_world() == 1:
            return indices, losses
        all_gather = torch_all_gather
    count = torch.tensor([indices.numel()], dtype=torch.int64, device=indices.device)
    counts = [int(c) for c in torch.cat(all_gather(count)).tolist()]
    return _exchange(indices, counts, all_gather), _exchange(losses, counts, all_gather)


def any_rank(flag: torch.Tensor) -> bool:
    """Whether a 0-d bool ``flag`` is true on any rank (one collective under torch.distributed)."""
    flag = flag.to(torch.int64).reshape(1)
    if distributed_world() > 1:
        td.all_reduce(flag, op=td.ReduceOp.MAX)
    return bool(flag.item())


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (ranks evaluate outside DDP: no gradient collective)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.module
    return model


@torch.no_grad()
def reference_mean_loss(
    model: nn.Module | None,
    reference: Iterable | Callable,
    loss_fn: Callable,
    device: torch.device,
) -> tuple[float, int]:
    """Mean per-sample loss on the clean reference set in eval mode (train mode restored); (mean, count).

    ``reference`` is an iterable of (x, y) batches (a DataLoader) or a callable taking the unwrapped model and
    returning per-sample losses. Under torch.distributed the loss sums and counts are added over ranks in
    float64, so every rank gets the same mean whether each evaluates a shard or the whole set.
    """
    module = unwrap(model) if model is not None else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, count
        if not isinstance(reference, Iterable):  # a callable: the user's own reference pass
            per_sample = reference(module).detach().reshape(-1)
            sums[0] += per_sample.sum().to(torch.float64)
            sums[1] += per_sample.numel()
        elif module is None:
            raise ValueError("end_epoch(reference=<batches>) needs model= to compute the reference losses")
        else:
            for x, y, *_ in reference:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                per_sample = loss_fn(module(x), y, reduction="none")
                sums[0] += per_sample.sum()
                sums[1] += per_sample.numel()
    finally:
        if module is not None:
            module.train(was_training)
    if distributed_world() > 1:
        td.all_reduce(sums)
    total, count = sums.tolist()
    if count == 0:
        raise ValueError("the reference set yielded no samples: pass a non-empty reference loader or callable")
    return total / count, int(count)
