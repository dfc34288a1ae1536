"""Shared drivers of the plug-in engine's tests: synthetic per-sample losses and a tiny digits loop."""

from __future__ import annotations

import torch
from torch import nn

from alignprune_exp.plugin import PruningEngine


def synthetic_losses(idx: torch.Tensor, epoch: int) -> torch.Tensor:
    """Deterministic per-sample losses: clean samples (even) fall with the epoch, noisy ones (odd) rise."""
    base = ((idx * 2654435761) % 1000).float() / 1000
    trend = torch.where(idx % 2 == 0, 2.0 / (epoch + 1), 0.1 * epoch)
    return base + trend


def reference_loss(epoch: int) -> float:
    return 2.0 / (epoch + 1)


def run_synthetic(engine: PruningEngine, batch_size: int = 32, epochs_seen: list | None = None) -> list[int]:
    """Spend the whole budget on synthetic losses; returns every batch's size (forward passes)."""
    sizes = []
    sampler = engine.batch_sampler(batch_size)
    while not engine.exhausted:
        epoch, start = engine.epoch, engine.progress
        for b in sampler:
            idx = torch.tensor(b)
            engine.update(synthetic_losses(idx, epoch), idx)
            sizes.append(len(b))
        rec = engine.end_epoch(reference_loss=reference_loss(epoch))
        if epochs_seen is not None:
            epochs_seen.append((start, rec))
    return sizes


def digits_data():
    """Standardised sklearn digits as tensors: (x_train, y_train, x_ref, y_ref)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    return x[200:], y[200:], x[:200], y[:200]


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
