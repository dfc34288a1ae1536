"""Static coreset baselines: one score from a cached warm-up run, one fixed subset for the whole run."""

from alignprune_exp.pruning.static.base import StaticPolicy
from alignprune_exp.pruning.static.dual import DUAL
from alignprune_exp.pruning.static.dyn_unc import DynUnc
from alignprune_exp.pruning.static.el2n import EL2N
from alignprune_exp.pruning.static.forgetting import Forgetting
from alignprune_exp.pruning.static.grand import GraNd
from alignprune_exp.pruning.static.margin import Margin
from alignprune_exp.pruning.static.moderate import Moderate
from alignprune_exp.pruning.static.prune4rel import Prune4ReL
from alignprune_exp.pruning.static.random_static import RandomStatic
from alignprune_exp.pruning.static.small_loss import SmallLoss
from alignprune_exp.pruning.static.ssp import SSP

__all__ = [
    "StaticPolicy",
    "RandomStatic",
    "SmallLoss",
    "Margin",
    "Forgetting",
    "GraNd",
    "EL2N",
    "Moderate",
    "SSP",
    "Prune4ReL",
    "DynUnc",
    "DUAL",
]
