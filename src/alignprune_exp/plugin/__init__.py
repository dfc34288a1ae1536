"""AlignPrune in any PyTorch training loop: the project's scorers and policies behind a torch-only engine.

``import alignprune_exp.plugin`` loads torch and the domain packages (scoring, pruning, core) only: no Hydra,
OmegaConf, W&B, pandas, timm or matplotlib. See docs/plugin.md.
"""

from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.plugin.collect import gather_pairs, reference_mean_loss
from alignprune_exp.plugin.data import IndexedDataset, PlanBatchSampler
from alignprune_exp.plugin.engine import PruningEngine
from alignprune_exp.plugin.schedule import ProgressLR

__all__ = [
    "ForwardBudget",
    "IndexedDataset",
    "PlanBatchSampler",
    "PruningEngine",
    "ProgressLR",
    "gather_pairs",
    "reference_mean_loss",
]
