"""Shared fixtures: composing the real config tree and small CPU-sized digits runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import alignprune_exp.config  # noqa: F401  (registers the resolvers the YAML tree uses)

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# A digits run small enough for a unit test: MLP, a few epochs, DAS window 3.
TINY_DIGITS = [
    "dataset=digits",
    "noise=sym0.5",
    "model=mlp",
    "optimizer=sgd",
    "optimizer.lr=0.05",
    "scheduler=onecycle",
    "epochs=6",
    "batch_size=128",
    "device=cpu",
    "progress_bar=false",
    "ratio=r30",
]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No W&B traffic and no Hydra state leaking between tests."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than on two contended ones; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def compose_cfg(tmp_path):
    """compose(overrides) -> DictConfig from the real conf/ tree, writing only under tmp_path."""

    def _compose(overrides: list[str], hydra_config: bool = False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(
                "config",
                overrides=[f"results_dir={tmp_path / 'results'}", *overrides],
                return_hydra_config=hydra_config,
            )

    return _compose


@pytest.fixture
def cli_env():
    """Environment for subprocess CLI runs: offline, quiet, using this checkout's sources."""
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env
