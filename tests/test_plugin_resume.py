"""Resuming the plug-in engine is exact: a plain digits loop stopped at an epoch boundary or mid-epoch and resumed
from saved states ends with the same parameters bit for bit; the example and docs/plugin.md's loop run."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from alignprune_exp.plugin import IndexedDataset, ProgressLR, PruningEngine
from alignprune_exp.train.schedule import OneCycle
from tests.test_plugin_helpers import digits_data, mlp

ROOT = Path(__file__).resolve().parents[1]
X, Y, XR, YR = digits_data()
TRAIN = IndexedDataset(TensorDataset(X, Y))
REF = DataLoader(TensorDataset(XR, YR), batch_size=100)


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # the states hold tensors and primitives only


def train(stop=None, state=None, loader_cls=DataLoader, **loader_kw):
    """A plain loop; ``stop=("step"|"epoch", k)`` returns every state at that point, else the final model."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = PruningEngine.alignprune(len(TRAIN), epochs=4, ratio=0.5, window=3)
    sched = ProgressLR(opt, engine, OneCycle().factor, OneCycle().momentum)
    loader = loader_cls(TRAIN, batch_sampler=engine.batch_sampler(128), **loader_kw)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        engine.load_state_dict(state["engine"])
        sched.load_state_dict(state["sched"])
        if "loader" in state:
            loader.load_state_dict(state["loader"])
    steps = 0
    while not engine.exhausted:
        for xb, yb, idx in loader:
            loss = engine.update(F.cross_entropy(model(xb), yb, reduction="none"), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            steps += 1
            if stop == ("step", steps):
                break
        else:
            engine.end_epoch(model, reference=REF)
            if stop != ("epoch", engine.epoch):
                continue
        snap = {"model": model.state_dict(), "opt": opt.state_dict(), "engine": engine.state_dict()}
        snap["sched"] = sched.state_dict()
        if loader_cls is not DataLoader:
            snap["loader"] = loader.state_dict()
        return _roundtrip(snap)
    return model, engine


@pytest.fixture(scope="module")
def single_thread():
    """One thread for every run of this module: the same kernels, so bit-for-bit comparisons hold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def uninterrupted(single_thread):
    return train()


@pytest.mark.parametrize(
    "stop", [("epoch", 2), ("step", 7), ("step", 13)], ids=["epoch_boundary", "mid_epoch", "after_last_batch"]
)
def test_resume_equals_the_uninterrupted_run_bit_for_bit(uninterrupted, stop):
    model, engine = uninterrupted
    resumed, resumed_engine = train(state=train(stop=stop))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed.parameters()))
    assert resumed_engine.epoch == engine.epoch and resumed_engine.budget.spent == engine.budget.spent
    assert torch.equal(resumed_engine.scorer.scores(), engine.scorer.scores())


def test_stateful_dataloader_resumes_mid_epoch(uninterrupted):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    model, _ = uninterrupted
    for kw in ({}, {"num_workers": 2}):
        state = train(stop=("step", 7), loader_cls=stateful.StatefulDataLoader, **kw)
        resumed, _ = train(state=state, loader_cls=stateful.StatefulDataLoader, **kw)
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed.parameters())), kw


def test_progress_lr_follows_the_budget_as_the_trainer_schedule():
    engine = PruningEngine.infobatch(100, epochs=2, ratio=0.5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4, momentum=0.9)
    schedule = OneCycle()
    sched = ProgressLR(opt, engine, schedule.factor, schedule.momentum)
    for spent in (0, 30, 70, 100):
        engine.budget.spent = spent
        if spent:
            opt.step()
            sched.step()
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(0.4 * schedule.factor(spent / 100))
        assert group["momentum"] == pytest.approx(schedule.momentum(spent / 100))
    assert "engine" not in sched.state_dict()


def test_the_example_learns_digits():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "plain_loop.py"), "--epochs", "6"],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    acc = float(re.search(r"test accuracy ([0-9.]+)", proc.stdout).group(1))
    assert acc > 0.5  # chance is 0.1


def test_the_first_code_block_of_the_docs_runs():
    text = (ROOT / "docs" / "plugin.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
