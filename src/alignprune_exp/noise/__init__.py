"""Label noise: synthetic flips with exact per-class rates, CIFAR-N human labels, and Hydra-built injectors."""

from alignprune_exp.data.cifar100_meta import CIFAR100_COARSE_OF_FINE
from alignprune_exp.noise.cifar_n import HUMAN_LABEL_KEYS, HUMAN_LABEL_SETS, load_human_labels
from alignprune_exp.noise.injectors import HumanNoise, NoiseInjector, NoNoise, SyntheticNoise
from alignprune_exp.noise.synthetic import NOISE_KINDS, make_noisy_labels

__all__ = [
    "CIFAR100_COARSE_OF_FINE",
    "HUMAN_LABEL_KEYS",
    "HUMAN_LABEL_SETS",
    "NOISE_KINDS",
    "HumanNoise",
    "NoNoise",
    "NoiseInjector",
    "SyntheticNoise",
    "load_human_labels",
    "make_noisy_labels",
]
