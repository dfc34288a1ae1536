"""Synthetic label noise (exact per-class rates, transition structure, determinism) and the noise injectors."""

from __future__ import annotations

import numpy as np
import pytest

from alignprune_exp.core.errors import ConfigError, DataError
from alignprune_exp.noise import (
    CIFAR100_COARSE_OF_FINE,
    HumanNoise,
    NoNoise,
    SyntheticNoise,
    make_noisy_labels,
)
from tests.fake_data import write_cifar_n


def balanced(num_classes: int, per_class: int) -> np.ndarray:
    return np.repeat(np.arange(num_classes), per_class)


def transitions(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = number of samples with clean label i and noisy label j."""
    return np.bincount(clean * num_classes + noisy, minlength=num_classes**2).reshape(num_classes, num_classes)


# --- sym -------------------------------------------------------------------------------------------------------


def test_sym_flips_exactly_rate_of_each_class_to_other_classes():
    clean = balanced(10, 1000)
    noisy = make_noisy_labels(clean, "sym", 0.5, 10, seed=0)
    counts = transitions(clean, noisy, 10)
    assert (noisy != clean).sum() == 5000
    assert np.array_equal(np.diag(counts), np.full(10, 500))  # 500 kept per class, so 500 flipped per class


def test_sym_targets_are_uniform_over_the_other_classes():
    clean = balanced(10, 1000)
    noisy = make_noisy_labels(clean, "sym", 0.5, 10, seed=1)
    counts = transitions(clean, noisy, 10)
    off = counts[~np.eye(10, dtype=bool)].reshape(10, 9)
    expected = 500 / 9
    chi2 = ((off - expected) ** 2 / expected).sum()
    assert chi2 < 125  # 99.9 % quantile of chi-square with 80 degrees of freedom is about 124.8
    assert np.all(np.abs(off - expected) < 0.45 * expected)


def test_sym_per_class_count_is_round_of_rate_times_class_size():
    clean = np.concatenate([np.full(7, 0), np.full(13, 1), np.full(25, 2)])
    noisy = make_noisy_labels(clean, "sym", 0.3, 3, seed=4)
    flipped = np.bincount(clean[noisy != clean], minlength=3)
    assert flipped.tolist() == [round(0.3 * 7), round(0.3 * 13), round(0.3 * 25)] == [2, 4, 8]


def test_rate_one_flips_everything_and_rate_zero_nothing():
    clean = balanced(5, 40)
    assert np.all(make_noisy_labels(clean, "sym", 1.0, 5, seed=0) != clean)
    for kind in ("sym", "asym", "pairflip"):
        assert np.array_equal(make_noisy_labels(balanced(10, 20), kind, 0.0, 10, seed=0), balanced(10, 20))


# --- pairflip --------------------------------------------------------------------------------------------------


def test_pairflip_moves_rate_of_each_class_to_the_next_class():
    clean = balanced(10, 100)
    noisy = make_noisy_labels(clean, "pairflip", 0.3, 10, seed=0)
    flipped = noisy != clean
    assert flipped.sum() == 300
    assert np.array_equal(noisy[flipped], (clean[flipped] + 1) % 10)
    assert np.array_equal(np.bincount(clean[flipped], minlength=10), np.full(10, 30))
    assert np.any(noisy[clean == 9] == 0)  # wraps around


# --- asym ------------------------------------------------------------------------------------------------------


def test_cifar10_asym_uses_exactly_the_classic_map():
    clean = balanced(10, 1000)
    noisy = make_noisy_labels(clean, "asym", 0.4, 10, seed=0, dataset="cifar10")
    counts = transitions(clean, noisy, 10)
    expected = np.diag(np.full(10, 1000))
    for src, dst in {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}.items():  # truck->automobile, bird->airplane, deer->horse, cat<->dog
        expected[src, src], expected[src, dst] = 600, 400
    assert np.array_equal(counts, expected)
    assert (noisy != clean).mean() == pytest.approx(0.5 * 0.4, abs=0)


def test_asym_dataset_is_inferred_from_the_class_count():
    clean = balanced(10, 100)
    assert np.array_equal(
        make_noisy_labels(clean, "asym", 0.5, 10, seed=3), make_noisy_labels(clean, "asym", 0.5, 10, 3, "cifar10")
    )


def test_cifar100_asym_moves_to_the_next_fine_class_of_the_true_superclass():
    clean = balanced(100, 50)
    noisy = make_noisy_labels(clean, "asym", 0.4, 100, seed=0, dataset="cifar100")
    flipped = noisy != clean
    assert flipped.sum() == 100 * 20
    assert np.array_equal(np.bincount(clean[flipped], minlength=100), np.full(100, 20))
    assert np.array_equal(CIFAR100_COARSE_OF_FINE[noisy], CIFAR100_COARSE_OF_FINE[clean])
    target = np.full(100, -1)
    target[clean[flipped]] = noisy[flipped]
    # One target per class, and within each super-class the map is the ascending cyclic successor.
    assert all(len(set(noisy[flipped & (clean == c)])) == 1 for c in range(100))
    for coarse in range(20):
        fines = np.flatnonzero(CIFAR100_COARSE_OF_FINE == coarse)
        assert len(fines) == 5
        assert np.array_equal(target[fines], np.roll(fines, -1))
    # aquatic mammals: beaver 4 -> dolphin 30 -> otter 55 -> seal 72 -> whale 95 -> beaver 4
    assert target[[4, 30, 55, 72, 95]].tolist() == [30, 55, 72, 95, 4]


def test_cifar100_asym_accepts_another_coarse_map():
    blocks = np.arange(100) // 5  # consecutive blocks of five, as some reference code does
    clean = balanced(100, 10)
    noisy = make_noisy_labels(clean, "asym", 1.0, 100, seed=0, dataset="cifar100", coarse_of_fine=blocks)
    assert np.array_equal(noisy, np.where(clean % 5 == 4, clean - 4, clean + 1))


# --- determinism and errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sym", "asym", "pairflip"])
def test_same_seed_same_labels_other_seed_other_labels(kind):
    clean = balanced(10, 200)
    first = make_noisy_labels(clean, kind, 0.4, 10, seed=7)
    assert np.array_equal(first, make_noisy_labels(clean, kind, 0.4, 10, seed=7))
    assert not np.array_equal(first, make_noisy_labels(clean, kind, 0.4, 10, seed=8))


def test_global_rng_and_input_are_left_alone():
    np.random.seed(123)
    state = np.random.get_state()
    clean = balanced(10, 50)
    before = clean.copy()
    noisy = make_noisy_labels(clean, "sym", 0.5, 10, seed=0)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    assert np.array_equal(clean, before)
    assert noisy.dtype == np.int64 and noisy.shape == clean.shape


@pytest.mark.parametrize(
    ("kind", "rate", "num_classes", "dataset", "match"),
    [
        ("gauss", 0.2, 10, None, "unknown noise kind"),
        ("sym", -0.1, 10, None, r"\[0, 1\]"),
        ("sym", 1.5, 10, None, r"\[0, 1\]"),
        ("sym", float("nan"), 10, None, r"\[0, 1\]"),
        ("asym", 0.2, 7, None, "use pairflip"),
        ("asym", 0.2, 10, "digits", "cifar10 and cifar100"),
        ("asym", 0.2, 100, "cifar10", "num_classes=10"),
    ],
)
def test_bad_settings_raise_config_error(kind, rate, num_classes, dataset, match):
    with pytest.raises(ConfigError, match=match):
        make_noisy_labels(np.arange(num_classes), kind, rate, num_classes, seed=0, dataset=dataset)


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(DataError, match="num_classes=3"):
        make_noisy_labels(np.array([0, 1, 3]), "sym", 0.5, 3, seed=0)


# --- injectors -------------------------------------------------------------------------------------------------

RUN = {"num_classes": 10, "dataset": "cifar10", "data_dir": "/nonexistent", "seed": 5}


def test_no_noise_returns_a_copy_of_the_clean_labels():
    clean = balanced(10, 3)
    out = NoNoise().apply(clean, **RUN)
    assert np.array_equal(out, clean) and out is not clean
    assert "clean" in NoNoise().describe()


def test_synthetic_noise_wraps_make_noisy_labels_with_the_run_seed():
    clean = balanced(10, 100)
    for kind in ("sym", "asym", "pairflip"):
        injector = SyntheticNoise(kind, 0.3)
        assert np.array_equal(injector.apply(clean, **RUN), make_noisy_labels(clean, kind, 0.3, 10, 5))
    assert SyntheticNoise("sym", 0.5).describe() == "sym 0.5"


def test_synthetic_noise_checks_its_settings_and_dataset():
    with pytest.raises(ConfigError):
        SyntheticNoise("uniform", 0.2)
    with pytest.raises(ConfigError):
        SyntheticNoise("sym", 2)
    with pytest.raises(ConfigError, match="pairflip"):
        SyntheticNoise("asym", 0.2).apply(balanced(10, 5), **{**RUN, "dataset": "digits"})
    # sym and pairflip do not depend on the dataset name
    assert len(SyntheticNoise("sym", 0.2).apply(balanced(10, 5), **{**RUN, "dataset": "digits"})) == 50


def test_human_noise_reads_the_label_set_from_data_dir(tmp_path):
    clean = balanced(10, 10)
    aggre = (clean + (np.arange(100) % 7 == 0)) % 10
    write_cifar_n(tmp_path, "cifar10", clean, {"aggre_label": aggre, "worse_label": (clean + 1) % 10})
    run = {**RUN, "data_dir": str(tmp_path)}
    assert np.array_equal(HumanNoise("cifar10", "aggre_label").apply(clean, **run), aggre)
    assert np.array_equal(HumanNoise("cifar10", "real_worst").apply(clean, **run), (clean + 1) % 10)
    assert HumanNoise("cifar10", "real_aggre").describe() == "CIFAR-10N aggre_label (human)"


def test_human_noise_refuses_another_dataset_and_unknown_sets():
    run100 = {**RUN, "num_classes": 100, "dataset": "cifar100"}
    with pytest.raises(ConfigError, match="run's dataset is cifar100"):
        HumanNoise("cifar10", "aggre_label").apply(balanced(100, 1), **run100)
    with pytest.raises(ConfigError, match="noisy_label"):
        HumanNoise("cifar100", "aggre_label")
    with pytest.raises(ConfigError, match="belongs to cifar10"):
        HumanNoise("cifar100", "real_aggre")
    with pytest.raises(ConfigError):
        HumanNoise("digits", "aggre_label")


def test_human_noise_without_the_label_file_names_where_to_get_it(tmp_path):
    run = {**RUN, "num_classes": 100, "dataset": "cifar100", "data_dir": str(tmp_path)}
    with pytest.raises(DataError, match="cifar-10-100n") as info:
        HumanNoise("cifar100", "real").apply(balanced(100, 1), **run)
    assert "\n" not in str(info.value) and str(tmp_path / "cifar-n" / "CIFAR-100_human.pt") in str(info.value)
