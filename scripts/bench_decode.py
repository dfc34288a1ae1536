#!/usr/bin/env python
"""Images per second per DataLoader worker of the streamed-image pipelines: PIL (``decode=pil``) against
torchvision.io decoding with tensor crop / resize / flip (``decode=tensor``), and, on CUDA, batched nvJPEG
decoding with the crops on the GPU (``decode=gpu``), on generated JPEGs, in one run.

One worker's work is timed in the main process (``num_workers=0`` does exactly what each worker does):
reading, decoding and producing the uint8 training view of each image (``train`` crop: resize_random_crop
or random_resized_crop + flip) or the evaluation view (resize + centre crop). The GPU row times the worker's
part (reading bytes) plus the batched decode and crops on the GPU, per image. Repeats are interleaved; the
ratio is the median of per-repeat ratios (new / old images per second).

    python scripts/bench_decode.py                                # 200 JPEGs of 500x375, image_size 224
    python scripts/bench_decode.py --images 64 --repeats 1        # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alignprune_exp.data.image_files import (  # noqa: E402
    ImageFileDataset,
    ImageList,
    TensorImageDataset,
    build_transforms,
    collate_encoded,
)
from alignprune_exp.data.jpeg_tensor import TensorCrop  # noqa: E402


def write_jpegs(root: Path, count: int, width: int, height: int) -> ImageList:
    """Smooth random photographs-like images (low-frequency colour fields plus noise), JPEG quality 90."""
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        coarse = rng.integers(0, 256, size=(height // 32 + 1, width // 32 + 1, 3)).astype(np.uint8)
        img = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
        arr = np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, size=(height, width, 3)), 0, 255)
        name = f"img_{i:05d}.jpg"
        Image.fromarray(arr.astype(np.uint8)).save(root / name, quality=90)
        files.append(name)
    return ImageList(str(root), np.array(files), np.zeros(count, dtype=np.int64), "generated")


def time_items(dataset, keys) -> float:
    t0 = time.perf_counter()
    for k in keys:
        dataset[k]
    return time.perf_counter() - t0


def time_gpu(dataset: TensorImageDataset, keys, batch: int, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for s in range(0, len(keys), batch):
        encoded, _, _ = collate_encoded([dataset[k] for k in keys[s : s + batch]])
        dataset.decode_on(encoded.pin_memory(), device)
    torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--resize-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128, help="batch of the GPU decode")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one worker = one thread
    with tempfile.TemporaryDirectory() as tmp:
        images = write_jpegs(Path(tmp), args.images, args.width, args.height)
        print(
            f"{args.images} generated JPEGs of {args.width}x{args.height}, views of {args.image_size}px "
            f"(resize {args.resize_size}); images/s of one worker (1 thread), median of {args.repeats} "
            "interleaved repeats"
        )
        train_keys = [(i, 1000 + i) for i in range(args.images)]
        eval_keys = list(range(args.images))
        size, resize = args.image_size, args.resize_size
        for crop in ("resize_random_crop", "random_resized_crop", "eval"):
            train_crop = "random_resized_crop" if crop == "eval" else crop
            tf = build_transforms(size, resize, train_crop)
            pil = ImageFileDataset(images, tf["eval" if crop == "eval" else "train"])
            tensor = TensorImageDataset(
                images, TensorCrop(size, resize, train_crop), TensorCrop(size, resize, "center")
            )
            keys = eval_keys if crop == "eval" else train_keys
            time_items(pil, keys[:8]), time_items(tensor, keys[:8])  # warm caches
            old, new = [], []
            for r in range(args.repeats):
                pair = (("old", pil), ("new", tensor)) if r % 2 == 0 else (("new", tensor), ("old", pil))
                for which, ds in pair:
                    (old if which == "old" else new).append(len(keys) / time_items(ds, keys))
            ratio = statistics.median(n / o for n, o in zip(new, old))
            print(
                f"  {crop:>19}: PIL {statistics.median(old):7.1f} img/s, tensor {statistics.median(new):7.1f} "
                f"img/s -> new/old {ratio:.2f}"
            )
            if torch.cuda.is_available():
                device = torch.device("cuda")
                enc = TensorImageDataset(images, tensor.crop, tensor.eval_crop, encoded=True)
                time_gpu(enc, keys[: args.batch_size], args.batch_size, device)  # warm-up (nvJPEG handles)
                gpu = statistics.median(
                    len(keys) / time_gpu(enc, keys, args.batch_size, device) for _ in range(args.repeats)
                )
                print(
                    f"  {crop:>19}: GPU decode (bytes read in the worker, batched nvJPEG + crops on the GPU) "
                    f"{gpu:7.1f} img/s -> gpu/PIL {gpu / statistics.median(old):.2f}"
                )


if __name__ == "__main__":
    main()
