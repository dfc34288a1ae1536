"""Training criteria (the ``loss`` group): one loss per sample, optionally a batch term and per-sample parameters."""

from alignprune_exp.losses.base import Criterion
from alignprune_exp.losses.cross_entropy import CrossEntropy
from alignprune_exp.losses.sop_plus import SOPPlus

__all__ = ["Criterion", "CrossEntropy", "SOPPlus"]
