"""CIFAR-10/100 from a local directory (torchvision's python layout or plain .npy files), downloaded only on request.

Images keep the original training order (data_batch_1..5 / train), the order the CIFAR-N label files index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.core.safe_load import safe_pickle_load
from alignprune_exp.data import catalog
from alignprune_exp.data.base import ImageData
from alignprune_exp.data.cifar100_meta import CIFAR100_COARSE_OF_FINE

_SPECS: dict[str, dict] = {
    "cifar10": {
        "title": "CIFAR-10",
        "num_classes": 10,
        "folder": "cifar-10-batches-py",
        "train_files": [f"data_batch_{i}" for i in range(1, 6)],
        "test_file": "test_batch",
        "label_key": "labels",
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
        "human_file": "CIFAR-10_human.pt",
    },
    "cifar100": {
        "title": "CIFAR-100",
        "num_classes": 100,
        "folder": "cifar-100-python",
        "train_files": ["train"],
        "test_file": "test",
        "label_key": "fine_labels",
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
        "human_file": "CIFAR-100_human.pt",
    },
}
_NPY_LAYOUT = "npy layout: train_x.npy uint8 [n,32,32,3] + train_y.npy int [n], optional test_x.npy + test_y.npy"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR_N_URL = "https://github.com/UCSC-REAL/cifar-10-100n"


def _spec(name: str) -> dict:
    if name not in _SPECS:
        raise ConfigError(f"unknown CIFAR dataset {name!r}; expected one of {sorted(_SPECS)}")
    return _SPECS[name]


def load_cifar(name: str, data_dir: str, download: bool = False) -> ImageData:
    """Load CIFAR-10 or CIFAR-100 from ``data_dir``; with ``download`` fetch it first when no layout is there.

    Layouts, first match wins: ``<data_dir>/cifar-10-batches-py/`` or ``<data_dir>/cifar-100-python/``
    (torchvision's python pickles, read with a numpy-only unpickler), then the npy layout in
    ``<data_dir>/<name>/`` and then directly in ``<data_dir>/``.

    Args:
        name: "cifar10" or "cifar100".
        data_dir: the directory holding the data.
        download: when no layout is found, download torchvision's archive (MD5-checked) and extract it into
            ``<data_dir>/<folder>/`` (see alignprune_exp.data.catalog); off by default.

    Raises:
        ConfigError: unknown name.
        DataError: no layout found, or a file of the found layout is missing or malformed.
        DownloadError: the requested download failed or did not match its checksum.
    """
    spec = _spec(name)
    root = Path(data_dir).expanduser()
    tv_dir = root / spec["folder"]
    npy_dirs = [root / name, root]
    if tv_dir.is_dir():
        return _load_torchvision(name, spec, tv_dir)
    for npy_dir in npy_dirs:
        if (npy_dir / "train_x.npy").is_file():
            return _load_npy(name, spec, npy_dir)
    if download:
        return _load_torchvision(name, spec, catalog.fetch_cifar(name, root, spec["folder"]))
    looked = ", ".join([f"{tv_dir}/"] + [str(d / "train_x.npy") for d in npy_dirs])
    raise DataError(
        f"no {spec['title']} data found under {root} (looked at {looked}); accepted layouts: "
        f"{tv_dir}/ with torchvision's python files ({', '.join(spec['train_files'])}, {spec['test_file']}), "
        f"or the {_NPY_LAYOUT} in {root / name}/ or {root}/; download the {spec['title']} python version from "
        f"{_CIFAR_URL} and extract it into {root}, or rerun with download=true to fetch it (MD5-checked)"
    )


def _load_torchvision(name: str, spec: dict, folder: Path) -> ImageData:
    """Read torchvision's python-pickle batches: rows of 3072 bytes, channel-major (R, G, B planes)."""
    files = [folder / f for f in (*spec["train_files"], spec["test_file"])]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(
            f"incomplete {spec['title']} folder {folder}: missing {', '.join(missing)}; re-extract the "
            f"{spec['title']} python version from {_CIFAR_URL} into {folder.parent}"
        )
    train = [_read_batch(f, spec["label_key"]) for f in files[:-1]]
    test = _read_batch(files[-1], spec["label_key"])
    train_x = torch.cat([b[0] for b in train])
    train_y = np.concatenate([b[1] for b in train])
    coarse_of_fine = None
    if name == "cifar100":
        coarse = None if any(b[2] is None for b in train) else np.concatenate([b[2] for b in train])
        coarse_of_fine = _coarse_map(train_y, coarse, files[0])
        _check_coarse(test[1], test[2], coarse_of_fine, files[-1])
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test[0],
        test_y=test[1],
        num_classes=spec["num_classes"],
        mean=spec["mean"],
        std=spec["std"],
        coarse_of_fine=coarse_of_fine,
        source=f"{folder} (torchvision python layout)",
    )


def _read_batch(path: Path, label_key: str) -> tuple[torch.Tensor, np.ndarray, np.ndarray | None]:
    """One pickled batch -> (uint8 NCHW images, labels, coarse labels or None)."""
    entry = safe_pickle_load(path)
    if not isinstance(entry, dict):
        raise _bad_batch(path, f"holds a {type(entry).__name__}, expected torchvision's CIFAR dict")
    # Python-2 keys decode to str under latin1; accept bytes keys too (files re-pickled with encoding="bytes").
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or label_key not in entry:
        raise _bad_batch(path, f"has keys {sorted(map(str, entry))}, expected 'data' and '{label_key}'")
    data = np.asarray(entry["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise _bad_batch(path, f"'data' is {data.dtype} {data.shape}, expected uint8 [n, 3072]")
    labels = _labels(entry[label_key], path, label_key)
    coarse = _labels(entry["coarse_labels"], path, "coarse_labels") if "coarse_labels" in entry else None
    for key, arr in (("labels", labels), ("coarse labels", coarse)):
        if arr is not None and len(arr) != len(data):
            raise _bad_batch(path, f"has {len(arr)} {key} for {len(data)} images")
    images = torch.from_numpy(np.array(data, order="C").reshape(-1, 3, 32, 32))
    return images, labels, coarse


def _bad_batch(path: Path, problem: str) -> DataError:
    return DataError(f"{path} {problem}; re-extract the CIFAR python version from {_CIFAR_URL} in its place")


def _labels(values: object, path: Path, key: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise _bad_batch(path, f"'{key}' is {arr.dtype} {arr.shape}, expected a list of integer labels")
    return arr.astype(np.int64)


def _coarse_map(fine: np.ndarray, coarse: np.ndarray | None, path: Path) -> np.ndarray:
    """Fine -> coarse map read off a split's labels; classes absent from the split keep the standard map."""
    if coarse is None:
        return CIFAR100_COARSE_OF_FINE.copy()
    if len(fine) and (fine.min() < 0 or fine.max() >= 100):
        raise _bad_batch(path, f"has fine labels in [{fine.min()}, {fine.max()}], expected 0..99")
    mapping = CIFAR100_COARSE_OF_FINE.copy()
    mapping[fine] = coarse
    _check_coarse(fine, coarse, mapping, path)
    return mapping


def _check_coarse(fine: np.ndarray, coarse: np.ndarray | None, mapping: np.ndarray, path: Path) -> None:
    """Every image of a fine class must carry the same coarse label."""
    if coarse is None or not len(fine):
        return
    bad = np.flatnonzero(mapping[np.clip(fine, 0, len(mapping) - 1)] != coarse)
    if len(bad):
        i = int(bad[0])
        raise _bad_batch(
            path,
            f"gives inconsistent coarse labels: fine class {fine[i]} has coarse label {coarse[i]} at index {i} "
            f"but {mapping[fine[i]]} elsewhere",
        )


def _load_npy(name: str, spec: dict, folder: Path) -> ImageData:
    """Read the plain npy layout (NHWC uint8 images) without ever unpickling."""
    train_x = _images(folder / "train_x.npy")
    train_y = _labels_npy(folder / "train_y.npy")
    test_x_path, test_y_path = folder / "test_x.npy", folder / "test_y.npy"
    if test_x_path.is_file() != test_y_path.is_file():
        present, absent = (test_x_path, test_y_path) if test_x_path.is_file() else (test_y_path, test_x_path)
        raise DataError(f"{present} exists but {absent} does not; the npy layout needs both test files or neither")
    test_x = _images(test_x_path) if test_x_path.is_file() else None
    test_y = _labels_npy(test_y_path) if test_x is not None else None
    coarse_of_fine = None
    if name == "cifar100":
        # Optional coarse labels, as in torchvision's `coarse_labels`; without them the standard map is used.
        coarse_path = folder / "train_coarse_y.npy"
        coarse = _labels_npy(coarse_path) if coarse_path.is_file() else None
        if coarse is not None and coarse.shape != train_y.shape:
            raise DataError(f"{coarse_path} has shape {coarse.shape} but train_y.npy {train_y.shape}; they must match")
        if coarse is not None and np.issubdtype(train_y.dtype, np.integer):
            coarse_of_fine = _coarse_map(train_y.astype(np.int64), coarse.astype(np.int64), coarse_path)
        else:
            coarse_of_fine = CIFAR100_COARSE_OF_FINE.copy()
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=spec["num_classes"],
        mean=spec["mean"],
        std=spec["std"],
        coarse_of_fine=coarse_of_fine,
        source=f"{folder} (npy layout{'' if test_x is not None else ', no test split'})",
    )


def _npy(path: Path) -> np.ndarray:
    """Memory-map a plain numeric .npy file; pickled arrays are refused, never unpickled."""
    if not path.is_file():
        raise DataError(f"expected {path} does not exist ({_NPY_LAYOUT}); add it next to train_x.npy")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # pickled/object arrays are refused by allow_pickle=False
        raise DataError(
            f"refusing to load {path}: not a plain numeric .npy array ({' '.join(str(exc).split())}); "
            "save it with np.save from a numeric array"
        ) from None
    except (OSError, EOFError) as exc:  # an empty or truncated file raises EOFError
        raise DataError(
            f"cannot read {path}: {exc or type(exc).__name__} (empty or truncated?); save it with "
            "np.save from a numeric array"
        ) from None


def _labels_npy(path: Path) -> np.ndarray:
    return np.array(_npy(path))  # an in-memory copy; ImageData checks dtype and range


def _images(path: Path) -> torch.Tensor:
    """NHWC uint8 .npy -> NCHW uint8 tensor (one copy out of the memory map)."""
    x = _npy(path)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(
            f"{path} is {x.dtype} {x.shape}, expected uint8 [n, 32, 32, 3] (NHWC RGB); re-save it in that layout"
        )
    return torch.from_numpy(np.array(x.transpose(0, 3, 1, 2), order="C"))


def find_cifar_n_file(name: str, data_dir: str, download: bool = False) -> Path:
    """Locate the CIFAR-N human label file in ``<data_dir>/``, ``<data_dir>/cifar-n/`` or ``<data_dir>/<name>/``.

    With ``download``, a file found in none of them is fetched into ``<data_dir>/cifar-n/`` (SHA-256 pinned).

    Raises:
        DataError: the file is in none of those places (and download is off).
        DownloadError: the requested download failed or did not match its checksum.
    """
    filename = _spec(name)["human_file"]
    root = Path(data_dir).expanduser()
    candidates = [root / filename, root / "cifar-n" / filename, root / name / filename]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if download:
        return catalog.fetch_cifar_n(name, root)
    raise DataError(
        f"CIFAR-N label file {filename} not found (looked at {', '.join(map(str, candidates))}); "
        f"get it from {_CIFAR_N_URL} (data/{filename}) and put it in {root / 'cifar-n'}/, "
        "or rerun with download=true to fetch it (SHA-256-checked)"
    )
