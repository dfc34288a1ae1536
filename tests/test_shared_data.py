"""Checks on the real data in ../shared/data (CIFAR-10 images, CIFAR-N label files); skipped when it is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alignprune_exp.core.safe_load import safe_torch_load
from alignprune_exp.data import load_cifar
from alignprune_exp.noise import CIFAR100_COARSE_OF_FINE, HumanNoise

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_N = SHARED / "cifar-n"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real data folder {SHARED} is absent")

# Published CIFAR-10N noise rates (Wei et al. 2021); the aggregate label file itself gives 9.01 %.
CIFAR10N_RATES = {
    "aggre_label": 0.0903,
    "worse_label": 0.4021,
    "random_label1": 0.1723,
    "random_label2": 0.1812,
    "random_label3": 0.1764,
}


@pytest.fixture(scope="module")
def cifar10():
    if not (SHARED / "cifar10" / "train_x.npy").is_file():
        pytest.skip(f"{SHARED / 'cifar10'} holds no train_x.npy")
    return load_cifar("cifar10", str(SHARED))


def test_cifar10_npy_layout_loads(cifar10):
    assert cifar10.train_x.shape == (50000, 3, 32, 32)
    assert np.array_equal(np.bincount(cifar10.train_y), np.full(10, 5000))
    # test_x_first1000.npy is not the layout's test_x.npy, so there is no official test split here
    assert cifar10.test_x is None and cifar10.test_y is None
    first = np.load(SHARED / "cifar10" / "train_x.npy", mmap_mode="r")[:2]
    assert np.array_equal(cifar10.train_x[:2].permute(0, 2, 3, 1).numpy(), first)


@pytest.mark.parametrize(("label_key", "rate"), CIFAR10N_RATES.items())
def test_cifar10n_label_sets_have_the_published_noise_rates(cifar10, label_key, rate):
    noisy = HumanNoise("cifar10", label_key).apply(
        cifar10.train_y, num_classes=10, dataset="cifar10", data_dir=str(SHARED), seed=0
    )
    assert (noisy != cifar10.train_y).mean() == pytest.approx(rate, abs=0.0005)


@pytest.fixture(scope="module")
def cifar100n() -> dict:
    path = CIFAR_N / "CIFAR-100_human.pt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return safe_torch_load(path)


def test_cifar100n_noisy_label_rate(cifar100n):
    clean = cifar100n["clean_label"]
    noisy = HumanNoise("cifar100", "real").apply(
        clean, num_classes=100, dataset="cifar100", data_dir=str(SHARED), seed=0
    )
    assert len(noisy) == 50000
    assert (noisy != clean).mean() == pytest.approx(0.4020, abs=0.0005)


def test_standard_coarse_map_matches_cifar100n_coarse_labels(cifar100n):
    for fine, coarse in (("clean_label", "clean_coarse_label"), ("noisy_label", "noisy_coarse_label")):
        assert np.array_equal(CIFAR100_COARSE_OF_FINE[cifar100n[fine]], np.asarray(cifar100n[coarse]))
