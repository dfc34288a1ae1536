"""Per-sample ranking scores: last loss (InfoBatch) or Dynamic Alignment Score (AlignPrune)."""

from alignprune_exp.scoring.base import Scorer
from alignprune_exp.scoring.curvature import SecondOrderScorer
from alignprune_exp.scoring.das import DASScorer, das_scores
from alignprune_exp.scoring.loss import LossScorer

__all__ = ["Scorer", "LossScorer", "DASScorer", "das_scores", "SecondOrderScorer"]
