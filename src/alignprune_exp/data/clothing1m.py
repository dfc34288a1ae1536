"""Clothing-1M (Xiao et al. 2015) from its official key lists and label files; 14 classes, real label noise.

Files, in ``root`` or ``root/annotations/``: ``noisy_train_key_list.txt`` and ``noisy_label_kv.txt``
(the noisy training set), ``clean_val_key_list.txt``, ``clean_test_key_list.txt`` and ``clean_label_kv.txt``
(the clean validation and test sets). Keys are image paths relative to ``root`` (``images/0/<file>.jpg``).
Splits: training = the noisy training keys with their noisy labels; reference = the clean validation set
(the official clean split, paper Sec. 4.1); test = the clean test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignprune_exp.core.errors import DataError
from alignprune_exp.data.image_files import (
    ImageList,
    ImageListSpec,
    check_first_file,
    read_keys,
    read_pairs,
    require_file,
)

NUM_CLASSES = 14
LAYOUT = (
    "Clothing-1M needs its official files in dataset.loader.root (or its annotations/ folder): "
    "noisy_train_key_list.txt, noisy_label_kv.txt, clean_val_key_list.txt, clean_test_key_list.txt, "
    "clean_label_kv.txt, with the images under images/ (access on request from its authors, see "
    "https://github.com/Cysu/noisy_label; never downloaded automatically)"
)


def load_clothing1m(
    root: str,
    image_size: int = 224,
    resize_size: int = 256,
    train_crop: str = "resize_random_crop",
    num_workers: int = 8,
    decode: str = "auto",
) -> ImageListSpec:
    """Index Clothing-1M from its key lists (nothing is decoded until training).

    Raises:
        DataError: a missing file, a key without a label, or a label outside 0..13.
    """
    root_path = Path(root).expanduser()
    ann = root_path / "annotations" if (root_path / "annotations").is_dir() else root_path

    def need(name: str) -> Path:
        return require_file(ann / name, "Clothing-1M file", LAYOUT)

    noisy_kv, clean_kv = need("noisy_label_kv.txt"), need("clean_label_kv.txt")
    splits = {name: need(f"{name}_key_list.txt") for name in ("noisy_train", "clean_val", "clean_test")}
    noisy_labels, clean_labels = _label_map(noisy_kv), _label_map(clean_kv)
    train = _keyed(root_path, splits["noisy_train"], noisy_labels, noisy_kv)
    reference = _keyed(root_path, splits["clean_val"], clean_labels, clean_kv)
    test = _keyed(root_path, splits["clean_test"], clean_labels, clean_kv)
    check_first_file(train, LAYOUT)
    return ImageListSpec(
        name="clothing1m",
        num_classes=NUM_CLASSES,
        train=train,
        test=test,
        test_name=f"Clothing-1M clean test ({len(test)} images)",
        reference=reference,
        reference_name=f"Clothing-1M clean val, official ({len(reference)} images)",
        labels_are_clean=False,
        source=f"{root_path} (Clothing-1M official key lists)",
        image_size=image_size,
        resize_size=resize_size,
        train_crop=train_crop,
        num_workers=num_workers,
        decode=decode,
    )


def _label_map(kv_file: Path) -> dict[str, int]:
    files, labels = read_pairs(kv_file)
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if len(bad):
        raise DataError(
            f"{kv_file} gives {files[bad[0]]} the label {labels[bad[0]]}; Clothing-1M labels are 0..{NUM_CLASSES - 1}"
        )
    return dict(zip(files, labels.tolist()))


def _keyed(root: Path, key_list: Path, labels: dict[str, int], kv_file: Path) -> ImageList:
    keys = read_keys(key_list)
    if not keys:
        raise DataError(f"{key_list} lists no images; {LAYOUT}")
    missing = [k for k in keys if k not in labels]
    if missing:
        raise DataError(
            f"{len(missing)} keys of {key_list} have no label in {kv_file} (first: {missing[0]}); "
            "use the key lists and label files of the same Clothing-1M release"
        )
    return ImageList(str(root), np.asarray(keys), np.asarray([labels[k] for k in keys], dtype=np.int64), str(key_list))
