"""Dataset loaders: each returns an ImageData of uint8 NCHW images and clean labels, read locally only."""

from alignprune_exp.data.base import ImageData
from alignprune_exp.data.cifar import find_cifar_n_file, load_cifar
from alignprune_exp.data.cifar100_meta import CIFAR100_COARSE_OF_FINE
from alignprune_exp.data.digits import load_digits

__all__ = ["CIFAR100_COARSE_OF_FINE", "ImageData", "find_cifar_n_file", "load_cifar", "load_digits"]
