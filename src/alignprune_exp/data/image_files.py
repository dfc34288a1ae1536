"""Image files on disk for the large benchmarks: list-file parsing, a torch Dataset over files, standard
transforms, and ``ImageListSpec``, the spec the WebVision / Clothing-1M / ImageNet loaders return.

Each split is an ``ImageList`` (a root folder, paths relative to it as a fixed-width bytes array, integer
labels). Bytes arrays, unlike Python lists of str, are not copied page by page into every DataLoader worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms as T

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.data.jpeg_tensor import (
    EncodedBatch,
    StrongTensorView,
    TensorCrop,
    decode_batch,
    decode_cpu,
    read_bytes,
    resolve_decode,
    transform_batch,
)
from alignprune_exp.data.spec import Part, SourceSpec
from alignprune_exp.data.streaming import StreamingData

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
TRAIN_CROPS = ("resize_random_crop", "random_resized_crop")


@dataclass
class ImageList:
    """One split: ``root / files[i]`` is image i, with integer label ``labels[i]``; ``listed_in`` names the
    list file or folder it was read from (for error messages)."""

    root: str
    files: np.ndarray
    labels: np.ndarray
    listed_in: str

    def __post_init__(self) -> None:
        files = np.asarray(self.files)
        if files.dtype.kind != "S":
            files = np.char.encode(files.astype(str), "utf-8") if len(files) else files.astype(np.bytes_)
        self.files = files
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files but {len(self.labels)} labels from {self.listed_in}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> ImageList:
        """The images at ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageList(self.root, self.files[rows], self.labels[rows], self.listed_in)


def require_file(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is a file, else a one-line DataError naming it."""
    if not path.is_file():
        raise DataError(f"expected {what} {path} does not exist; {fix}")
    return path


def require_dir(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is a directory, else a one-line DataError naming it."""
    if not path.is_dir():
        raise DataError(f"expected {what} folder {path} does not exist; {fix}")
    return path


def read_pairs(path: Path) -> tuple[list[str], np.ndarray]:
    """Lines ``<relative path> <integer label>`` (WebVision file lists, Clothing-1M ``*_kv.txt``)."""
    files, labels = [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DataError(f"{path} line {lineno} is {line.strip()!r}; expected '<image path> <integer label>'")
            files.append(parts[0])
            labels.append(int(parts[1]))
    return files, np.asarray(labels, dtype=np.int64)


def read_keys(path: Path) -> list[str]:
    """Lines holding one relative image path each (Clothing-1M ``*_key_list.txt``)."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def scan_class_folders(folder: Path, classes: list[str]) -> tuple[list[str], np.ndarray]:
    """Images under ``folder/<class>/`` for each class in order (label = position); files sorted by name."""
    files, labels = [], []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DataError(f"expected class folder {class_dir} does not exist; every class needs a folder in {folder}")
        with os.scandir(class_dir) as it:
            names = sorted(e.name for e in it if e.name.lower().endswith(IMAGE_SUFFIXES))
        files += [f"{name}/{n}" for n in names]
        labels += [label] * len(names)
    return files, np.asarray(labels, dtype=np.int64)


def check_first_file(images: ImageList, fix: str) -> None:
    """Fail early (one line) when the first listed image is absent: the usual sign of a wrong root folder."""
    if len(images) and not os.path.isfile(os.path.join(images.root, images.files[0].decode())):
        path = os.path.join(images.root, images.files[0].decode())
        raise DataError(f"image {path} listed in {images.listed_in} does not exist; {fix}")


class ImageFileDataset(Dataset):
    """Reads one image per item and returns ``(uint8 CHW tensor, label, index)``.

    An item key may be ``(index, seed)``: the random transform then runs under that seed on a forked
    RNG, so augmentation is a function of the trainer's generator and the sample, whatever the worker.
    """

    def __init__(self, images: ImageList, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Image.Image:
        path = os.path.join(self.images.root, self.images.files[index].decode())
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except FileNotFoundError:
            raise DataError(
                f"image {path} listed in {self.images.listed_in} does not exist; "
                "restore it or remove its line from the list"
            ) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(
                f"cannot decode image {path} listed in {self.images.listed_in} "
                f"({type(exc).__name__}); replace the file or remove its line from the list"
            ) from None

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        img = self.load(index)
        if seed is None:
            x = self.transform(img)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                x = self.transform(img)
        return x, int(self.images.labels[index]), index


class TensorImageDataset(Dataset):
    """Reads one image per item with torchvision.io and crops / resizes / flips it as uint8 tensor ops
    (``jpeg_tensor``); returns ``(uint8 CHW tensor, label, index)``, or with ``strong`` a (weak, strong) pair.

    With ``encoded`` the item is the file's bytes, decoded later for the whole batch on the GPU
    (``decode_on``). An item key ``(index, seed)`` draws the crop and flip from that seed; a plain index gives
    the evaluation view (centre crop).
    """

    def __init__(
        self,
        images: ImageList,
        crop: TensorCrop,
        eval_crop: TensorCrop,
        strong: StrongTensorView | None = None,
        encoded: bool = False,
    ):
        self.images, self.crop, self.eval_crop, self.strong, self.encoded = images, crop, eval_crop, strong, encoded
        self.collate_fn = collate_encoded if encoded else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        path = os.path.join(self.images.root, self.images.files[index].decode())
        data = read_bytes(path, self.images.listed_in)
        label = int(self.images.labels[index])
        if self.encoded:
            return (data, seed, path, self.images.listed_in), label, index
        img = decode_cpu(data, path, self.images.listed_in)
        x = self.crop(img, seed) if seed is not None else self.eval_crop(img, None)
        if self.strong is not None:
            return (x, self.strong(self.crop(img, seed + 1), seed + 2)), label, index
        return x, label, index

    def decode_on(self, batch: EncodedBatch, device: torch.device) -> torch.Tensor:
        """uint8 [B, 3, S, S] on ``device`` from a batch of encoded items."""
        crop = self.crop if batch.seeds and batch.seeds[0] is not None else self.eval_crop
        return transform_batch(decode_batch(batch, device), batch.seeds, crop)


def collate_encoded(samples):
    """(EncodedBatch, labels, indices) from encoded items: byte strings of different lengths stay a list."""
    items, labels, indices = zip(*samples)
    batch = EncodedBatch([i[0] for i in items], [i[1] for i in items], [i[2] for i in items], items[0][3])
    return batch, torch.as_tensor(labels), torch.as_tensor(indices)


class TwoViews:
    """A weak and a strong view of the same image (for criteria that need a strongly augmented view)."""

    def __init__(self, weak, strong):
        self.weak, self.strong = weak, strong

    def __call__(self, img):
        return self.weak(img), self.strong(img)


def build_transforms(
    image_size: int, resize_size: int, train_crop: str, mean: tuple[float, ...] = IMAGENET_MEAN, cutout: int = 16
) -> dict[str, object]:
    """torchvision pipelines returning uint8 tensors (normalised later on the device).

    ``train``: ``resize_random_crop`` (resize the short side to ``resize_size``, random ``image_size`` crop;
    the DivideMix / Prune4ReL recipe for WebVision and Clothing-1M) or ``random_resized_crop`` (ImageNet
    recipe), then a horizontal flip. ``eval``: resize + centre crop. ``strong`` (SOP+'s second view, as in
    Prune4ReL): ``train`` plus AutoAugment (ImageNet policy) and one ``cutout``-pixel square filled with the
    mean colour (zero after normalisation).
    """
    if train_crop not in TRAIN_CROPS:
        raise ConfigError(f"dataset.loader.train_crop={train_crop!r} is not one of: {', '.join(TRAIN_CROPS)}")
    if int(resize_size) < int(image_size):
        raise ConfigError(f"dataset.loader.resize_size={resize_size} must be >= image_size={image_size}")
    if train_crop == "resize_random_crop":
        crop = [T.Resize(resize_size), T.RandomCrop(image_size)]
    else:
        crop = [T.RandomResizedCrop(image_size)]
    train = [*crop, T.RandomHorizontalFlip()]
    area = min(1.0, (int(cutout) / int(image_size)) ** 2)
    fill = [int(round(255 * m)) for m in mean]
    return {
        "train": T.Compose([*train, T.PILToTensor()]),
        "eval": T.Compose([T.Resize(resize_size), T.CenterCrop(image_size), T.PILToTensor()]),
        "strong": T.Compose(
            [
                *train,
                T.AutoAugment(T.AutoAugmentPolicy.IMAGENET),
                T.PILToTensor(),
                T.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0), value=fill),
            ]
        ),
    }


@dataclass
class ImageListSpec(SourceSpec):
    """An image dataset as lists of files: the training split, the official test split and, when the dataset
    has one, the official clean validation split that serves as the reference set.

    Args:
        image_size: side of the square model input; resize_size: short side before cropping.
        train_crop: ``resize_random_crop`` or ``random_resized_crop`` (see ``image_files.build_transforms``).
        decode: ``auto`` (``gpu`` on CUDA, else ``tensor``), ``tensor`` (torchvision.io decoding and tensor
            crop / resize / flip in the workers), ``gpu`` (workers read bytes; batched nvJPEG decoding and
            tensor ops on the GPU; strong views still decode in the workers) or ``pil`` (the PIL pipeline).
    """

    name: str
    num_classes: int
    train: ImageList
    test: ImageList
    test_name: str
    source: str
    image_size: int
    resize_size: int
    train_crop: str
    num_workers: int = 0
    reference: ImageList | None = None
    reference_name: str | None = None
    labels_are_clean: bool = True
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    decode: str = "auto"

    def __post_init__(self) -> None:
        self.transforms = build_transforms(int(self.image_size), int(self.resize_size), self.train_crop, self.mean)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, int(self.image_size), int(self.image_size))

    @property
    def train_y(self) -> np.ndarray:
        return self.train.labels

    @property
    def test_y(self) -> np.ndarray:
        return self.test.labels

    @property
    def reference_y(self) -> np.ndarray | None:
        return None if self.reference is None else self.reference.labels

    def _images(self, part: Part) -> ImageList:
        split = {"train": self.train, "reference": self.reference, "test": self.test}[part.split]
        return split.subset(part.rows)

    def datasets(self, images: ImageList, device: torch.device) -> dict[str, Dataset]:
        """The ``train``, ``eval`` and ``strong`` (weak, strong views) datasets over ``images`` for this decoder."""
        mode = resolve_decode(self.decode, torch.device(device))
        if mode == "pil":
            tf = self.transforms
            return {
                "train": ImageFileDataset(images, tf["train"]),
                "eval": ImageFileDataset(images, tf["eval"]),
                "strong": ImageFileDataset(images, TwoViews(tf["train"], tf["strong"])),
            }
        size, resize = int(self.image_size), int(self.resize_size)
        crop, center = TensorCrop(size, resize, self.train_crop), TensorCrop(size, resize, "center")
        encoded = mode == "gpu"
        return {
            "train": TensorImageDataset(images, crop, center, encoded=encoded),
            "eval": TensorImageDataset(images, crop, center, encoded=encoded),
            "strong": TensorImageDataset(images, crop, center, strong=StrongTensorView(size, self.mean)),
        }

    def make_source(
        self, train: Part, train_noisy: np.ndarray, reference: Part, test: Part, device: torch.device
    ) -> StreamingData:
        images = self._images(train)
        sets = self.datasets(images, device)

        def labels(values) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values), dtype=torch.long).to(device)

        return StreamingData(
            train=sets["train"],
            train_eval=sets["eval"],
            train_strong=sets["strong"],
            reference=self.datasets(self._images(reference), device)["eval"],
            test=self.datasets(self._images(test), device)["eval"],
            y=labels(train_noisy),
            y_clean=labels(train.labels),
            ref_y=labels(reference.labels),
            test_y=labels(test.labels),
            mean=self.mean,
            std=self.std,
            num_workers=self.num_workers,
            device=device,
        )
