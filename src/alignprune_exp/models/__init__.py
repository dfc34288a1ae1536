"""Models (the ``model`` group): small CPU nets and the paper's timm architectures, built by name."""

from alignprune_exp.models.builders import build_model, count_parameters, features_and_logits

__all__ = ["build_model", "count_parameters", "features_and_logits"]
