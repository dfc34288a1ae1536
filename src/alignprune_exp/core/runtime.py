"""Small helpers shared by the CLI: device choice, seeding, object construction from config."""

from __future__ import annotations

import random

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as _instantiate

from .errors import AlignPruneError, ConfigError


def instantiate(node, **kwargs):
    """Build an object from a config node with a ``_target_`` (one wrapper, ready for Hydra 1.4's allow-list).

    Our own input errors raised inside a target are re-raised unwrapped, so the CLI can print them as one line.
    """
    try:
        return _instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, AlignPruneError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without a GPU is a config error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA GPU is visible: use device=cpu or device=auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device={name} is not one of: auto, cpu, cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's legacy global RNG and torch (components still draw from their own generators)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
