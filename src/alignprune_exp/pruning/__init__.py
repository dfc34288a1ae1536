"""Dynamic pruning policies: which samples train each epoch, and with what loss weight."""

from alignprune_exp.pruning.base import Policy
from alignprune_exp.pruning.divbs import DivBS
from alignprune_exp.pruning.full import FullData
from alignprune_exp.pruning.ies import IES
from alignprune_exp.pruning.infobatch import InfoBatch
from alignprune_exp.pruning.random_dynamic import RandomDynamic
from alignprune_exp.pruning.seta import SeTa

__all__ = ["Policy", "FullData", "InfoBatch", "RandomDynamic", "SeTa", "IES", "DivBS"]
