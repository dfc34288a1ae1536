"""Speed paths of the trainer: no host-device synchronisation per batch, compile with a safe fallback,
channels-last, and the reference subset used for DAS's per-epoch mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignprune_exp.pipeline.build import build_trainer
from alignprune_exp.reference.selectors import CleanValReference
from alignprune_exp.train import speed
from tests.conftest import TINY_DIGITS

SYNC_METHODS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__")


def count_sync_calls(monkeypatch, fn):
    """Run ``fn`` counting calls of tensor methods that copy to the host (and so wait for the device)."""
    counts = dict.fromkeys(SYNC_METHODS, 0)
    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    fn()
    monkeypatch.undo()
    return counts


def test_batch_loop_never_synchronises_per_batch(compose_cfg, monkeypatch, one_thread):
    trainer, _ = build_trainer(compose_cfg([*TINY_DIGITS, "pruner=infobatch_das", "batch_size=16"]))
    n = trainer.data.num_samples
    weights = torch.ones(n)
    trained = {}

    def epoch(k):
        """Syncs of training a plan of k batches (the plan opens and closes outside the count)."""
        select = trainer.state.policy.select
        trainer.state.policy.select = lambda *a, **kw: (torch.arange(k * 16), weights)
        plan = trainer.open_plan()
        trainer.state.policy.select = select
        counts = count_sync_calls(monkeypatch, lambda: trained.__setitem__(k, trainer.train_epoch(plan)))
        assert plan.step == k
        trainer.engine.end_epoch(reference_loss=1.0)
        assert len(trainer.engine.last_trained[0]) == 16 * k
        return counts

    two, twenty = epoch(2), epoch(20)
    assert two == twenty, (two, twenty)  # what syncs does so once per epoch, not per batch
    assert sum(twenty.values()) <= 2
    assert np.isfinite(trained[20][0]) and trained[20][0] > 0  # the device-side weighted loss sum is read


def test_evaluate_keeps_sums_on_device_and_matches_a_direct_computation(compose_cfg, monkeypatch):
    trainer, _ = build_trainer(compose_cfg([*TINY_DIGITS, "eval_batch_size=64"]))
    calls = count_sync_calls(monkeypatch, lambda: trainer.evaluate("test"))
    assert sum(calls.values()) == 1  # loss sum, correct count and size come back in one transfer
    loss, acc = trainer.evaluate("test")
    model, data = trainer.state.model, trainer.data
    with torch.no_grad():
        logits = model(data.augment(data.test_x, train=False))
    direct = torch.nn.functional.cross_entropy(logits, data.test_y)
    assert loss == pytest.approx(direct.item(), rel=1e-5)
    assert acc == pytest.approx(100 * (logits.argmax(1) == data.test_y).float().mean().item())


def test_compile_failure_falls_back_to_eager_with_a_warning(compose_cfg, monkeypatch):
    class Broken:
        def __init__(self, model, **kwargs):
            pass

        def __call__(self, x):
            raise RuntimeError("inductor: no C++ compiler")

    monkeypatch.setattr(torch, "compile", Broken)
    trainer, _ = build_trainer(compose_cfg([*TINY_DIGITS, "compile=true", "epochs=2"]))
    assert isinstance(trainer._forward, speed.GuardedCompile)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        summary = trainer.fit()
    assert trainer._forward.failed and summary["final_test_acc"] > 20
    assert set(trainer.state.model.state_dict()) == set(
        build_trainer(compose_cfg(TINY_DIGITS))[0].state.model.state_dict()
    )


def test_channels_last_applies_to_conv_models_only():
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert speed.memory_format("auto", cnn, cuda) == torch.channels_last
    assert speed.memory_format("auto", cnn, cpu) == torch.contiguous_format
    assert speed.memory_format(True, cnn, cpu) == torch.channels_last
    assert speed.memory_format(True, mlp, cuda) == torch.contiguous_format
    assert speed.optimizer_kwargs({"opt": "momentum"}, cuda) == {"fused": True}
    assert speed.optimizer_kwargs({"opt": "lars"}, cuda) == {}


def test_channels_last_run_matches_the_default_layout(compose_cfg, one_thread):
    base = [*TINY_DIGITS, "model=small_cnn", "model.width=8", "model.depth=2", "epochs=2", "ratio=r0"]
    a = build_trainer(compose_cfg(base))[0].fit()
    b = build_trainer(compose_cfg([*base, "channels_last=true"]))[0].fit()
    assert b["final_test_acc"] == pytest.approx(a["final_test_acc"], abs=1.0)


def test_reference_eval_size_uses_a_fixed_subset_of_the_held_out_set(compose_cfg):
    full, info_full = build_trainer(compose_cfg([*TINY_DIGITS, "pruner=infobatch_das"]))
    sub, info_sub = build_trainer(compose_cfg([*TINY_DIGITS, "pruner=infobatch_das", "reference.eval_size=50"]))
    assert info_sub["n_reference"] == info_full["n_reference"] > 50 and info_sub["n_reference_eval"] == 50
    assert sub.data.num_samples == full.data.num_samples  # the same images train
    rows = CleanValReference(eval_size=50).eval_rows(info_full["n_reference"], seed=0)
    torch.testing.assert_close(sub.data.ref_x, full.data.ref_x[torch.as_tensor(rows)])
    rec = sub.run_epoch()
    assert rec["fwd/reference"] == 50
    with pytest.raises(Exception, match="eval_size"):
        CleanValReference(eval_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_loop_never_synchronises_on_cuda(compose_cfg):
    """torch's sync debug mode flags every host-device synchronisation: as many for 2 as for 20 batches."""
    import warnings

    trainer, _ = build_trainer(compose_cfg([*TINY_DIGITS, "device=cuda", "pruner=infobatch_das", "batch_size=16"]))
    weights = torch.ones(trainer.data.num_samples, device="cuda")
    select = trainer.state.policy.select

    def syncs(k):
        trainer.state.policy.select = lambda *a, **kw: (torch.arange(16 * k, device="cuda"), weights)
        plan = trainer.open_plan()
        trainer.state.policy.select = select
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                trainer.train_epoch(plan)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        trainer.engine.end_epoch(reference_loss=1.0)
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs(2)  # warm-up: cuDNN / allocator first calls

    assert syncs(2) == syncs(20) <= 2
