"""Checks run before any data is loaded, so a bad value fails in a second with a one-line error."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from alignprune_exp.core.errors import ConfigError

# key: (minimum, what it is) for integer settings
INTS = {
    "epochs": (1, "length of the full-data schedule, e.g. epochs=30"),
    "batch_size": (1, "training batch size, e.g. batch_size=128"),
    "eval_batch_size": (1, "evaluation batch size, e.g. eval_batch_size=1024"),
    "seed": (0, "training seed, e.g. seed=0"),
    "noise_seed": (0, "noise seed, e.g. noise_seed=0"),
    "split_seed": (0, "split seed, e.g. split_seed=0"),
    "eval_every": (1, "evaluate the test set every k epochs, e.g. eval_every=1"),
    "checkpoint_every": (0, "checkpoint every k epochs (0 = only on a stop signal), e.g. checkpoint_every=1"),
}
OPTIONAL_INTS = {"num_threads": (1, "torch CPU threads, or null for torch's default")}
MAX_SEED = 2**63 - 2


# model keys that count something (layers, channels, units): integers >= 1 wherever a model file has them
MODEL_COUNTS = ("width", "depth", "hidden")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_numbers(cfg: DictConfig) -> None:
    """Settings that reach torch or timm unchecked: a wrong type or range there is a traceback, not a message."""
    smoothing = cfg.get("label_smoothing", 0.0)
    if not _is_number(smoothing) or not 0 <= smoothing < 1:
        raise ConfigError(f"label_smoothing={smoothing!r} must be a number in [0, 1), e.g. label_smoothing=0.1")
    amp = cfg.get("amp", "auto")
    if amp != "auto" and not isinstance(amp, bool):
        raise ConfigError(f"amp={amp!r} must be auto, true or false (bf16 autocast; auto: on CUDA only)")
    threshold = cfg.get("divergence_threshold")
    if threshold is not None and (not _is_number(threshold) or threshold <= 0):
        raise ConfigError(
            f"divergence_threshold={threshold!r} must be a number > 0 (a multiple of the chance-level loss "
            "ln(classes); 100 by default) or null (only a non-finite loss diverges)"
        )
    optimizer = cfg.get("optimizer") or {}
    for key, low in (("lr", 0.0), ("momentum", 0.0), ("weight_decay", 0.0)):
        value = optimizer.get(key, 1.0)  # absent: nothing to check
        if not _is_number(value) or value < low or (key == "lr" and value <= low):
            bound = "a number > 0" if key == "lr" else "a number >= 0"
            raise ConfigError(f"optimizer.{key}={value!r} must be {bound}, e.g. optimizer.{key}={_EXAMPLES[key]}")
    model = cfg.get("model") or {}
    for key in MODEL_COUNTS:
        value = model.get(key, 1)
        if not _is_int(value) or value < 1:
            raise ConfigError(f"model.{key}={value!r} must be an integer >= 1, e.g. model.{key}={_EXAMPLES[key]}")
    dropout = model.get("dropout", 0.0)
    if not _is_number(dropout) or not 0 <= dropout < 1:
        raise ConfigError(f"model.dropout={dropout!r} must be a number in [0, 1), e.g. model.dropout=0.1")


_EXAMPLES = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5.0e-4, "width": 32, "depth": 3, "hidden": 256}


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first setting out of range or of the wrong type."""
    for key, (low, what) in {**INTS, **OPTIONAL_INTS}.items():
        if key not in cfg:
            continue
        value = cfg[key]
        if value is None and key in OPTIONAL_INTS:
            continue
        if not _is_int(value) or value < low or ("seed" in key and value > MAX_SEED):
            bound = f"an integer >= {low}" + (f" and <= {MAX_SEED}" if "seed" in key else "")
            raise ConfigError(f"{key}={value!r} must be {bound} ({what})")
    factor = cfg.get("max_epoch_factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 1:
        raise ConfigError(
            f"max_epoch_factor={factor!r} must be a number >= 1 (the safety stop at "
            "max_epoch_factor x epochs; 10 by default)"
        )
    grace = cfg.get("stop_grace_s", 0)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not grace >= 0:
        raise ConfigError(f"stop_grace_s={grace!r} must be a number of seconds >= 0")
    _check_numbers(cfg)


def check_writable(folder: str | Path, name: str = "results_dir") -> None:
    """Create ``folder`` and a file in it now, rather than find out after the training."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test_"):
            pass
    except OSError as err:
        raise ConfigError(
            f"{name}={folder} is not writable ({err.strerror or err}): choose a writable {name}"
        ) from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{name}={folder} is not writable: choose a writable {name}")
