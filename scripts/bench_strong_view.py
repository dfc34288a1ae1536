"""Per-batch cost of SOP+'s strong view: AutoAugment (new) vs brightness/contrast jitter (old) vs the weak view.

One batch = 128 uint8 CIFAR-shaped images (3 x 32 x 32, random pixels or an --images .npy) on
--device, augmented by:
  weak          crop(pad 4) + flip + normalise (``BatchAugment``, what every run trains on)
  jitter        crop/flip + brightness/contrast jitter + Cutout 16 (``strong_view=jitter``, the old view)
  autoaugment   crop/flip + AutoAugment CIFAR-10, a policy per image, images grouped by drawn op + Cutout 16
                (``strong_view=autoaugment``, the new default)
  per_image     the same AutoAugment as one torchvision ``v2.AutoAugment`` call per image (the alternative
                the grouped form was chosen over)
Each is timed over --repeats batches after --warmup ones (median ms per batch); ratios are taken in
this one run. On CUDA the clock waits for the device.

    python scripts/bench_strong_view.py                      # CPU, random images
    python scripts/bench_strong_view.py --images ../shared/data/cifar10/test_x_first1000.npy
    python scripts/bench_strong_view.py --device cuda --threads 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alignprune_exp.data.augment import BatchAugment  # noqa: E402
from alignprune_exp.data.strong_augment import AutoAugmentView, JitterView, cutout  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def per_image_view(weak: BatchAugment, auto: v2.AutoAugment):
    """crop/flip, then one torchvision AutoAugment call per image (its own global-RNG draws), then Cutout."""

    def view(x, generator):
        x = weak.random_crop_flip(x, generator)
        x = torch.stack([auto(img) for img in x])
        return cutout(weak.normalize(x), 16, generator)

    return view


def timed(fn, x, gen, device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn(x, gen)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x, gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--images", default=None, help="a uint8 .npy of CIFAR images, NHWC or NCHW (else random pixels)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.images:
        import numpy as np

        x = torch.from_numpy(np.load(args.images)[: args.batch])
        x = x.permute(0, 3, 1, 2).contiguous() if x.shape[-1] == 3 else x
        source = f"images from {args.images}"
    else:
        x = (torch.rand(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
        source = "random uint8 pixels"
    x = x.to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    weak = BatchAugment(MEAN, STD, crop_padding=4, hflip=True)
    views = {
        "weak": lambda b, g: weak(b, generator=g, train=True),
        "jitter": JitterView(MEAN, STD),
        "autoaugment": AutoAugmentView(MEAN, STD),
        "per_image": per_image_view(weak, v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=128)),
    }
    ms = {}
    for name, fn in views.items():
        call = fn if name in ("weak", "per_image") else (lambda b, g, f=fn: f(b, generator=g, train=True))
        ms[name] = timed(call, x, gen, device, args.warmup, args.repeats)
    print(
        f"device {device}, batch {args.batch} x 3 x 32 x 32 ({source}), {torch.get_num_threads()} CPU threads, "
        f"median of {args.repeats} batches"
    )
    print(f"{'view':<12} {'ms/batch':>9} {'x weak':>8} {'x jitter':>9}")
    for name, t in ms.items():
        print(f"{name:<12} {t:9.2f} {t / ms['weak']:8.1f} {t / ms['jitter']:9.1f}")
    print(f"autoaugment grouped vs per-image calls: {ms['per_image'] / ms['autoaugment']:.1f}x faster")


if __name__ == "__main__":
    main()
