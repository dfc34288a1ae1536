"""scikit-learn's bundled 8x8 handwritten digits: a real, download-free dataset for demos and fast tests."""

from __future__ import annotations

import numpy as np
import torch

from alignprune_exp.data.base import ImageData

TEST_SIZE = 360
SPLIT_SEED = 0  # fixed so that every run, whatever its seed, sees the same train/test split


def load_digits() -> ImageData:
    """The 1797 digits as uint8 [n, 1, 8, 8] images with a fixed stratified 1437/360 train/test split.

    Pixel values 0..16 are scaled to 0..255; each split keeps the original file order.
    """
    from sklearn.datasets import load_digits as _sklearn_digits  # sklearn (and pandas) only for a digits run
    from sklearn.model_selection import train_test_split

    bunch = _sklearn_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=labels
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    train_pixels = images[train_idx].astype(np.float64) / 255.0
    return ImageData(
        name="digits",
        train_x=torch.from_numpy(images[train_idx]),
        train_y=labels[train_idx],
        test_x=torch.from_numpy(images[test_idx]),
        test_y=labels[test_idx],
        num_classes=10,
        mean=(float(train_pixels.mean()),),
        std=(float(train_pixels.std()),),
        source=f"sklearn.datasets.load_digits (bundled; fixed stratified split, test_size={TEST_SIZE}, "
        f"random_state={SPLIT_SEED})",
    )
