"""CIFAR-10N / CIFAR-100N human labels (Wei et al. 2021), read safely and checked against the image order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignprune_exp.core.errors import DataError
from alignprune_exp.core.safe_load import safe_torch_load

# Label keys of the official files, per dataset (the CIFAR-100 file also holds coarse-label lists).
HUMAN_LABEL_KEYS: dict[str, tuple[str, ...]] = {
    "cifar10": ("clean_label", "aggre_label", "worse_label", "random_label1", "random_label2", "random_label3"),
    "cifar100": ("clean_label", "noisy_label"),
}

# CLI noise names -> (dataset, file key), as in the CIFAR-N paper's naming.
HUMAN_LABEL_SETS: dict[str, tuple[str, str]] = {
    "real_aggre": ("cifar10", "aggre_label"),
    "real_rand1": ("cifar10", "random_label1"),
    "real_rand2": ("cifar10", "random_label2"),
    "real_rand3": ("cifar10", "random_label3"),
    "real_worst": ("cifar10", "worse_label"),
    "real": ("cifar100", "noisy_label"),
}


def load_human_labels(
    path: str | Path,
    label_key: str,
    num_train: int,
    num_classes: int,
    clean_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Read one label set of a CIFAR-N ``*_human.pt`` file as int64, after checking it fits the training split.

    Args:
        path: the ``CIFAR-10_human.pt`` / ``CIFAR-100_human.pt`` file.
        label_key: the key inside the file, e.g. "aggre_label", "worse_label", "noisy_label".
        num_train: number of training images the labels must cover.
        num_classes: labels must lie in [0, num_classes).
        clean_labels: the loaded clean training labels; when given they must equal the file's ``clean_label``
            element-wise, which proves the images are in the order the file indexes.

    Raises:
        DataError: unreadable file, missing key, wrong length, out-of-range labels or mismatched image order.
    """
    path = Path(path)
    content = safe_torch_load(path)
    if not isinstance(content, dict):
        raise DataError(
            f"{path} holds a {type(content).__name__}, expected a dict of label arrays; "
            "get the original file from https://github.com/UCSC-REAL/cifar-10-100n"
        )
    if label_key not in content:
        raise DataError(
            f"{path.name} has no label set {label_key!r} (available: {', '.join(map(str, content))}) in {path}; "
            "pick one of the available keys"
        )
    labels = _as_labels(content[label_key], path, label_key)
    if len(labels) != num_train:
        raise DataError(
            f"{path.name} '{label_key}' has {len(labels)} labels but the training split has {num_train} images "
            f"({path}); the file labels the full original training set, so load all of it in its original order"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{path.name} '{label_key}' has labels in [{labels.min()}, {labels.max()}] but the dataset has classes "
            f"0..{num_classes - 1} ({path}); use the label file of the same dataset"
        )
    if clean_labels is not None and "clean_label" in content:
        _check_order(np.asarray(clean_labels), _as_labels(content["clean_label"], path, "clean_label"), path)
    return labels


def _as_labels(values: object, path: Path, key: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"{path.name} '{key}' is {arr.dtype} {arr.shape}, expected a 1-D integer array ({path}); "
            "get the original file from https://github.com/UCSC-REAL/cifar-10-100n"
        )
    return arr.astype(np.int64)


def _check_order(clean: np.ndarray, file_clean: np.ndarray, path: Path) -> None:
    """The loaded clean labels must equal the file's clean labels index by index."""
    if clean.shape != file_clean.shape:
        raise DataError(
            f"the training split has {len(clean)} images but {path.name} 'clean_label' has {len(file_clean)} ({path}); "
            "the file labels the full original training set"
        )
    differ = np.flatnonzero(clean != file_clean)
    if len(differ):
        raise DataError(
            f"the training images are not in the order {path.name} indexes: {len(differ)} of {len(clean)} clean labels "
            f"differ from its 'clean_label' (first at index {differ[0]}) ({path}); the file follows torchvision's "
            "original training order (data_batch_1..5 / train), so load the images unshuffled in that order"
        )
