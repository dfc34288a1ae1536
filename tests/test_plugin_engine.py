"""The plug-in engine's protocol: budget-exact, annealing on schedule, exact gathers, no global RNG, clear misuse."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.plugin import ForwardBudget, IndexedDataset, PruningEngine, gather_pairs
from alignprune_exp.plugin.plan import batch_bounds
from alignprune_exp.pruning import IES, DivBS
from alignprune_exp.scoring import LossScorer
from tests.test_plugin_helpers import reference_loss, run_synthetic, synthetic_losses

ROOT = Path(__file__).resolve().parents[1]
N = 300


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("preset", ["alignprune", "infobatch", "seta", "random_dynamic"])
def test_training_forward_passes_equal_the_budget(preset, ratio):
    engine = getattr(PruningEngine, preset)(N, epochs=8, ratio=ratio)
    sizes = run_synthetic(engine, batch_size=32)
    assert sum(sizes) == engine.budget.total == round((1 - ratio) * 8 * N)
    assert engine.exhausted and engine.progress == 1.0
    assert min(sizes) >= 2  # a final batch of one joins the previous one


def test_annealing_starts_at_the_configured_progress():
    epochs = []
    engine = PruningEngine.alignprune(N, epochs=16, ratio=0.3, delta=0.6)
    run_synthetic(engine, batch_size=50, epochs_seen=epochs)
    flags = [(start, rec["annealing"]) for start, rec in epochs]
    assert [a for _, a in flags] == [start >= 0.6 for start, _ in flags]
    assert any(a for _, a in flags) and not flags[0][1]
    pruning = [rec["selected"] for start, rec in epochs if 0 < start < 0.6]
    assert pruning and max(pruning) < N  # pruning epochs prune, annealing epochs select everything
    assert all(rec["selected"] == N for _, rec in epochs if rec["annealing"])


def test_the_global_rng_states_are_untouched():
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    run_synthetic(PruningEngine.alignprune(N, epochs=6, ratio=0.5), batch_size=32)
    run_synthetic(PruningEngine.seta(N, epochs=6, ratio=0.5), batch_size=32)
    after = (torch.get_rng_state(), np.random.get_state()[1], random.getstate())
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]


def test_gather_keeps_large_indices_and_half_precision_losses_exact():
    big = torch.tensor([2**24 + 1, 2**31 + 7, 3001], dtype=torch.int64)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        losses = torch.tensor([0.1234, 3.5, 7.77]).to(dtype)
        other_i, other_l = torch.tensor([2**40 + 3]), torch.tensor([1.1]).to(dtype)  # rank 1's part: shorter

        def fake_all_gather(t, other_i=other_i, other_l=other_l):  # rank 0 of 2: the peer, padded
            if t.dtype == torch.int64 and t.numel() == 1 and t.item() == 3:  # the count exchange
                return [t, torch.tensor([1])]
            other = other_i if t.dtype == torch.int64 else other_l
            padded = t.new_zeros(t.shape)
            padded[:1] = other
            return [t, padded]

        idx, loss = gather_pairs(big, losses, all_gather=fake_all_gather)
        assert idx.dtype == torch.int64 and loss.dtype == dtype
        assert idx.tolist() == [*big.tolist(), 2**40 + 3]
        assert torch.equal(loss, torch.cat([losses, other_l]))


def test_rank_parts_are_contiguous_cover_the_batch_and_never_empty():
    engine = PruningEngine.infobatch(103, epochs=2, ratio=0.0)
    parts = [list(engine.batch_sampler(12, rank=r, world_size=3)) for r in range(3)]
    lengths = {len(p) for p in parts}
    assert lengths == {len(batch_bounds(103, 12, 3))}
    joined = [sum((p[s] for p in parts), []) for s in range(len(parts[0]))]
    assert sum(joined, []) == engine._plan.order  # rank-ordered contiguous parts cover the plan
    assert min(len(b) for p in parts for b in p) >= 1
    assert batch_bounds(97, 32, 4)[-1] == (64, 97)  # a tail of 1 < 4 ranks joins the previous batch


def test_update_weights_and_scale_match_the_trainer_formula():
    engine = PruningEngine.infobatch(10, epochs=4, ratio=0.0)
    engine._plan = None
    sampler = engine.batch_sampler(4, rank=1, world_size=2)
    batch = next(iter(sampler))  # rank 1's part of a global batch of 4: 2 samples
    idx, losses = torch.tensor(batch), torch.tensor([1.0, 3.0])
    before = losses.clone()
    out = engine.update(losses, idx)
    assert torch.equal(losses, before)  # the caller's tensor is not modified
    assert out.item() == pytest.approx((1.0 + 3.0) / 2 * (2 * 2 / 4))
    assert engine.budget.spent == 4  # the global batch's forward passes


def test_misuse_raises_one_line_errors():
    engine = PruningEngine.alignprune(40, epochs=3, ratio=0.3)
    with pytest.raises(RuntimeError, match="no epoch is open"):
        engine.update(torch.ones(4), torch.arange(4))
    sampler = engine.batch_sampler(8)
    batches = list(sampler)
    with pytest.raises(ValueError, match='reduction="none"'):
        engine.update(torch.tensor(1.0), torch.tensor(batches[0]))
    with pytest.raises(ValueError, match="has 8 samples"):
        engine.update(torch.ones(5), torch.arange(5))
    for b in batches:
        wrong = torch.tensor(b).flip(0)  # the batch's samples, but not in the plan's order
        engine.update(synthetic_losses(wrong, 0), wrong)
    with pytest.raises(RuntimeError, match="call engine.end_epoch"):
        list(sampler)
    with pytest.raises(RuntimeError, match="end_epoch"):
        engine.update(torch.ones(8), torch.arange(8))
    with pytest.raises(ValueError, match="needs the clean reference"):
        engine.end_epoch()
    with pytest.raises(ValueError, match="indices other than the plan's"):
        engine.end_epoch(reference_loss=1.0)


def test_trainer_only_policies_and_foreign_states_are_refused():
    for policy in (DivBS(50, keep_fraction=0.5), IES(50)):
        with pytest.raises(ConfigError, match="trainer-only"):
            PruningEngine(LossScorer(50), policy, ForwardBudget.from_ratio(2, 50, 0.5))
    state = PruningEngine.alignprune(50, epochs=4, ratio=0.3).state_dict()
    with pytest.raises(ConfigError, match="another configuration"):
        PruningEngine.alignprune(50, epochs=4, ratio=0.5).load_state_dict(state)
    with pytest.raises(ConfigError, match="another configuration"):
        PruningEngine.infobatch(50, epochs=4, ratio=0.3).load_state_dict(state)


def test_indexed_dataset_pickles_and_workers_give_the_same_batches():
    x, y = torch.randn(40, 3), torch.arange(40) % 4
    ds = IndexedDataset(TensorDataset(x, y))
    clone = pickle.loads(pickle.dumps(ds))
    assert all(torch.equal(a, b) for a, b in zip(clone[7][:2], ds[7][:2])) and clone[7][2] == 7

    def batches(**kw):
        engine = PruningEngine.infobatch(40, epochs=2, ratio=0.0, seed=3)
        return [[t.clone() for t in b] for b in DataLoader(ds, batch_sampler=engine.batch_sampler(8), **kw)]

    plain = batches()
    for ctx in ("spawn", "fork"):
        other = batches(num_workers=2, multiprocessing_context=ctx)
        assert len(other) == len(plain)
        assert all(torch.equal(a, b) for pa, pb in zip(plain, other) for a, b in zip(pa, pb))


def test_import_loads_no_framework():
    code = (
        "import json, sys; import alignprune_exp.plugin; "
        "print(json.dumps([m for m in ['hydra', 'omegaconf', 'wandb', 'pandas', 'timm', 'matplotlib'] "
        "if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_len_is_exact_for_the_epoch_it_yields():
    engine = PruningEngine.alignprune(N, epochs=6, ratio=0.5)
    sampler = engine.batch_sampler(32)
    for _ in range(4):
        n = len(sampler)
        count = 0
        for b in sampler:
            idx = torch.tensor(b)
            engine.update(synthetic_losses(idx, engine.epoch), idx)
            count += 1
        assert count == n
        engine.end_epoch(reference_loss=reference_loss(engine.epoch))
