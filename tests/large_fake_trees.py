"""Write tiny generated copies of the large benchmarks in their exact on-disk layouts (tests only).

Images are 40x40 JPEGs whose colour encodes the class (plus per-image noise), so a tiny model can learn them.
Each writer returns what it wrote, so tests can compare a loader's output with the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tests.fake_data import write_py2_pickle

IMAGE_SIDE = 40
WEBVISION_CLASSES = 50
CLOTHING_CLASSES = 14


def fake_wnids(n: int) -> list[str]:
    """WordNet-like ids in sorted order: n00000000, n00000001, ..."""
    return [f"n{i:08d}" for i in range(n)]


def write_jpeg(path: Path, label: int, num_classes: int, rng: np.random.Generator) -> None:
    """A 40x40 RGB JPEG: a class colour (hue from the label) mixed with noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hue = label / max(1, num_classes)
    colour = np.array([np.sin(6.28 * hue), np.sin(6.28 * hue + 2.1), np.sin(6.28 * hue + 4.2)]) * 100 + 128
    noise = rng.integers(-30, 31, size=(IMAGE_SIDE, IMAGE_SIDE, 3))
    Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


@dataclass
class Written:
    """Relative paths and labels of each split that was written."""

    root: Path
    splits: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def write_imagenet(
    root: Path, wnids: list[str], train_per_class: int = 3, val_per_class: int = 1, seed: int = 0
) -> Written:
    """``root/train/<wnid>/<wnid>_<i>.JPEG`` and ``root/val/<wnid>/ILSVRC2012_val_<k>.JPEG``."""
    rng = np.random.default_rng(seed)
    out = Written(Path(root))
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        files, labels = [], []
        for label, wnid in enumerate(wnids):
            for i in range(per_class):
                name = f"{wnid}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{label * per_class + i:08d}.JPEG"
                write_jpeg(Path(root) / split / wnid / name, label, len(wnids), rng)
                files.append(f"{wnid}/{name}")
                labels.append(label)
        out.splits[split] = (files, np.asarray(labels))
    return out


def write_webvision(
    root: Path,
    wnids: list[str],
    train_per_class: int = 2,
    val_per_class: int = 2,
    extra_classes: int = 2,
    seed: int = 1,
) -> Written:
    """The WebVision 1.0 layout: info/{train_filelist_google,val_filelist,synsets}.txt, google/, val_images_256/.

    Classes ``50 .. 50 + extra_classes - 1`` are written too; WebVision-mini must leave them out.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "info").mkdir(parents=True, exist_ok=True)
    out = Written(root)
    n = WEBVISION_CLASSES + extra_classes
    train_lines, val_lines = [], []
    for label in range(n):
        for i in range(train_per_class):
            rel = f"google/q{label + 1:04d}/img_{i:03d}.jpg"
            write_jpeg(root / rel, label, n, rng)
            train_lines.append((rel, label))
        for i in range(val_per_class):
            name = f"val{label * val_per_class + i + 1:06d}.jpg"
            write_jpeg(root / "val_images_256" / name, label, n, rng)
            val_lines.append((name, label))
    (root / "info" / "train_filelist_google.txt").write_text("".join(f"{p} {y}\n" for p, y in train_lines))
    (root / "info" / "val_filelist.txt").write_text("".join(f"{p} {y}\n" for p, y in val_lines))
    (root / "info" / "synsets.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(wnids)))
    for split, lines in (("train", train_lines), ("val", val_lines)):
        kept = [(p, y) for p, y in lines if y < WEBVISION_CLASSES]
        out.splits[split] = ([p for p, _ in kept], np.asarray([y for _, y in kept]))
    return out


def write_clothing1m(
    root: Path,
    train_per_class: int = 3,
    val_per_class: int = 1,
    test_per_class: int = 1,
    annotations: bool = False,
    seed: int = 2,
) -> Written:
    """The Clothing-1M files: images/<k>/<file>.jpg, *_key_list.txt and *_label_kv.txt (in annotations/ if asked).

    The noisy label of a training image is its class moved by one for every third image (real-noise stand-in).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    ann = root / "annotations" if annotations else root
    ann.mkdir(parents=True, exist_ok=True)
    out = Written(root)
    counter = 0
    clean_kv, noisy_kv = [], []
    for split, per_class in (
        ("noisy_train", train_per_class),
        ("clean_val", val_per_class),
        ("clean_test", test_per_class),
    ):
        keys, labels = [], []
        for label in range(CLOTHING_CLASSES):
            for _ in range(per_class):
                key = f"images/{counter % 10}/{counter:06d}.jpg"
                write_jpeg(root / key, label, CLOTHING_CLASSES, rng)
                given = (label + 1) % CLOTHING_CLASSES if split == "noisy_train" and counter % 3 == 0 else label
                (noisy_kv if split == "noisy_train" else clean_kv).append((key, given))
                keys.append(key)
                labels.append(given)
                counter += 1
        (ann / f"{split}_key_list.txt").write_text("".join(f"{k}\n" for k in keys))
        out.splits[split] = (keys, np.asarray(labels))
    (ann / "noisy_label_kv.txt").write_text("".join(f"{k} {y}\n" for k, y in noisy_kv))
    (ann / "clean_label_kv.txt").write_text("".join(f"{k} {y}\n" for k, y in clean_kv))
    return out


@dataclass
class FakeNews:
    """The arrays written into news.pkl."""

    root: Path
    weights: np.ndarray
    tokens: np.ndarray
    labels: np.ndarray


def write_news(
    root: Path, n_docs: int = 140, words: int = 60, dims: int = 20, vocab: int = 200, seed: int = 3, npy: bool = False
) -> FakeNews:
    """Co-teaching+'s news.pkl (a Python-2 style pickle of (weights_matrix, data, labels)) or the .npy layout.

    Each newsgroup draws most of its words from its own slice of the vocabulary, so topics are learnable.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    weights = rng.normal(size=(vocab, dims)).astype(np.float32)
    labels = rng.permutation(np.arange(n_docs) % 20).astype(np.int64)
    own = labels[:, None] * (vocab // 20) + rng.integers(0, vocab // 20, size=(n_docs, words))
    tokens = np.where(rng.random((n_docs, words)) < 0.7, own, rng.integers(0, vocab, size=(n_docs, words)))
    tokens = tokens.astype(np.int32)
    if npy:
        for name, arr in (("weights_matrix", weights), ("data", tokens), ("labels", labels)):
            np.save(root / f"{name}.npy", arr)
    else:
        write_py2_pickle((weights, tokens, labels), root / "news.pkl")
    return FakeNews(root, weights, tokens, labels)


def write_all(data_dir: Path) -> dict[str, object]:
    """All four benchmarks under one data_dir, in the folders the dataset configs expect by default
    (webvision/, imagenet/ — shared by ImageNet-1K and WebVision's ILSVRC2012 test set —, clothing1m/, news/)."""
    wnids = fake_wnids(60)
    return {
        "imagenet": write_imagenet(Path(data_dir) / "imagenet", wnids[:WEBVISION_CLASSES]),
        "webvision": write_webvision(Path(data_dir) / "webvision", wnids),
        "clothing1m": write_clothing1m(Path(data_dir) / "clothing1m"),
        "news": write_news(Path(data_dir) / "news"),
    }
