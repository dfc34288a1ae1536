"""AlignPrune in a plain PyTorch loop on scikit-learn's digits with 20% label noise.

python examples/plain_loop.py --epochs 20 --ratio 0.5
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from alignprune_exp.plugin import IndexedDataset, ProgressLR, PruningEngine


def main(epochs: int = 20, ratio: float = 0.5, noise: float = 0.2, seed: int = 0) -> float:
    """Train on noisy digits within (1 - ratio) x epochs full passes; returns the clean test accuracy."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=gen)
    ref, test, train = perm[:150], perm[150:450], perm[450:]  # clean reference set, clean test set, noisy train
    noisy = y[train].clone()
    flip = torch.rand(len(train), generator=gen) < noise
    noisy[flip] = torch.randint(10, (int(flip.sum()),), generator=gen)
    train_set = IndexedDataset(TensorDataset(x[train], noisy))  # items (x, y, index)
    ref_loader = DataLoader(TensorDataset(x[ref], y[ref]), batch_size=256)

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = PruningEngine.alignprune(len(train_set), epochs=epochs, ratio=ratio, seed=seed)
    sched = ProgressLR(opt, engine, lambda p: 0.5 * (1 + math.cos(math.pi * p)))
    loader = DataLoader(train_set, batch_sampler=engine.batch_sampler(64))
    while not engine.exhausted:
        for xb, yb, idx in loader:
            loss = engine.update(F.cross_entropy(model(xb), yb, reduction="none"), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        rec = engine.end_epoch(model, reference=ref_loader)
        print(f"epoch {rec['epoch']:2d} trained {rec['trained']:4d} progress {rec['progress']:.2f}")
    with torch.no_grad():
        acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    print(f"test accuracy {acc:.3f} after {engine.epoch} epochs, {engine.budget.spent} of {engine.budget.full} passes")
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.ratio, args.noise, args.seed)
