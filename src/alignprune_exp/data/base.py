"""The in-memory form every dataset loader returns, validated once so later code can trust it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from alignprune_exp.core.errors import DataError


@dataclass
class ImageData:
    """Images of one dataset in memory: uint8 NCHW tensors plus clean integer labels.

    Attributes:
        name: dataset name ("cifar10", "cifar100", "digits").
        train_x: uint8 [n, C, H, W] training images in the original training order.
        train_y: int64 [n] clean training labels.
        test_x: uint8 [m, C, H, W] official test images, or None when the test split is absent.
        test_y: int64 [m] clean test labels, or None with test_x.
        num_classes: number of (fine) classes.
        mean: per-channel mean in [0, 1] units, for normalisation.
        std: per-channel standard deviation in [0, 1] units.
        coarse_of_fine: [num_classes] fine -> coarse class map (CIFAR-100), else None.
        source: where the data was read from (path and layout), recorded in results.
    """

    name: str
    train_x: torch.Tensor
    train_y: np.ndarray
    test_x: torch.Tensor | None
    test_y: np.ndarray | None
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coarse_of_fine: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or self.name
        if self.num_classes < 2:
            raise DataError(f"{where} has num_classes={self.num_classes}; a classification dataset needs at least 2")
        self.train_y = _check_split("train", self.train_x, self.train_y, self.num_classes, where)
        if (self.test_x is None) != (self.test_y is None):
            raise DataError(f"test images and test labels must both be present or both absent in {where}")
        if self.test_x is not None:
            self.test_y = _check_split("test", self.test_x, self.test_y, self.num_classes, where)
            if self.test_x.shape[1:] != self.train_x.shape[1:]:
                raise DataError(
                    f"test images have shape {tuple(self.test_x.shape[1:])} but train images "
                    f"{tuple(self.train_x.shape[1:])} in {where}; both splits must come from the same dataset"
                )
        channels = self.train_x.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(
                f"mean/std have {len(self.mean)}/{len(self.std)} entries for {channels}-channel images of {where}"
            )
        if self.coarse_of_fine is not None:
            self.coarse_of_fine = np.asarray(self.coarse_of_fine, dtype=np.int64)
            if self.coarse_of_fine.shape != (self.num_classes,):
                raise DataError(
                    f"coarse_of_fine has shape {self.coarse_of_fine.shape} but {where} has {self.num_classes} classes"
                )

    @property
    def num_train(self) -> int:
        """Number of training images."""
        return int(self.train_x.shape[0])


def _check_split(split: str, x: torch.Tensor, y: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Validate one split's images and labels; returns the labels as int64."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        dtype = getattr(x, "dtype", None)
        raise DataError(f"{split}_x must be a uint8 tensor [n, C, H, W], got {dtype} {shape} in {where}")
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{split}_y must be a 1-D integer array, got {y.dtype} {y.shape} in {where}")
    if len(y) != x.shape[0]:
        raise DataError(f"{split}_y has {len(y)} labels for {x.shape[0]} images in {where}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{split}_y has labels in [{y.min()}, {y.max()}] but {where} has classes 0..{num_classes - 1}")
    return y.astype(np.int64, copy=False)
