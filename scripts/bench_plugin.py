"""Overhead of the plug-in per training step: the engine's loop against a plain loop of the same steps.

Both loops train the same model (same init), data and batch size for the same number of optimizer steps; the
plain one draws batches from a shuffled DataLoader and backpropagates ``loss.mean()``, the plug-in one uses
``engine.batch_sampler``, ``engine.update`` and ``engine.end_epoch`` (with DAS's reference pass, timed as part
of the plug-in). Repeats interleave the two (alternating which goes first) and the medians are printed.

    python scripts/bench_plugin.py --threads 1 --repeats 7 [--model cnn]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from alignprune_exp.plugin import IndexedDataset, PruningEngine


def digits() -> tuple[TensorDataset, TensorDataset, nn.Module]:
    """sklearn's digits (8x8, 1797 samples; 200 as the reference set) and a 64-64-10 MLP."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    return TensorDataset(x[200:], y[200:]), TensorDataset(x[:200], y[:200]), net


def random_images(n: int = 2048, ref: int = 256) -> tuple[TensorDataset, TensorDataset, nn.Module]:
    """Random 3x32x32 images with random labels and a two-conv CNN: a heavier step than the MLP's."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n + ref, 3, 32, 32, generator=gen), torch.randint(0, 10, (n + ref,), generator=gen)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )  # fmt: skip
    return TensorDataset(x[ref:], y[ref:]), TensorDataset(x[:ref], y[:ref]), net


def run_plugin(train, ref, net: nn.Module, args) -> tuple[float, int, float]:
    """The engine's loop over its whole budget; returns (seconds, optimizer steps, seconds in end_epoch)."""
    engine = PruningEngine.alignprune(len(train), epochs=args.epochs, ratio=args.ratio)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(IndexedDataset(train), batch_sampler=engine.batch_sampler(args.batch_size))
    ref_loader = DataLoader(ref, batch_size=256)
    steps, ends, start = 0, 0.0, time.perf_counter()
    while not engine.exhausted:
        for xb, yb, idx in loader:
            loss = engine.update(F.cross_entropy(net(xb), yb, reduction="none"), idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
        t = time.perf_counter()
        engine.end_epoch(net, reference=ref_loader)
        ends += time.perf_counter() - t
    return time.perf_counter() - start, steps, ends


def run_plain(train, net: nn.Module, steps: int, args) -> float:
    """``steps`` optimizer steps over a shuffled DataLoader with ``loss.mean()``; returns seconds."""
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    done, start = 0, time.perf_counter()
    while done < steps:
        for xb, yb in loader:
            loss = F.cross_entropy(net(xb), yb, reduction="none").mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each loop, interleaved (default 5)")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="mlp on digits or cnn on 32x32")
    parser.add_argument("--epochs", type=int, default=5, help="the budget's full-data epochs (default 5)")
    parser.add_argument("--ratio", type=float, default=0.3, help="the pruning ratio (default 0.3)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the model's init: the same pruning decisions, hence steps, on every invocation
    train, ref, net = digits() if args.model == "mlp" else random_images()
    init = {k: v.clone() for k, v in net.state_dict().items()}

    def fresh() -> nn.Module:
        net.load_state_dict(init)
        return net

    _, steps, _ = run_plugin(train, ref, fresh(), args)  # warm-up, and the step count both loops then run
    run_plain(train, fresh(), steps, args)
    plain, plugin, ends = [], [], []
    for r in range(args.repeats):
        for mode in ("plain", "plugin") if r % 2 == 0 else ("plugin", "plain"):
            if mode == "plain":
                plain.append(run_plain(train, fresh(), steps, args) / steps * 1e3)
            else:
                seconds, n, end_seconds = run_plugin(train, ref, fresh(), args)
                assert n == steps, f"the plug-in ran {n} steps, not {steps}"
                plugin.append(seconds / n * 1e3)
                ends.append(end_seconds / n * 1e3)
    p, q, e = statistics.median(plain), statistics.median(plugin), statistics.median(ends)
    print(
        f"model={args.model} threads={args.threads} repeats={args.repeats} steps={steps} batch={args.batch_size} "
        f"(epochs={args.epochs}, ratio={args.ratio}, AlignPrune with its reference pass)"
    )
    print(f"plain   median {p:.3f} ms/step")
    print(f"plug-in median {q:.3f} ms/step, of which end_epoch (scorer + reference pass) {e:.3f}")
    print(f"ratio   {q / p:.3f} (without end_epoch {(q - e) / p:.3f})")


if __name__ == "__main__":
    main()
