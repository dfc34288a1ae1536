"""Label-noise injectors built by Hydra (``_target_``): each turns clean training labels into the run's labels."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.data.cifar import find_cifar_n_file
from alignprune_exp.noise.cifar_n import HUMAN_LABEL_KEYS, HUMAN_LABEL_SETS, load_human_labels
from alignprune_exp.noise.synthetic import check_noise_setting, make_noisy_labels


class NoiseInjector(Protocol):
    """What the trainer needs from a noise config."""

    def apply(
        self, clean_labels: np.ndarray, *, num_classes: int, dataset: str, data_dir: str, seed: int
    ) -> np.ndarray: ...

    def describe(self) -> str: ...


class NoNoise:
    """Train on the clean labels."""

    def apply(
        self, clean_labels: np.ndarray, *, num_classes: int, dataset: str, data_dir: str, seed: int
    ) -> np.ndarray:
        return np.asarray(clean_labels, dtype=np.int64).copy()

    def describe(self) -> str:
        return "none (clean labels)"


class SyntheticNoise:
    """Synthetic noise of one kind ("sym", "asym", "pairflip") at a fixed per-class rate, seeded by the run."""

    def __init__(self, kind: str, rate: float) -> None:
        check_noise_setting(kind, rate)
        self.kind = kind
        self.rate = float(rate)

    def apply(
        self, clean_labels: np.ndarray, *, num_classes: int, dataset: str, data_dir: str, seed: int
    ) -> np.ndarray:
        return make_noisy_labels(
            clean_labels, self.kind, self.rate, num_classes, seed, dataset=dataset if self.kind == "asym" else None
        )

    def describe(self) -> str:
        return f"{self.kind} {self.rate:g}"


class HumanNoise:
    """A CIFAR-N human label set, read from ``<data_dir>`` (``cifar-n/CIFAR-10_human.pt`` etc.).

    Args:
        dataset: the label file's dataset, "cifar10" (CIFAR-10N) or "cifar100" (CIFAR-100N).
        label_key: the key in the file ("aggre_label", "worse_label", "random_label1", "noisy_label", ...)
            or a CLI name ("real_aggre", "real_worst", "real_rand1", "real", ...).
        download: fetch the authors' label file into ``<data_dir>/cifar-n/`` when it is missing (SHA-256 pinned).
    """

    def __init__(self, dataset: str, label_key: str, download: bool = False) -> None:
        if dataset not in HUMAN_LABEL_KEYS:
            raise ConfigError(f"human (CIFAR-N) labels exist for {' and '.join(HUMAN_LABEL_KEYS)}, not {dataset!r}")
        if label_key in HUMAN_LABEL_SETS:
            alias_dataset, file_key = HUMAN_LABEL_SETS[label_key]
            if alias_dataset != dataset:
                raise ConfigError(f"human label set {label_key!r} belongs to {alias_dataset}, not {dataset}")
            label_key = file_key
        if label_key not in HUMAN_LABEL_KEYS[dataset]:
            raise ConfigError(
                f"unknown {dataset} human label set {label_key!r}; expected one of "
                f"{', '.join(HUMAN_LABEL_KEYS[dataset])}"
            )
        self.dataset = dataset
        self.label_key = label_key
        self.download = bool(download)

    def apply(
        self, clean_labels: np.ndarray, *, num_classes: int, dataset: str, data_dir: str, seed: int
    ) -> np.ndarray:
        if dataset != self.dataset:
            raise ConfigError(
                f"the {_title(self.dataset)}N label set {self.label_key!r} labels {self.dataset} images but the run's "
                f"dataset is {dataset}; use dataset={self.dataset} or a noise setting made for {dataset}"
            )
        clean = np.asarray(clean_labels)
        path = find_cifar_n_file(self.dataset, data_dir, download=self.download)
        return load_human_labels(path, self.label_key, len(clean), num_classes, clean_labels=clean)

    def describe(self) -> str:
        return f"{_title(self.dataset)}N {self.label_key} (human)"


def _title(dataset: str) -> str:
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(dataset, dataset)
