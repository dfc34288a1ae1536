"""Time one DAS update plus ranking against one training epoch of the small CNN on CIFAR-sized images.

One "DAS update + ranking" is what the trainer does after an epoch with ``pruner=infobatch_das``:
``DASScorer.observe`` of every sample's loss (shuffled order, as trained), ``observe_reference``,
``scores()`` and ``InfoBatch.select`` on them. The bank is first filled with ``window`` epochs so the
timing is the steady state. The epoch is the trainer's own ``train_order`` of ``small_cnn`` (width 64,
depth 3, batch 128, crop + flip augmentation, bf16 autocast on CUDA) on CIFAR-10 images from --data-dir
(npy or torchvision layout) or random uint8 images of CIFAR shape; with --epoch-images below
--epoch-size the epoch time is extrapolated linearly, and the output says so.

Target (issue 3): DAS update + ranking at n = 50,000 costs at most 1% of that epoch, and the bank
stays within n x N x 4 bytes plus O(n).

    python scripts/bench_scoring.py                                  # CPU (and CUDA when present)
    python scripts/bench_scoring.py --device cuda --epoch-images 50000 --data-dir ../shared/data/cifar10
    python scripts/bench_scoring.py --sizes 1000 --epoch-images 256 --repeats 1     # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alignprune_exp.data.augment import BatchAugment  # noqa: E402
from alignprune_exp.data.batches import InMemoryData  # noqa: E402
from alignprune_exp.models.builders import build_model  # noqa: E402
from alignprune_exp.plugin.budget import ForwardBudget  # noqa: E402
from alignprune_exp.pruning import FullData, InfoBatch  # noqa: E402
from alignprune_exp.scoring import DASScorer, LossScorer  # noqa: E402
from alignprune_exp.train.schedule import Constant  # noqa: E402
from alignprune_exp.train.state import RunState  # noqa: E402
from alignprune_exp.train.trainer import Trainer  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bank_bytes(scorer: DASScorer) -> tuple[int, int]:
    """(bytes of the n x N bank tensors, bytes of all the scorer's state tensors)."""
    sd = scorer.state_dict()
    per_entry = sum(sd[k].nbytes for k in ("losses", "epochs"))
    total = sum(v.nbytes for v in sd.values() if isinstance(v, torch.Tensor))
    return per_entry, total


def time_das(n: int, window: int, dtype: str, device: torch.device, repeats: int, seed: int = 0) -> dict:
    """Median (and min) seconds of one DAS update + InfoBatch ranking over n samples, after ``window`` warm epochs."""
    gen = torch.Generator().manual_seed(seed)
    scorer = DASScorer(n, window=window, dtype=dtype).to(device)
    policy = InfoBatch(n, prune_prob=0.5, delta=0.875, seed=seed)
    order = torch.randperm(n, generator=gen).to(device)
    losses = [torch.rand(n, generator=gen).mul_(4).to(device) for _ in range(window + repeats)]
    for e in range(window):
        scorer.observe(order, losses[e], e)
        scorer.observe_reference(e, 2.0 - e / window)
    scorer.scores()
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    for r in range(repeats):
        e = window + r
        sync(device)
        t0 = time.perf_counter()
        scorer.observe(order, losses[e], e)
        scorer.observe_reference(e, 1.0)
        indices, _ = policy.select(scorer.scores(), e, progress=0.5)
        sync(device)
        times.append(time.perf_counter() - t0)
    bank, total = bank_bytes(scorer)
    out = {
        "seconds": statistics.median(times),
        "min_seconds": min(times),
        "bank": bank,
        "total": total,
        "kept": indices.numel() / n,
    }
    out["peak_extra"] = (torch.cuda.max_memory_allocated(device) - base) if device.type == "cuda" else None
    return out


def load_images(data_dir: str | None, count: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(uint8 [count, 3, 32, 32], labels [count], description) from CIFAR-10 on disk or random pixels."""
    if data_dir:
        from alignprune_exp.data.cifar import load_cifar

        images = load_cifar("cifar10", data_dir)
        reps = -(-count // len(images.train_y))
        x = images.train_x.repeat(reps, 1, 1, 1)[:count]
        y = torch.as_tensor(images.train_y).repeat(reps)[:count]
        return x, y, f"CIFAR-10 images from {images.source}"
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (count,), generator=gen)
    return x, y, "random uint8 images of CIFAR shape (no --data-dir)"


def time_epoch(device: torch.device, images: int, batch_size: int, data_dir: str | None) -> tuple[float, str]:
    """Seconds of one trainer epoch of small_cnn over ``images`` images (after a short warm-up)."""
    torch.manual_seed(0)
    x, y, what = load_images(data_dir, images)
    x, y = x.to(device), y.to(device)
    empty_x, empty_y = x[:0], y[:0]
    data = InMemoryData(
        x=x,
        y=y,
        y_clean=y,
        ref_x=empty_x,
        ref_y=empty_y,
        test_x=empty_x,
        test_y=empty_y,
        augment=BatchAugment(CIFAR_MEAN, CIFAR_STD, crop_padding=4, hflip=True),
    )
    model = build_model("small_cnn", num_classes=10, width=64, depth=3).to(device)
    state = RunState(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4),
        scorer=LossScorer(images).to(device),
        policy=FullData(images),
        budget=ForwardBudget(total=10**12, full=10**12),
        shuffle_gen=torch.Generator().manual_seed(0),
        augment_gen=torch.Generator(device=device).manual_seed(1),
    )
    trainer = Trainer(state, data, Constant(), device=device, batch_size=batch_size, amp=device.type == "cuda")
    weights = torch.ones(images, device=device)
    warm = torch.arange(min(images, 2 * batch_size), device=device)
    trainer.train_order(warm, weights)
    sync(device)
    t0 = time.perf_counter()
    trainer.train_order(torch.randperm(images, device=device), weights)
    sync(device)
    return time.perf_counter() - t0, what


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_281_167], help="training-set sizes n")
    parser.add_argument("--window", type=int, default=25, help="DAS window N")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="bank precision")
    parser.add_argument("--device", nargs="+", default=["auto"], help="cpu, cuda, or auto (cpu, plus cuda if present)")
    parser.add_argument("--repeats", type=int, default=5, help="timed DAS updates per size (median and min)")
    parser.add_argument("--epoch-size", type=int, default=50_000, help="images of the reference epoch")
    parser.add_argument(
        "--epoch-images",
        type=int,
        default=None,
        help="images actually trained for the epoch timing (default: the epoch size on CUDA, "
        "4096 on CPU), extrapolated linearly to --epoch-size",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (npy or torchvision layout)")
    args = parser.parse_args(argv)

    devices = []
    for name in args.device:
        if name == "auto":
            devices += ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        elif name == "cuda" and not torch.cuda.is_available():
            print("cuda requested but not available: skipped")
        else:
            devices.append(name)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; DAS window N={args.window}, "
        f"bank dtype {args.dtype}; ranking = InfoBatch(r=0.5).select on the DAS scores"
    )
    header = (
        f"{'n':>9} {'device':>6} {'DAS+rank ms (min)':>18} {'bank MB':>9} {'bank/(nN4)':>10} {'state MB':>9} "
        f"{'epoch s':>8} {'ratio %':>8} {'ratio n-img %':>13}"
    )
    rows = []
    for dev_name in dict.fromkeys(devices):
        device = torch.device(dev_name)
        images = args.epoch_images or (args.epoch_size if device.type == "cuda" else 4096)
        measured, what = time_epoch(device, images, args.batch_size, args.data_dir)
        epoch_s = measured * args.epoch_size / images
        note = (
            ""
            if images == args.epoch_size
            else (f" (measured {measured:.2f} s on {images} images, extrapolated linearly)")
        )
        print(f"[{dev_name}] epoch of small_cnn on {args.epoch_size} images ({what}): {epoch_s:.2f} s{note}")
        for n in args.sizes:
            r = time_das(n, args.window, args.dtype, device, args.repeats)
            n_epoch_s = epoch_s * n / args.epoch_size
            timing = f"{1e3 * r['seconds']:.1f} ({1e3 * r['min_seconds']:.1f})"
            rows.append(
                f"{n:>9} {dev_name:>6} {timing:>18} {r['bank'] / 2**20:>9.1f} "
                f"{r['bank'] / (n * args.window * 4):>10.2f} {r['total'] / 2**20:>9.1f} {epoch_s:>8.2f} "
                f"{100 * r['seconds'] / epoch_s:>8.3f} {100 * r['seconds'] / n_epoch_s:>13.3f}"
            )
            if r["peak_extra"] is not None:
                rows[-1] += f"   (CUDA transient peak {r['peak_extra'] / 2**20:.0f} MB)"
    print(header)
    print("\n".join(rows))
    print(
        "DAS+rank = median (min) over --repeats; ratio % = that median / one small_cnn epoch of --epoch-size "
        "images (target <= 1% at n = 50,000);\nratio n-img % = the same against an epoch of n such images "
        "(linear). bank = the n x N losses + epochs tensors; state = all scorer tensors\n(bank + O(n) + "
        "reference history)."
    )


if __name__ == "__main__":
    main()
