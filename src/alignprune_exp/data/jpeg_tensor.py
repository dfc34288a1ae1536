"""Image decoding and crop / flip / resize as tensor ops, for the streamed image datasets.

``decode=tensor``: DataLoader workers decode with torchvision's ``decode_jpeg`` (libjpeg-turbo) and crop,
resize (antialiased) and flip uint8 tensors. ``decode=gpu``: workers only read the files' bytes; the training
process decodes each batch on the GPU in one batched ``decode_jpeg`` call (nvJPEG) and crops, resizes and flips
there. The crop box and flip of a sample come from a generator seeded with the sample's seed, so both modes
draw the same boxes whatever the worker. ``decode=pil`` keeps the torchvision/PIL pipeline
(``image_files.build_transforms``).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision import io as tvio
from torchvision import transforms as T

from alignprune_exp.core.errors import ConfigError, DataError

DECODE_MODES = ("auto", "pil", "tensor", "gpu")
# torchvision 0.29 marks its image codecs deprecated (in favour of TorchCodec) but they work unchanged.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
)
JPEG_MAGIC = b"\xff\xd8"


def resolve_decode(mode: str, device: torch.device, strong: bool = False) -> str:
    """``auto``: batched GPU decoding on CUDA, libjpeg-turbo in the workers otherwise."""
    if mode not in DECODE_MODES:
        raise ConfigError(f"dataset.loader.decode={mode!r} is not one of: {', '.join(DECODE_MODES)}")
    if mode == "auto":
        return "gpu" if device.type == "cuda" else "tensor"
    if mode == "gpu" and device.type != "cuda":
        raise ConfigError("dataset.loader.decode=gpu needs device=cuda; use decode=tensor (or auto) on CPU")
    return mode


def read_bytes(path: str, listed_in: str) -> torch.Tensor:
    """The file's bytes as a uint8 tensor; a one-line DataError when it is missing."""
    try:
        return tvio.read_file(path)
    except (FileNotFoundError, RuntimeError):
        if not os.path.isfile(path):
            raise DataError(
                f"image {path} listed in {listed_in} does not exist; restore it or remove its line from the list"
            ) from None
        raise


def _undecodable(path: str, listed_in: str, err: BaseException) -> DataError:
    return DataError(
        f"cannot decode image {path} listed in {listed_in} ({type(err).__name__}); "
        "replace the file or remove its line from the list"
    )


def decode_cpu(data: torch.Tensor, path: str, listed_in: str) -> torch.Tensor:
    """uint8 RGB [3, H, W] from encoded bytes (JPEG through libjpeg-turbo, other formats by torchvision)."""
    try:
        if bytes(data[:2].tolist()) == JPEG_MAGIC:
            return tvio.decode_jpeg(data, mode=tvio.ImageReadMode.RGB)
        return tvio.decode_image(data, mode=tvio.ImageReadMode.RGB)
    except RuntimeError as err:
        raise _undecodable(path, listed_in, err) from None


@dataclass(frozen=True)
class TensorCrop:
    """Crop box, resize and flip of one view, as tensor ops on uint8 [3, H, W] images.

    ``train_crop`` is ``resize_random_crop`` (short side to ``resize_size``, random ``image_size`` square),
    ``random_resized_crop`` (torchvision's RandomResizedCrop box: area 8-100%, aspect 3/4-4/3) or ``center``
    (evaluation: short side to ``resize_size``, centre square). Boxes are taken in the original image and
    resized once (bilinear, antialiased), instead of resizing the whole image first.
    """

    image_size: int
    resize_size: int
    train_crop: str
    flip: bool = True

    def box(self, h: int, w: int, gen: torch.Generator | None) -> tuple[int, int, int, int, bool]:
        """(top, left, height, width, flip) in the original image's pixels."""
        if self.train_crop == "center" or gen is None:
            side = min(h, w) * self.image_size / self.resize_size
            ch, cw = max(1, min(h, round(side))), max(1, min(w, round(side)))
            return (h - ch) // 2, (w - cw) // 2, ch, cw, False
        u = torch.rand(64, generator=gen).tolist()
        flip = self.flip and u[0] < 0.5
        if self.train_crop == "resize_random_crop":
            side = min(h, w) * self.image_size / self.resize_size
            ch, cw = max(1, min(h, round(side))), max(1, min(w, round(side)))
            return int(u[1] * (h - ch + 1)), int(u[2] * (w - cw + 1)), ch, cw, flip
        area, lo, hi = h * w, math.log(3 / 4), math.log(4 / 3)
        for t in range(10):
            target = area * (0.08 + 0.92 * u[3 + 4 * t])
            aspect = math.exp(lo + (hi - lo) * u[4 + 4 * t])
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return int(u[5 + 4 * t] * (h - ch + 1)), int(u[6 + 4 * t] * (w - cw + 1)), ch, cw, flip
        ratio = w / h
        if ratio < 3 / 4:
            cw, ch = w, round(w / (3 / 4))
        elif ratio > 4 / 3:
            ch, cw = h, round(h * (4 / 3))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw, flip

    def __call__(self, img: torch.Tensor, seed: int | None) -> torch.Tensor:
        """uint8 [3, image_size, image_size] view of ``img`` (random when ``seed`` is given)."""
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        top, left, ch, cw, flip = self.box(img.shape[-2], img.shape[-1], gen)
        out = crop_resize(img[:, top : top + ch, left : left + cw], self.image_size)
        return out.flip(-1) if flip else out


def crop_resize(crop: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 [3, h, w] crop to [3, size, size], rounded back to uint8."""
    if crop.shape[-2:] == (size, size):
        return crop.contiguous()
    if crop.device.type == "cpu":  # torch's uint8 kernel (SIMD) is ~4x faster than going through float
        return F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    out = F.interpolate(crop[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


class StrongTensorView:
    """SOP+'s strong view on tensors: AutoAugment (ImageNet policy) and one mean-coloured ``cutout`` square."""

    def __init__(self, image_size: int, mean: tuple[float, ...], cutout: int = 16):
        area = min(1.0, (int(cutout) / int(image_size)) ** 2)
        self.augment = T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)
        self.erase = T.RandomErasing(
            p=1.0, scale=(area, area), ratio=(1.0, 1.0), value=[int(round(255 * m)) for m in mean]
        )

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + 1)
            return self.erase(self.augment(x))


@dataclass
class EncodedBatch:
    """Encoded images and their per-sample seeds (None = evaluation), decoded later on the training device."""

    data: list[torch.Tensor]
    seeds: list[int | None]
    paths: list[str]
    listed_in: str

    def pin_memory(self) -> EncodedBatch:
        return EncodedBatch([d.pin_memory() for d in self.data], self.seeds, self.paths, self.listed_in)


_GPU_DECODE_FAILED: list[str] = []


def decode_batch(batch: EncodedBatch, device: torch.device) -> list[torch.Tensor]:
    """Decode a batch on ``device`` in one ``decode_jpeg`` call (nvJPEG); non-JPEG files, or every file when GPU
    decoding is unavailable (warned once), decode on the CPU and are copied over (non-blocking, pinned)."""
    jpeg = [bytes(d[:2].tolist()) == JPEG_MAGIC for d in batch.data]
    out: list[torch.Tensor | None] = [None] * len(batch.data)
    picks = [i for i, j in enumerate(jpeg) if j]
    if picks and device.type == "cuda" and not _GPU_DECODE_FAILED:
        try:
            decoded = tvio.decode_jpeg([batch.data[i] for i in picks], mode=tvio.ImageReadMode.RGB, device=device)
            for i, img in zip(picks, decoded):
                out[i] = img
        except RuntimeError as err:
            _GPU_DECODE_FAILED.append(str(err))
            warnings.warn(
                f"GPU JPEG decoding failed ({str(err).splitlines()[0]}); decoding on the CPU from now on",
                RuntimeWarning,
                stacklevel=2,
            )
    for i, img in enumerate(out):
        if img is None:
            cpu = decode_cpu(batch.data[i], batch.paths[i], batch.listed_in)
            out[i] = cpu.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else cpu
    return out


def transform_batch(images: list[torch.Tensor], seeds: list[int | None], crop: TensorCrop) -> torch.Tensor:
    """Crop, resize and flip each decoded image (on its device) into one uint8 [B, 3, S, S] batch."""
    return torch.stack([crop(img, seed) for img, seed in zip(images, seeds)])
