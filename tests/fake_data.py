"""Write small generated datasets in the exact on-disk layouts the loaders accept (for tests only).

Images carry a per-class colour pattern plus noise, so a small model can learn them. Every writer returns a
FakeCifar whose arrays are what a correct loader must read back (images NHWC, original order).
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignprune_exp.data.cifar100_meta import CIFAR100_COARSE_OF_FINE

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


@dataclass
class FakeCifar:
    """What was written: the data directory to pass to load_cifar, and the arrays (images uint8 NHWC)."""

    data_dir: Path
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None


def make_images(labels: np.ndarray, num_classes: int, seed: int, noise_seed: int | None = None) -> np.ndarray:
    """uint8 NHWC 32x32 images: a random pattern per class (from ``seed``, 60 %) plus per-image noise (40 %)."""
    patterns = np.random.default_rng(seed).integers(0, 256, size=(num_classes, 32, 32, 3)).astype(np.float32)
    noise_rng = np.random.default_rng(seed + 1 if noise_seed is None else noise_seed)
    noise = noise_rng.integers(0, 256, size=(len(labels), 32, 32, 3)).astype(np.float32)
    return np.rint(0.6 * patterns[labels] + 0.4 * noise).astype(np.uint8)


def balanced_labels(n: int, num_classes: int, seed: int) -> np.ndarray:
    """n int64 labels with class counts differing by at most one, in random order."""
    return np.random.default_rng(seed).permutation(np.arange(n) % num_classes).astype(np.int64)


def write_cifar_npy(
    root: str | Path,
    name: str = "cifar10",
    n_train: int = 200,
    n_test: int = 50,
    num_classes: int | None = None,
    seed: int = 0,
    *,
    subdir: bool = True,
) -> FakeCifar:
    """Write the npy layout (train_x.npy NHWC uint8, train_y.npy int64, test_*.npy unless n_test == 0).

    Args:
        root: the data_dir to pass to load_cifar.
        name: "cifar10" or "cifar100" (sets the default num_classes and the subfolder name).
        subdir: write into ``<root>/<name>/`` (True) or directly into ``<root>/`` (False).
    """
    num_classes = num_classes or NUM_CLASSES[name]
    folder = Path(root) / name if subdir else Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    train_y = balanced_labels(n_train, num_classes, seed)
    train_x = make_images(train_y, num_classes, seed + 1)
    np.save(folder / "train_x.npy", train_x)
    np.save(folder / "train_y.npy", train_y)
    test_x = test_y = None
    if n_test:
        test_y = balanced_labels(n_test, num_classes, seed + 2)
        test_x = make_images(test_y, num_classes, seed + 1, noise_seed=seed + 3)
        np.save(folder / "test_x.npy", test_x)
        np.save(folder / "test_y.npy", test_y)
    return FakeCifar(Path(root), train_x, train_y, test_x, test_y)


class _Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python-2 ``str`` opcodes, as in the original CIFAR files (written by Python 2 cPickle)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def write_py2_pickle(obj: object, path: Path) -> None:
    """Write ``obj`` like Python 2 cPickle protocol 2 did, naming numpy's old module ``numpy.core.multiarray``."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue()
    # GLOBAL opcodes are plain text lines, so renaming the module keeps the pickle valid.
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(data)


def _batch(x_nhwc: np.ndarray, labels: dict[bytes, np.ndarray], batch_label: bytes) -> dict[bytes, object]:
    """One torchvision-style batch dict: rows of 3072 bytes, R plane then G then B, each row-major."""
    return {
        b"batch_label": batch_label,
        **{key: [int(v) for v in values] for key, values in labels.items()},
        b"data": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)).reshape(len(x_nhwc), -1),
        b"filenames": [b"img_%05d.png" % i for i in range(len(x_nhwc))],
    }


def write_cifar_torchvision(
    root: str | Path,
    name: str = "cifar10",
    n_per_batch: int = 20,
    n_test: int = 20,
    seed: int = 0,
) -> FakeCifar:
    """Write torchvision's python layout: ``cifar-10-batches-py/`` (5 data batches + test_batch) or
    ``cifar-100-python/`` (train with 5 * n_per_batch images, test; fine and coarse labels).
    """
    num_classes = NUM_CLASSES[name]
    n_train = 5 * n_per_batch
    train_y = balanced_labels(n_train, num_classes, seed)
    test_y = balanced_labels(n_test, num_classes, seed + 2)
    train_x = make_images(train_y, num_classes, seed + 1)
    test_x = make_images(test_y, num_classes, seed + 1, noise_seed=seed + 3)
    if name == "cifar10":
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(5):
            part = slice(i * n_per_batch, (i + 1) * n_per_batch)
            batch = _batch(train_x[part], {b"labels": train_y[part]}, b"training batch %d of 5" % (i + 1))
            write_py2_pickle(batch, folder / f"data_batch_{i + 1}")
        write_py2_pickle(_batch(test_x, {b"labels": test_y}, b"testing batch 1 of 1"), folder / "test_batch")
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
        write_py2_pickle(
            {b"label_names": names, b"num_cases_per_batch": n_per_batch, b"num_vis": 3072}, folder / "batches.meta"
        )
    else:
        folder = Path(root) / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            labels = {b"fine_labels": y, b"coarse_labels": CIFAR100_COARSE_OF_FINE[y]}
            write_py2_pickle(_batch(x, labels, split.encode()), folder / split)
        write_py2_pickle(
            {
                b"fine_label_names": [b"c%d" % i for i in range(100)],
                b"coarse_label_names": [b"s%d" % i for i in range(20)],
            },
            folder / "meta",
        )
    return FakeCifar(Path(root), train_x, train_y, test_x, test_y)


def write_cifar_n(
    root: str | Path,
    name: str,
    clean_labels: np.ndarray,
    noisy: dict[str, np.ndarray],
    *,
    subdir: str | None = "cifar-n",
    include_clean: bool = True,
) -> Path:
    """Write a CIFAR-N style ``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt``: torch.save of a dict of int64 arrays.

    Args:
        root: the data_dir.
        name: "cifar10" or "cifar100" (CIFAR-100 files also get coarse-label lists, like the real one).
        clean_labels: stored as ``clean_label`` unless include_clean is False.
        noisy: further label sets, e.g. {"aggre_label": ...} or {"noisy_label": ...}.
        subdir: folder under root ("cifar-n" like the shared data); None writes directly into root.
    """
    folder = Path(root) / subdir if subdir else Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    content: dict[str, object] = {}
    if include_clean:
        content["clean_label"] = np.asarray(clean_labels, dtype=np.int64)
    content.update({key: np.asarray(value, dtype=np.int64) for key, value in noisy.items()})
    if name == "cifar100":
        for key, coarse_key in (("clean_label", "clean_coarse_label"), ("noisy_label", "noisy_coarse_label")):
            if key in content:
                content[coarse_key] = CIFAR100_COARSE_OF_FINE[content[key]].tolist()
    path = folder / ("CIFAR-10_human.pt" if name == "cifar10" else "CIFAR-100_human.pt")
    torch.save(content, path)
    return path


def small_image_data(
    num_classes: int = 4, n_train: int = 256, n_test: int = 128, size: int = 16, seed: int = 0, **_ignored
):
    """An ImageData of RGB ``size``-pixel images, each class a smooth colour blob at its own place, plus noise:
    learnable within a few CPU epochs by a ResNet-18 (a loader ``_target_`` for recipe smoke tests)."""
    from alignprune_exp.data.base import ImageData

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    centres, colours = rng.uniform(0.2, 0.8, size=(num_classes, 2)), rng.uniform(0, 1, size=(num_classes, 3))
    blobs = np.exp(-((yy[None] - centres[:, :1, None]) ** 2 + (xx[None] - centres[:, 1:, None]) ** 2) / 0.02)
    patterns = blobs[:, None] * colours[:, :, None, None]  # [k, 3, H, W]

    def draw(n):
        labels = balanced_labels(n, num_classes, int(rng.integers(1 << 30)))
        x = 0.8 * patterns[labels] + 0.2 * rng.uniform(0, 1, size=(n, 3, size, size))
        return torch.from_numpy(np.rint(255 * x).astype(np.uint8)), labels

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return ImageData(
        name="small_images",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        source="generated",
    )
