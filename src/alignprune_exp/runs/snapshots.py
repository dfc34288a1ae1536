"""Per-sample snapshots at a few points of training, for loss/score histograms split clean vs noisy.

Saved once per run as ``snapshots.npz`` in its run directory (float16, compressed): a few hundred KB
for CIFAR, and never copied into committed result folders.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from alignprune_exp.runs.durable import atomic_write_bytes


class SnapshotRecorder:
    """Epoch callback that keeps scores and last losses when budget progress first reaches each point."""

    def __init__(self, run_dir: str | Path, at_progress: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)):
        self.path = Path(run_dir) / "snapshots.npz"
        self.points = sorted(float(p) for p in at_progress)
        self.epochs: list[int] = []
        self.progress: list[float] = []
        self.scores: list[np.ndarray] = []
        self.losses: list[np.ndarray] = []
        self.is_noisy: np.ndarray | None = None

    def __call__(self, record: dict, extras: dict) -> None:
        if not self.points or record["progress"] + 1e-9 < self.points[0]:
            return
        while self.points and record["progress"] + 1e-9 >= self.points[0]:
            self.points.pop(0)
        self.epochs.append(int(record["epoch"]))
        self.progress.append(float(record["progress"]))
        # Cast in torch: a value beyond float16's range becomes inf as in numpy, without numpy's overflow warning.
        self.scores.append(extras["scores"].float().to(torch.float16).cpu().numpy())
        self.losses.append(extras["last_loss"].float().to(torch.float16).cpu().numpy())
        if self.is_noisy is None:
            self.is_noisy = extras["is_noisy"].cpu().numpy()
        self.save()

    def state_dict(self) -> dict:
        return {
            "points": list(self.points),
            "epochs": list(self.epochs),
            "progress": list(self.progress),
            "scores": [torch.from_numpy(a) for a in self.scores],
            "losses": [torch.from_numpy(a) for a in self.losses],
            "is_noisy": None if self.is_noisy is None else torch.from_numpy(self.is_noisy),
        }

    def load_state_dict(self, sd: dict) -> None:
        """Restore from a checkpoint and rewrite the file to match it (later snapshots are dropped)."""
        self.points, self.epochs, self.progress = list(sd["points"]), list(sd["epochs"]), list(sd["progress"])
        self.scores = [t.numpy() for t in sd["scores"]]
        self.losses = [t.numpy() for t in sd["losses"]]
        self.is_noisy = None if sd["is_noisy"] is None else sd["is_noisy"].numpy()
        if self.epochs:
            self.save()
        else:
            self.path.unlink(missing_ok=True)

    def save(self) -> None:
        """Rewrite the file atomically (temporary file, fsync, rename) with every snapshot so far."""
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            epochs=np.array(self.epochs),
            progress=np.array(self.progress),
            scores=np.stack(self.scores),
            losses=np.stack(self.losses),
            is_noisy=self.is_noisy,
        )
        atomic_write_bytes(self.path, buf.getbuffer())


def load_snapshots(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``snapshots.npz`` (no pickles allowed)."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
