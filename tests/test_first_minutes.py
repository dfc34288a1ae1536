"""Reliability round two and the first five minutes: divergence by magnitude, one-line input errors (ours and
Hydra's, exit 2), errors printed once, dataset-fitting defaults and the app's own --help."""

from __future__ import annotations

import csv
import json
import math
import pickle
import warnings

import numpy as np
import pytest
from omegaconf import OmegaConf

from alignprune_exp.cli import one_line_hydra_error
from alignprune_exp.config.checks import validate_config
from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.core.safe_load import safe_torch_load
from alignprune_exp.pipeline.build import build_trainer
from tests.conftest import ROOT, TINY_DIGITS
from tests.test_cli import train

# The exploding run: loss 4e15 from epoch 0, 10% accuracy; it used to exit 0 with a completed row.
EXPLODING = (
    "dataset=digits noise=sym0.5 model=small_cnn model.width=16 optimizer=sgd optimizer.lr=2000 epochs=15 "
    "pruner=infobatch_das ratio=r30"
).split()

BAD = {
    "optimizer.lr=abc": "optimizer.lr='abc' must be a number > 0",
    "optimizer.lr=0": "optimizer.lr=0 must be a number > 0",
    "model=small_cnn model.width=0": "model.width=0 must be an integer >= 1",
    "label_smoothing=2": "label_smoothing=2 must be a number in [0, 1)",
    "amp=maybe": "amp='maybe' must be auto, true or false",
    "divergence_threshold=0": "divergence_threshold=0 must be a number > 0",
    "divergence_threshold=abc": "divergence_threshold='abc' must be a number > 0",
}


@pytest.mark.parametrize("overrides", list(BAD))
def test_bad_values_are_one_line_config_errors(compose_cfg, overrides):
    with pytest.raises(ConfigError) as err:
        validate_config(compose_cfg(["dataset=digits", *overrides.split()]))
    assert BAD[overrides] in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    ["amp=true", "amp=false", "amp=auto", "divergence_threshold=null", "label_smoothing=0.1", "optimizer=adamw"],
)
def test_good_values_pass(compose_cfg, overrides):
    validate_config(compose_cfg(["dataset=digits", overrides]))


def test_divergence_threshold_is_a_multiple_of_the_chance_loss(compose_cfg, one_thread):
    trainer, info = build_trainer(compose_cfg(TINY_DIGITS))
    assert info["num_classes"] == 10 and trainer.max_loss == pytest.approx(100 * math.log(10))
    trainer, _ = build_trainer(compose_cfg([*TINY_DIGITS, "divergence_threshold=null"]))
    assert trainer.max_loss == math.inf


def _max_train_loss(records) -> float:
    return max(max(r.get("train/loss", 0.0), r.get("train/weighted_loss", 0.0)) for r in records)


def test_no_healthy_run_comes_near_the_default_threshold(compose_cfg):
    """Every pruner's golden digits run (SOP+ and InfoBatch's rescaled loss included) stays > 10x below it."""
    factor = compose_cfg([]).divergence_threshold
    golden = json.loads((ROOT / "tests" / "golden" / "digits_runs.json").read_text())
    worst = max(_max_train_loss(case["epochs"]) for case in golden.values())
    assert len(golden) == 23 and 2.0 < worst < 5.0  # chance level ln 10 = 2.30; SOP+ peaks at 4.5
    assert factor * math.log(10) > 10 * worst


def test_cpu_scale_cifar_runs_would_not_trip_it(compose_cfg):
    """The CPU-scale CIFAR-10 Full runs of the regime pilot (real images, Real-W labels, trained to memorisation:
    results/regime_cpu/pilot/curves.csv) stay far below the default threshold too."""
    with open(ROOT / "results" / "regime_cpu" / "pilot" / "curves.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["dataset"] == "cifar10"]
    assert len({r["pilot"] for r in rows}) == 8 and len(rows) > 600
    worst = max(max(float(r["train/loss"]), float(r["train/weighted_loss"])) for r in rows)
    assert 2.0 < worst < 3.0  # a Full run starts at chance level, ln 10 = 2.30
    assert compose_cfg([]).divergence_threshold * math.log(10) > 10 * worst


def test_a_raw_pickle_label_file_is_one_error_and_no_torch_warnings(tmp_path):
    path = tmp_path / "CIFAR-10_human.pt"
    with open(path, "wb") as f:
        pickle.dump({"worse_label": np.zeros(4, dtype=np.int64)}, f, protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match=f"cannot read {path}: not a valid torch.save file"):
            safe_torch_load(path)
    assert [str(w.message) for w in caught] == []


def test_hydra_errors_read_as_one_line():
    from hydra.errors import MissingConfigException

    err = MissingConfigException(
        "In 'config': Could not find 'ratio/r99'\n\nAvailable options in 'ratio':\n\tr0\n\tr30\n"
        "Config search path:\n\tprovider=hydra, path=pkg://hydra.conf\n"
    )
    assert one_line_hydra_error(err).startswith(
        "In 'config': Could not find 'ratio/r99'; Available options in 'ratio': r0, r30; python train.py --help"
    )


def test_a_bare_dataset_run_gets_a_noise_setting_it_supports(compose_cfg):
    expected = {
        "digits": "sym0.5",
        "cifar10": "real_worst",
        "cifar100": "real",
        "clothing1m": "native",
        "webvision_mini": "native",
        "imagenet1k": "asym0.2",
        "news": "sym0.5",
    }
    for dataset, noise in expected.items():
        choices = compose_cfg([f"dataset={dataset}"], hydra_config=True).hydra.runtime.choices
        assert choices.noise == noise, dataset
    digits = compose_cfg(["dataset=digits"], hydra_config=True)
    assert (digits.hydra.runtime.choices.model, digits.hydra.runtime.choices.optimizer, digits.epochs) == (
        "mlp",
        "sgd",
        30,
    )
    assert compose_cfg(["dataset=cifar100"]).epochs == 200
    # An explicit choice (command line or experiment) still wins over the dataset's.
    explicit = compose_cfg(["dataset=digits", "noise=real", "model=small_cnn", "epochs=3"], hydra_config=True)
    assert (explicit.hydra.runtime.choices.noise, explicit.hydra.runtime.choices.model, explicit.epochs) == (
        "real",
        "small_cnn",
        3,
    )
    demo = compose_cfg(["+experiment=demo_digits"], hydra_config=True)
    assert (demo.hydra.runtime.choices.model, demo.epochs) == ("small_cnn", 100)
    assert OmegaConf.select(compose_cfg(["dataset=digits", "profile=cpu"]), "epochs") == 40


# --- through the CLI (train.py in a subprocess) ---------------------------------------------------------


@pytest.mark.slow
def test_an_exploding_loss_is_diverged_exit_4(cli_env, tmp_path):
    proc = train([*EXPLODING, "progress_bar=false", "snapshots=false"], cli_env, tmp_path)
    assert proc.returncode == 4, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged at epoch 0"), proc.stderr[-3000:]
    assert "loss limit 230.3" in lines[0]
    with open(tmp_path / "results" / "runs.csv", newline="") as f:
        assert [row["status"] for row in csv.DictReader(f)] == ["diverged"]


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["ratio=r99", "foo=1", "epochs=[1"])
def test_hydra_config_errors_are_one_line_exit_2(cli_env, tmp_path, bad):
    proc = train(["dataset=digits", bad], cli_env, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help" in lines[0], proc.stderr


@pytest.mark.slow
def test_a_data_error_is_printed_once(cli_env, tmp_path):
    """An explicitly incompatible noise still gets its clear error: once, on stderr only."""
    proc = train([*TINY_DIGITS, "noise=real"], cli_env, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = "labels cifar100 images but the run's dataset is digits"
    assert proc.stderr.count(message) == 1 and message not in proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_bare_digits_run_from_an_empty_folder(cli_env, tmp_path):
    proc = train(["dataset=digits", "epochs=2", "progress_bar=false"], cli_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "results" / "runs.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["dataset"], row["noise"], row["model"], row["optimizer"], row["status"]) == (
        "digits",
        "sym0.5",
        "mlp",
        "sgd",
        "completed",
    )


@pytest.mark.slow
def test_help_names_the_app_and_the_common_commands(cli_env, tmp_path):
    proc = train(["--help"], cli_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.startswith("alignprune-exp") and "powered by hydra" not in out.lower()
    for text in (
        "dataset: cifar10",
        "pruner: ",
        "python train.py dataset=digits",
        "python train.py -m ",
        "+experiment=",
    ):
        assert text in out, text
