"""Clean reference sets (the ``reference`` group): which samples DAS aligns to, and with which labels."""

from alignprune_exp.reference.selectors import (
    CleanValReference,
    NoisyTrainReference,
    PseudoCleanReference,
    ReferenceContext,
)

__all__ = ["CleanValReference", "NoisyTrainReference", "PseudoCleanReference", "ReferenceContext"]
