"""Data parallelism on torch.distributed: process-group start-up (torchrun or SLURM via submitit) and the
few collectives that keep every rank's run state identical.

One run = ``world_size`` processes, one per GPU (NCCL) or per CPU worker (gloo). Every rank holds the full
scorer bank and policy and makes the same seeded draws, so the epoch's selection and its shuffle agree
without communication; each global batch is cut into one contiguous part per rank; after the epoch every
rank receives every trained sample's (index, loss) pair. ``Dist`` with ``world_size == 1`` is the
single-process case: every method is then the identity, so the trainer has one code path.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import sys
from collections.abc import Callable

import torch
import torch.distributed as td

from alignprune_exp.core.errors import ConfigError

log = logging.getLogger("alignprune")

DEFAULT_TIMEOUT_S = 1800


class Dist:
    """This process's place in the run (``rank`` of ``world_size``) and the collectives the trainer uses."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank, self.world_size, self.local_rank = int(rank), int(world_size), int(local_rank)

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes results, metrics, snapshots, W&B runs and checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    # -- sharding ---------------------------------------------------------------------------------------
    def part_bounds(self, n: int) -> tuple[int, int]:
        """[lo, hi) of this rank's contiguous part of n items (sizes differ by at most one)."""
        return n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size

    def local_slices(self, slices: list[slice]) -> list[slice]:
        """This rank's part of each global batch slice."""
        out = []
        for sl in slices:
            lo, hi = self.part_bounds(sl.stop - sl.start)
            out.append(slice(sl.start + lo, sl.start + hi))
        return out

    def mine(self, k: int) -> bool:
        """Whether item ``k`` of a round-robin split (evaluation batches) belongs to this rank."""
        return k % self.world_size == self.rank

    # -- collectives ------------------------------------------------------------------------------------
    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a new tensor; the input is left alone)."""
        t = t.clone()
        if self.active:
            td.all_reduce(t)
        return t

    def gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenation (rank order) of every rank's ``t`` along dim 0; the lengths may differ."""
        if not self.active:
            return t
        n = torch.tensor([t.shape[0]], device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world_size)]
        td.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        longest = max(sizes)
        padded = t.new_zeros((longest, *t.shape[1:]))
        padded[: t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        td.all_gather(parts, padded.contiguous())
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    def gather_objects(self, obj) -> list:
        """Every rank's picklable ``obj``, in rank order."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        td.all_gather_object(out, obj)
        return out

    def from_main(self, obj):
        """Rank 0's picklable ``obj`` on every rank (what the others pass is ignored)."""
        return self.gather_objects(obj)[0]

    def barrier(self) -> None:
        """Wait until every rank reaches this point (nothing to wait for on one process)."""
        if self.active:
            td.barrier()

    def all_true(self, flag: bool) -> bool:
        """True iff ``flag`` holds on every rank (one collective)."""
        return all(self.gather_objects(bool(flag)))

    def agree(self, what: str, value: str) -> None:
        """Raise the same ConfigError on every rank unless all ranks hold the same ``value``."""
        values = self.gather_objects(value)
        if len(set(values)) > 1:
            differing = [r for r, v in enumerate(values) if v != values[0]]
            raise ConfigError(
                f"ranks disagree on {what} (rank 0 vs rank(s) {differing}): start every rank "
                "with the same code, command line and environment"
            )

    # -- model and generators ---------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module that trains: DistributedDataParallel over ``model`` when there are several ranks."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
        ddp.register_comm_hook(None, rank_ordered_mean)
        return ddp

    def per_rank_draws(self, generator: torch.Generator, fn: Callable):
        """Run ``fn`` on a generator forked for this rank, leaving ``generator`` in the same state on every rank.

        For draws made on a rank's own shard (DivBS's in-batch selection): the shared generator advances
        by one identical draw, the seed of this call's fork.
        """
        if not self.active:
            return fn()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        saved = generator.get_state()
        generator.manual_seed(seed + self.rank)
        try:
            return fn()
        finally:
            generator.set_state(saved)


def rank_ordered_mean(group, bucket):  # -> Future[Tensor]; unannotated: DDP checks the real type
    """DDP communication hook: each gradient's mean over ranks, summed in rank order whatever the bucket layout.

    DDP's default all-reduce sums an element in an order set by where it lies in its bucket (the ring's
    segments), and DDP lays its buckets out anew after the first step of every process (the gradients'
    ready order): with 3 or more ranks a resumed run's first step rounded differently from the run never
    interrupted. Here every element is ``(g_0 + g_1 + ... + g_{W-1}) / W`` in rank order: each rank receives
    its share of every rank's bucket (all-to-all), sums it in rank order, and the sums are gathered back; the
    same bytes on the wire as a ring all-reduce.
    """
    buf = bucket.buffer()
    world = td.get_world_size(group)
    n = buf.numel()
    share = -(-n // world)
    flat = buf.new_zeros(share * world)
    flat[:n] = buf.reshape(-1)
    parts = torch.empty_like(flat)
    td.all_to_all_single(parts, flat, group=group)
    rows = parts.view(world, share)
    total = rows[0].clone()
    for r in range(1, world):
        total += rows[r]
    total /= world
    shares = [torch.empty_like(total) for _ in range(world)]
    fut = td.all_gather(shares, total, group=group, async_op=True).get_future()
    return fut.then(lambda _: torch.cat(shares)[:n].view_as(buf))


SINGLE = Dist()


def current() -> Dist:
    """The ``Dist`` of this process: from the default process group when one is initialised."""
    if td.is_available() and td.is_initialized():
        return Dist(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return SINGLE


def launched_world_size() -> int:
    """World size this process was started with (torchrun's WORLD_SIZE or a multi-task SLURM job), 1 if none."""
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    env = _submitit_env()
    return env.num_tasks if env is not None else 1


def _submitit_env():
    """submitit's JobEnvironment inside a SLURM task started by the submitit launcher, else None."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    import submitit

    return submitit.JobEnvironment()


def _export_submitit_env() -> None:
    """Translate submitit's job environment into the env:// variables torch.distributed reads.

    The first node of the job hosts the rendezvous; the port derives from the job id so concurrent jobs
    sharing a node do not collide (MASTER_PORT from the environment wins).
    """
    env = _submitit_env()
    if env is None or env.num_tasks <= 1:
        return
    os.environ.setdefault("MASTER_ADDR", env.hostnames[0])
    digits = "".join(c for c in str(env.job_id) if c.isdigit()) or "0"
    os.environ.setdefault("MASTER_PORT", str(20000 + int(digits) % 20000))
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(env.global_rank), str(env.num_tasks)
    os.environ["LOCAL_RANK"] = str(env.local_rank)


def init(timeout_s: float | None = None) -> Dist:
    """Join the run's process group if this process was launched as one of several ranks; idempotent.

    Backend: gloo for CPU tensors, plus NCCL for CUDA tensors when a GPU is visible (one backend per
    device type, so CPU-side coordination works next to NCCL). A rank stuck in a collective gives up
    after ``timeout_s`` (ALIGNPRUNE_DIST_TIMEOUT_S, default 1800 s) instead of hanging forever.
    """
    if td.is_initialized():
        return current()
    _export_submitit_env()
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return SINGLE
    if timeout_s is None:
        timeout_s = float(os.environ.get("ALIGNPRUNE_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    td.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    dist = current()
    log.debug("rank %d of %d (local rank %d), backend %s", dist.rank, dist.world_size, local_rank, backend)
    return dist


def shared_now(dist: Dist) -> _dt.datetime:
    """Rank 0's clock, on every rank: run folders named by time then resolve to the same path."""
    return _dt.datetime.fromtimestamp(dist.gather_objects(_dt.datetime.now().timestamp())[0])


def device_for(dist: Dist, device: torch.device) -> torch.device:
    """One GPU per rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` (modulo the visible GPUs)."""
    if device.type == "cuda" and dist.active:
        return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return device


def check_global_batch(batch_size: int, dist: Dist, what: str = "batch_size") -> None:
    """``batch_size`` is the global batch: it must split evenly over the ranks."""
    if batch_size % dist.world_size:
        raise ConfigError(
            f"{what}={batch_size} is the global batch and must be divisible by the "
            f"{dist.world_size} ranks: use a multiple of {dist.world_size}"
        )


def digest(*tensors: torch.Tensor) -> str:
    """Short hash of tensors' bytes (rank-consistency checks)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def state_digest(indices: torch.Tensor, weights: torch.Tensor, scorer) -> str:
    """Hash of the epoch's selection, weights and the scorer's whole state."""
    sd = scorer.state_dict()
    return digest(indices, weights, *(sd[k] for k in sorted(sd) if isinstance(sd[k], torch.Tensor)))


def fail(err: BaseException) -> None:
    """End this rank after an unexpected error in a multi-rank run: one line on stderr naming the rank, then
    exit status 1 at once (no clean-up that could wait on a peer); peers blocked on this rank see their
    collective fail and end the same way."""
    dist = current()
    log.debug("rank %d failed", dist.rank, exc_info=err)
    first = (str(err).strip().splitlines() or [""])[0]
    print(
        f"error: rank {dist.rank} of {dist.world_size} stopped: {type(err).__name__}: {first}",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


def shutdown() -> None:
    """Leave the process group (end of a run)."""
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()
