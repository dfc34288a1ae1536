"""WebVision 1.0 "mini" (Chen et al. 2019): the first 50 classes of the Google subset, from the official layout.

Layout under ``root`` (the official WebVision 1.0 distribution):
``info/train_filelist_google.txt`` (lines ``google/q0001/<file>.jpg <label>``, paths relative to ``root``),
``info/val_filelist.txt`` (lines ``val000001.jpg <label>``, images in ``val_images_256/`` or ``val_images/``),
``info/synsets.txt`` (the 1000 WordNet ids in class order, ``n01440764 tench, ...``).
The ILSVRC2012 validation images of the same classes are read from ``<imagenet_root>/val/<wnid>/``
(or DivideMix's ``val/<class index>/`` folders).

Splits: training = Google images with label < 50 (about 66k); reference = the official WebVision validation
images of the 50 classes (the official clean split, paper Sec. 4.1); test = ILSVRC2012 val of the 50 classes
(``test_set=imagenet_val``, default), or WebVision val (``test_set=webvision_val``: the validation images
are split per class into two disjoint halves, one the reference and one the test set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.data.image_files import (
    ImageList,
    ImageListSpec,
    check_first_file,
    read_pairs,
    require_dir,
    require_file,
    scan_class_folders,
)

LAYOUT = (
    "WebVision 1.0 needs its official layout under dataset.loader.root: info/train_filelist_google.txt, "
    "info/val_filelist.txt, info/synsets.txt, google/, val_images_256/ "
    "(get WebVision 1.0 from https://data.vision.ee.ethz.ch/cvl/webvision/download.html; never downloaded "
    "automatically: it is too large)"
)
TEST_SETS = ("imagenet_val", "webvision_val")


def load_webvision_mini(
    root: str,
    imagenet_root: str | None = None,
    num_classes: int = 50,
    test_set: str = "imagenet_val",
    split_seed: int = 0,
    image_size: int = 299,
    resize_size: int = 320,
    train_crop: str = "resize_random_crop",
    num_workers: int = 8,
    decode: str = "auto",
) -> ImageListSpec:
    """Index WebVision-mini from its file lists (nothing is decoded until training).

    Raises:
        ConfigError: unknown ``test_set``.
        DataError: a missing list, image folder or ILSVRC2012 class folder, or a malformed list line.
    """
    if test_set not in TEST_SETS:
        raise ConfigError(f"dataset.loader.test_set={test_set!r} is not one of: {', '.join(TEST_SETS)}")
    root_path = Path(root).expanduser()
    info = root_path / "info"
    train = _listed(
        require_file(info / "train_filelist_google.txt", "WebVision training list", LAYOUT), root_path, num_classes
    )
    check_first_file(train, LAYOUT)
    val_dir = next((d for d in (root_path / "val_images_256", root_path / "val_images") if d.is_dir()), None)
    if val_dir is None:
        raise DataError(
            f"expected WebVision validation image folder {root_path / 'val_images_256'} "
            f"(or {root_path / 'val_images'}) does not exist; {LAYOUT}"
        )
    val = _listed(require_file(info / "val_filelist.txt", "WebVision validation list", LAYOUT), val_dir, num_classes)
    check_first_file(val, LAYOUT)
    if test_set == "imagenet_val":
        reference, test = val, _ilsvrc_val(info, imagenet_root, num_classes)
        test_name = f"ILSVRC2012 val, first {num_classes} WebVision classes ({len(test)} images)"
        reference_name = f"WebVision val, official ({len(reference)} images)"
    else:
        ref_rows, test_rows = per_class_halves(val.labels, split_seed)
        reference, test = val.subset(ref_rows), val.subset(test_rows)
        test_name = f"WebVision val, half of each class by split_seed={split_seed} ({len(test)} images)"
        reference_name = f"WebVision val, the other half ({len(reference)} images)"
    return ImageListSpec(
        name="webvision_mini",
        num_classes=num_classes,
        train=train,
        test=test,
        test_name=test_name,
        reference=reference,
        reference_name=reference_name,
        labels_are_clean=False,
        source=f"{root_path} (WebVision 1.0 Google subset, classes 0..{num_classes - 1})",
        image_size=image_size,
        resize_size=resize_size,
        train_crop=train_crop,
        num_workers=num_workers,
        decode=decode,
    )


def _listed(list_file: Path, image_root: Path, num_classes: int) -> ImageList:
    files, labels = read_pairs(list_file)
    keep = (labels >= 0) & (labels < num_classes)
    if not keep.any():
        raise DataError(f"{list_file} lists no image of classes 0..{num_classes - 1}; {LAYOUT}")
    return ImageList(str(image_root), np.asarray(files)[keep], labels[keep], str(list_file))


def _ilsvrc_val(info: Path, imagenet_root: str | None, num_classes: int) -> ImageList:
    """ILSVRC2012 val images of WebVision's first ``num_classes`` classes (wnids from ``info/synsets.txt``)."""
    fix = (
        "ILSVRC2012 validation images must be in class folders <imagenet_root>/val/<wnid>/ "
        "(set dataset.loader.imagenet_root), or test on WebVision val with dataset.loader.test_set=webvision_val"
    )
    if imagenet_root is None:
        raise ConfigError(f"dataset.loader.imagenet_root is not set; {fix}")
    val_dir = require_dir(Path(imagenet_root).expanduser() / "val", "ILSVRC2012 validation", fix)
    synsets = require_file(info / "synsets.txt", "WebVision synset list", LAYOUT)
    wnids = [line.split()[0] for line in synsets.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(wnids) < num_classes:
        raise DataError(f"{synsets} lists {len(wnids)} synsets, fewer than the {num_classes} classes used; {LAYOUT}")
    classes = wnids[:num_classes]
    if not (val_dir / classes[0]).is_dir() and (val_dir / "0").is_dir():
        classes = [str(c) for c in range(num_classes)]  # DivideMix's numbered folders
    return ImageList(str(val_dir), *scan_class_folders(val_dir, classes), f"{val_dir}/<wnid>/")


def per_class_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sorted index sets, each holding half of every class (the first gets the odd one)."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(labels)), labels))
    counts = np.bincount(labels)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(labels)) - starts[labels[order]]
    first = rank < (counts[labels[order]] + 1) // 2
    return np.sort(order[first]), np.sort(order[~first])
