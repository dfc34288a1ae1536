"""Durable writes: atomic replaces that round-trip or leave the old file (and no temporary file), one write
seam for every caller, and no test hooks in the product."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from alignprune_exp.runs import durable
from alignprune_exp.runs.durable import atomic_torch_save, atomic_write_bytes, write_all

SRC = Path(__file__).resolve().parents[1] / "src"


def _disk_full_after(n_bytes: int):
    """A ``_os_write`` that takes ``n_bytes`` (then shorter writes), then fails with ENOSPC."""
    left = [n_bytes]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: left[0]])
        left[0] -= n
        return n

    return write


def test_atomic_torch_save_round_trips(tmp_path):
    obj = {
        "w": torch.arange(12, dtype=torch.float32).reshape(3, 4),
        "gen": torch.Generator().manual_seed(3).get_state(),
        "epoch": 7,
        "names": ["a", "b"],
        "nested": {"x": torch.tensor([1, 2], dtype=torch.int64)},
    }
    path = tmp_path / "obj.pt"
    assert atomic_torch_save(obj, path) == path
    back = torch.load(path, weights_only=True)
    assert back.keys() == obj.keys() and back["epoch"] == 7 and back["names"] == ["a", "b"]
    assert torch.equal(back["w"], obj["w"]) and torch.equal(back["gen"], obj["gen"])
    assert torch.equal(back["nested"]["x"], obj["nested"]["x"])
    atomic_torch_save({"epoch": 8}, path)  # a second save replaces the first
    assert torch.load(path, weights_only=True) == {"epoch": 8}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obj.pt"]


def test_write_all_finishes_short_writes_and_fails_on_none(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        write_all(fd, b"abcdefg", write=lambda fd, data: os.write(fd, data[:2]))  # 2 bytes a call
        with pytest.raises(OSError, match="wrote 0 of 3 remaining bytes"):
            write_all(fd, b"xyz", write=lambda fd, data: 0)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"abcdefg"


@pytest.mark.parametrize("cut", [0, 10])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, cut):
    path = tmp_path / "obj.pt"
    atomic_torch_save({"old": torch.ones(100)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(durable, "_os_write", _disk_full_after(cut))
    with pytest.raises(OSError) as err:
        atomic_torch_save({"new": torch.zeros(1000)}, path)
    assert err.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "other.json", b"{}" * 100)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obj.pt"]  # no *.tmp, no half-written other.json
    assert not list(tmp_path.glob("*.tmp"))


def test_every_durable_writer_goes_through_the_one_seam(tmp_path, monkeypatch):
    """Checkpoints, RunState, snapshots and summaries all write through ``durable._os_write``."""
    from alignprune_exp.core.safe_load import safe_torch_load
    from alignprune_exp.runs.checkpoint import Checkpointer
    from alignprune_exp.runs.records import RunRecorder
    from alignprune_exp.runs.snapshots import SnapshotRecorder, load_snapshots
    from alignprune_exp.train.state import RunState

    written: list[str] = []

    def spy(fd, data):
        written.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return os.write(fd, data)

    monkeypatch.setattr(durable, "_os_write", spy)
    state = SimpleNamespace(state_dict=lambda: {"epoch": 2, "w": torch.ones(3)}, epoch=2)
    trainer = SimpleNamespace(state=state, history=[{"epoch": 1}], last_test=(1.0, 2.0))
    ckpt = Checkpointer(tmp_path, trainer, run_id="abc")
    ckpt.save()
    RunState.save(state, tmp_path / "state.pt")
    snaps = SnapshotRecorder(tmp_path, at_progress=(0.5,))
    snaps(
        {"epoch": 3, "progress": 0.6},
        {
            "scores": torch.rand(5),
            "last_loss": torch.rand(5),
            "is_noisy": torch.tensor([True, False, True, False, False]),
        },
    )
    RunRecorder(tmp_path).write_summary({"status": "completed", "final_test_acc": float("nan")})
    pid = os.getpid()
    assert written == [f"{name}.{pid}.tmp" for name in ("checkpoint.pt", "state.pt", "snapshots.npz", "summary.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "snapshots.npz", "state.pt", "summary.json"]
    assert ckpt.saved_epoch == 2
    assert safe_torch_load(tmp_path / "checkpoint.pt")["history"] == [{"epoch": 1}]
    assert torch.equal(torch.load(tmp_path / "state.pt", weights_only=True)["w"], torch.ones(3))
    loaded = load_snapshots(tmp_path / "snapshots.npz")
    assert loaded["epochs"].tolist() == [3] and loaded["scores"].shape == (1, 5)
    assert loaded["is_noisy"].tolist() == [True, False, True, False, False]
    assert loaded["scores"].dtype == np.float16
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {"status": "completed", "final_test_acc": None}


def test_product_reads_no_test_env_and_ships_no_fault_injection():
    sources = sorted(SRC.rglob("*.py"))
    assert len(sources) > 20
    readers = [
        f"{p.relative_to(SRC)}:{n}"
        for p in sources
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"ALIGNPRUNE_TEST|faultinject", line)
    ]
    assert readers == []
    assert importlib.util.find_spec("alignprune_exp.faultinject") is None
    assert not [p for p in SRC.rglob("faultinject*") if "__pycache__" not in p.parts]
