"""Two gloo ranks: the gather keeps int64 indices and bf16 losses exact, and a 2-rank engine state resumes on 1."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as td
import torch.multiprocessing as mp

from alignprune_exp.plugin import PruningEngine, gather_pairs
from tests.test_plugin_helpers import reference_loss, synthetic_losses

N, EPOCHS, BATCH, STOP = 203, 6, 16, (2, 5)  # stop at batch 5 of epoch 2


def _engine() -> PruningEngine:
    return PruningEngine.alignprune(N, epochs=EPOCHS, ratio=0.3, window=3)


def _run(engine: PruningEngine, plans: dict, stop=None) -> None:
    """Train on bf16 synthetic losses, recording each epoch's plan; stop mid-epoch at ``stop``."""
    sampler = engine.batch_sampler(BATCH)
    while not engine.exhausted:
        epoch = engine.epoch
        for b in sampler:
            plans[epoch] = list(engine._plan.order)
            idx = torch.tensor(b)
            engine.update(synthetic_losses(idx, epoch).to(torch.bfloat16), idx)
            if stop is not None and engine.cursor == stop:
                return
        engine.end_epoch(reference_loss=reference_loss(epoch))


def _worker(rank: int, init_file: str, out: str) -> None:
    td.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        mine_i = torch.tensor([2**24 + 1, 2**33 + 5, 3001]) if rank == 0 else torch.tensor([2**40 + 7])
        mine_l = (torch.tensor([0.1234, 3.5, 7.77]) if rank == 0 else torch.tensor([1.1])).to(torch.bfloat16)
        gathered = gather_pairs(mine_i, mine_l)
        engine, plans = _engine(), {}
        _run(engine, plans, stop=STOP)
        state = engine.state_dict()  # a collective: every rank calls it
        if rank == 0:
            torch.save({"gathered": gathered, "plans": plans, "state": state}, out)
    finally:
        td.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_gather_exactly_and_their_state_resumes_on_one(tmp_path):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_worker, args=(str(tmp_path / "init"), out), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    idx, loss = got["gathered"]
    assert idx.dtype == torch.int64 and idx.tolist() == [2**24 + 1, 2**33 + 5, 3001, 2**40 + 7]
    assert loss.dtype == torch.bfloat16
    assert torch.equal(loss, torch.tensor([0.1234, 3.5, 7.77, 1.1]).to(torch.bfloat16))

    reference, ref_plans = _engine(), {}
    _run(reference, ref_plans)
    resumed, plans = _engine(), dict(got["plans"])
    resumed.load_state_dict(got["state"])
    _run(resumed, plans)
    assert plans == ref_plans and len(plans) > STOP[0] + 1
    assert torch.equal(resumed.scorer.scores(), reference.scorer.scores())
    assert resumed.budget.spent == reference.budget.spent == reference.budget.total
