"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from alignprune_exp.core.errors import ConfigError


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
