"""Every option of every config group composes, builds its object, and a bad option lists the valid ones."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from alignprune_exp.config.instantiate import instantiate
from tests.conftest import CONF_DIR, ROOT

GROUPS = ["dataset", "noise", "model", "pruner", "ratio", "reference", "loss", "optimizer", "scheduler", "logger"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))

REQUIRED = {
    "dataset": ["cifar10", "cifar100", "digits"],
    "noise": [
        "clean",
        "sym0.2",
        "sym0.5",
        "sym0.8",
        "asym0.2",
        "asym0.4",
        "pairflip0.45",
        "real_aggre",
        "real_rand1",
        "real_rand2",
        "real_rand3",
        "real_worst",
        "real",
    ],
    "model": ["resnet18_cifar", "small_cnn", "mlp"],
    "pruner": ["full", "random_dynamic", "infobatch", "infobatch_das"],
    "ratio": ["r0", "r30", "r50", "r70"],
    "logger": ["csv", "wandb"],
}


def test_required_options_exist():
    for group, names in REQUIRED.items():
        present = {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
        assert set(names) <= present, f"{group}: missing {set(names) - present}"


def test_defaults_are_the_paper_cifar100n_setting(compose_cfg):
    cfg = compose_cfg([])
    assert cfg.dataset.name == "cifar100" and cfg.model.name == "resnet18_cifar"
    assert cfg.optimizer._target_ == "alignprune_exp.train.lars.lars" and cfg.optimizer.lr == pytest.approx(5.2)
    assert cfg.optimizer.weight_decay == pytest.approx(5e-4) and cfg.optimizer.momentum == pytest.approx(0.9)
    assert cfg.scheduler._target_.endswith("OneCycle")
    assert (cfg.epochs, cfg.batch_size) == (200, 128)
    assert cfg.pruner.policy.prune_prob == 0.5 and cfg.pruner.policy.delta == 0.875
    assert cfg.pruner.scorer.window == 25 and cfg.pruner.scorer.rho == "pearson"
    assert compose_cfg(["dataset=cifar10"]).optimizer.lr == pytest.approx(5.62)


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_option_composes(compose_cfg, group, option):
    cfg = compose_cfg([f"{group}={option}"])
    assert OmegaConf.to_container(cfg, resolve=True)[group] is not None


@pytest.mark.parametrize("option", [p.stem for p in sorted((CONF_DIR / "noise").glob("*.yaml"))])
def test_noise_options_build_injectors(compose_cfg, option):
    injector = instantiate(compose_cfg([f"noise={option}"]).noise)
    assert callable(injector.apply)


@pytest.mark.parametrize("option", REQUIRED["pruner"])
def test_pruner_options_build_policy_and_scorer(compose_cfg, option):
    cfg = compose_cfg([f"pruner={option}"])
    policy = instantiate(cfg.pruner.policy, num_samples=100, seed=0)
    scorer = instantiate(cfg.pruner.scorer, num_samples=100)
    indices, weights = policy.select(scorer.scores(), 0, progress=0.0)
    assert len(indices) == 100 and weights.shape == (100,)


@pytest.mark.parametrize("option", REQUIRED["model"])
def test_model_options_build_and_run(compose_cfg, option):
    import torch

    model = instantiate(compose_cfg([f"model={option}"]).model, num_classes=7, input_shape=(3, 32, 32))
    model.eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_files_compose(compose_cfg, name):
    cfg = compose_cfg([f"+experiment={name}"], hydra_config=True)
    assert cfg.experiment_name == name
    assert cfg.hydra.sweeper.params, "experiment files pin a sweep grid"


def test_unknown_option_lists_valid_options(compose_cfg):
    with pytest.raises(MissingConfigException) as err:
        compose_cfg(["pruner=does_not_exist"])
    assert "infobatch_das" in str(err.value)


def test_cli_unknown_option_fails_with_choices(cli_env, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "noise=sym0.9", f"results_dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Available options" in proc.stderr and "sym0.5" in proc.stderr
