"""Load untrusted pickle-based files (CIFAR batches, CIFAR-N label files, checkpoints) without running code.

Both loaders allow-list only numpy's array-rebuilding globals; anything else in the file is refused with a
DataError before it can be called.
"""

from __future__ import annotations

import codecs
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alignprune_exp.core.errors import DataError

# numpy >= 2 moved numpy.core to numpy._core; files written by numpy 1.x still name the old module.
_np_core = getattr(np, "_core", None) or np.core
_reconstruct = _np_core.multiarray._reconstruct
_scalar = _np_core.multiarray.scalar
_frombuffer = _np_core.numeric._frombuffer

_DTYPE_CLASSES = tuple(
    type(np.dtype(t))
    for t in (
        np.bool_,
        np.int8,
        np.uint8,
        np.int16,
        np.uint16,
        np.int32,
        np.uint32,
        np.int64,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    )
)

_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles spell bytes objects
    **{(mod, "_reconstruct"): _reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): _frombuffer for mod in ("numpy.core.numeric", "numpy._core.numeric")},
}


def _torch_safe_globals() -> list[Any]:
    """The numpy globals torch's weights-only unpickler may resolve, under their current and old names."""
    allowed: list[Any] = [_reconstruct, _scalar, np.ndarray, np.dtype, *_DTYPE_CLASSES]
    if _reconstruct.__module__ != "numpy.core.multiarray":
        allowed += [
            (_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_scalar, "numpy.core.multiarray.scalar"),
        ]
    return allowed


def _refusal(path: Path, detail: str) -> DataError:
    detail = _one_line(detail)
    return DataError(
        f"refusing to load {path}: it contains code or objects beyond numpy arrays ({detail}); "
        "only plain tensors/arrays, dicts, lists, numbers and strings are accepted, so replace it with a "
        "file from the original source"
    )


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"expected file {path} does not exist; check the data_dir setting and the file name")


def safe_torch_load(path: str | Path) -> object:
    """Load a torch.save file on the CPU, allowing only tensors, builtins and numpy arrays.

    Args:
        path: a file written by ``torch.save`` (zip container), e.g. a CIFAR-N label file or a checkpoint.

    Raises:
        DataError: the file is missing, unreadable, or needs any global beyond numpy's array rebuilders.
    """
    path = Path(path)
    _require_file(path)
    try:
        # A raw pickle (not a torch.save file) makes torch warn about its protocol before it fails: the one-line
        # DataError below says what is wrong, so only that warning is silenced, and only here.
        with torch.serialization.safe_globals(_torch_safe_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:  # torch's weights-only unpickler stopped before running anything
        names_a_global, detail = _weights_only_detail(str(exc))
        if names_a_global:
            raise _refusal(path, detail) from None
        raise DataError(
            f"cannot read {path}: not a valid torch.save file ({detail}); "
            "re-create it or get it again from its original source"
        ) from None
    except Exception as exc:  # torch.load raises many types (RuntimeError, KeyError, BadZipFile) for bad files
        raise DataError(
            f"cannot read {path}: not a valid torch.save file ({type(exc).__name__}: {_one_line(str(exc))}); "
            "re-create it or get it again from its original source"
        ) from None


def _weights_only_detail(message: str) -> tuple[bool, str]:
    """From torch's long weights-only error: (whether it names a refused global, the one informative line)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line:
            return True, _one_line(line.split("WeightsUnpickler error:")[-1].split(". ")[0]).rstrip(".")
    body = message.split("WeightsUnpickler error:", 1)[-1].splitlines()
    boilerplate = ("Weights only load failed", "Check the documentation")
    informative = [line.strip() for line in body if line.strip() and not line.strip().startswith(boilerplate)]
    return False, _one_line(informative[0] if informative else message)


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only numpy's array-rebuilding globals."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def safe_pickle_load(path: str | Path) -> object:
    """Unpickle a file (e.g. a CIFAR python batch) allowing only numpy arrays and builtin containers.

    Python-2 strings are decoded as latin1, as torchvision does, so the arrays of the original CIFAR files load.

    Raises:
        DataError: the file is missing, not a pickle, or references any other global.
    """
    path = Path(path)
    _require_file(path)
    try:
        with path.open("rb") as fh:
            return _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "is not allowed" in str(exc):
            raise _refusal(path, str(exc)) from None
        raise DataError(
            f"cannot read {path}: not a valid python pickle ({_one_line(str(exc))}); "
            "re-extract it from the original archive"
        ) from None
    except Exception as exc:  # truncated or corrupt pickles raise EOFError, KeyError, ValueError, ...
        raise DataError(
            f"cannot read {path}: not a valid python pickle ({type(exc).__name__}: {_one_line(str(exc))}); "
            "re-extract it from the original archive"
        ) from None
