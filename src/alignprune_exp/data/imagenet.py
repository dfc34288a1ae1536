"""ImageNet-1K in the standard class-folder layout (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``), streamed.

Labels follow the sorted folder names, as torchvision's ``ImageFolder``. There is no official validation
split apart from ``val/`` (the test split), so the clean reference set is drawn from the training images
(paper Sec. 4.1: the size of the test split by default). Synthetic asymmetric noise (``noise=asym0.2``)
follows Park et al. 2023 (Prune4ReL): a flipped label moves to the next class, ``c -> (c + 1) mod 1000``.
"""

from __future__ import annotations

import os
from pathlib import Path

from alignprune_exp.core.errors import DataError
from alignprune_exp.data.image_files import ImageList, ImageListSpec, check_first_file, require_dir, scan_class_folders

LAYOUT = (
    "ImageNet-1K needs the class-folder layout <root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG "
    "(validation images sorted into class folders); set dataset.loader.root to that folder (get ILSVRC2012 "
    "from https://image-net.org/download.php after accepting its terms; never downloaded automatically)"
)


def class_names(folder: Path) -> list[str]:
    """Sorted names of the sub-folders of ``folder``."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir())


def load_imagenet1k(
    root: str,
    image_size: int = 224,
    resize_size: int = 256,
    train_crop: str = "random_resized_crop",
    num_workers: int = 8,
    decode: str = "auto",
) -> ImageListSpec:
    """Index the training and validation images under ``root`` (nothing is read until training).

    Raises:
        DataError: a missing ``train/`` or ``val/`` folder, no class folders, or class folders that differ
            between the two splits.
    """
    root_path = Path(root).expanduser()
    train_dir = require_dir(root_path / "train", "ImageNet training", LAYOUT)
    val_dir = require_dir(root_path / "val", "ImageNet validation", LAYOUT)
    classes = class_names(train_dir)
    if not classes:
        raise DataError(f"{train_dir} holds no class folders; {LAYOUT}")
    val_classes = class_names(val_dir)
    if val_classes != classes:
        absent = sorted(set(classes) - set(val_classes)) or sorted(set(val_classes) - set(classes))
        raise DataError(
            f"{train_dir} and {val_dir} hold different class folders (e.g. {absent[0]}: "
            f"{len(classes)} vs {len(val_classes)} classes); both splits need the same classes"
        )
    train = ImageList(str(train_dir), *scan_class_folders(train_dir, classes), f"{train_dir}/<wnid>/")
    test = ImageList(str(val_dir), *scan_class_folders(val_dir, classes), f"{val_dir}/<wnid>/")
    for split, images in (("training", train), ("validation", test)):
        if not len(images):
            raise DataError(f"no {split} images (.JPEG/.jpg/.png) found in the class folders of {root_path}; {LAYOUT}")
    check_first_file(train, LAYOUT)
    return ImageListSpec(
        name="imagenet1k",
        num_classes=len(classes),
        train=train,
        test=test,
        test_name=f"ImageNet val ({len(test)} images)",
        source=f"{root_path} (class folders train/ + val/, {len(classes)} classes)",
        image_size=image_size,
        resize_size=resize_size,
        train_crop=train_crop,
        num_workers=num_workers,
        decode=decode,
    )
