"""Where the Hydra config tree is: the checkout's top-level conf/, else the installed ``alignprune_exp.conf``.

A source checkout (``train.py``, ``PYTHONPATH=src``, an editable install) reads its own conf/, so edits to the
YAML files take effect at once; a wheel or a plain ``pip install .`` ships the same tree as package data.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE = "alignprune_exp.conf"


def checkout_conf_dir() -> Path | None:
    """The conf/ beside src/ when this package runs from a source checkout, else None."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "conf" / "config.yaml").is_file():
        return root / "conf"
    return None


def config_dir() -> Path:
    """The directory holding ``config.yaml`` and the config groups (checkout first, then the installed package)."""
    checkout = checkout_conf_dir()
    if checkout is not None:
        return checkout
    return Path(str(files(PACKAGE)))
