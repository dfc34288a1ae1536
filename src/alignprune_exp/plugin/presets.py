"""The engine's named configurations, with the defaults of the matching ``pruner=`` YAML files (conf/pruner/).

Each returns the keyword arguments of ``PruningEngine``: scorer, policy, budget, seed and the config that
fingerprints the engine's state. ``tests/test_plugin_presets.py`` composes the YAML files and checks that the
objects built here equal the ones the pipeline builds.
"""

from __future__ import annotations

from typing import Any

from alignprune_exp.plugin.budget import ForwardBudget
from alignprune_exp.pruning import InfoBatch, RandomDynamic, SeTa
from alignprune_exp.scoring import DASScorer, LossScorer


def _engine_kwargs(name: str, scorer, policy, num_samples: int, epochs: int, ratio: float, seed: int, options):
    config = {"preset": name, "num_samples": int(num_samples), "epochs": int(epochs), "ratio": float(ratio)}
    config.update(seed=int(seed), **options)
    budget = ForwardBudget.from_ratio(int(epochs), int(num_samples), float(ratio))
    return {"scorer": scorer, "policy": policy, "budget": budget, "seed": int(seed), "config": config}


def _das(num_samples: int, window, rho: str, dtype: str, cold_start: str, cold_start_fraction: float) -> DASScorer:
    return DASScorer(
        num_samples, window=window, rho=rho, dtype=dtype, cold_start=cold_start, cold_start_fraction=cold_start_fraction
    )


def infobatch_das(
    num_samples: int,
    epochs: int,
    ratio: float,
    *,
    prune_prob: float = 0.5,
    delta: float = 0.875,
    rescale: bool = True,
    min_keep: float = 0.0,
    anneal_by: str = "budget",
    window: int | None = 25,
    rho: str = "pearson",
    dtype: str = "float32",
    cold_start: str = "loss",
    cold_start_fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """AlignPrune: InfoBatch ranked by the Dynamic Alignment Score (``pruner=infobatch_das``)."""
    options = dict(prune_prob=prune_prob, delta=delta, rescale=rescale, min_keep=min_keep, anneal_by=anneal_by)
    policy = InfoBatch(num_samples, num_epochs=epochs, budget_fraction=1.0 - float(ratio), seed=seed, **options)
    scorer = _das(num_samples, window, rho, dtype, cold_start, cold_start_fraction)
    options.update(window=window, rho=rho, dtype=dtype, cold_start=cold_start, cold_start_fraction=cold_start_fraction)
    return _engine_kwargs("infobatch_das", scorer, policy, num_samples, epochs, ratio, seed, options)


def infobatch(
    num_samples: int,
    epochs: int,
    ratio: float,
    *,
    prune_prob: float = 0.5,
    delta: float = 0.875,
    rescale: bool = True,
    min_keep: float = 0.0,
    anneal_by: str = "budget",
    init_value: float = 3.0,
    seed: int = 0,
) -> dict[str, Any]:
    """InfoBatch ranked by the last loss (``pruner=infobatch``)."""
    options = dict(prune_prob=prune_prob, delta=delta, rescale=rescale, min_keep=min_keep, anneal_by=anneal_by)
    policy = InfoBatch(num_samples, num_epochs=epochs, budget_fraction=1.0 - float(ratio), seed=seed, **options)
    options.update(init_value=init_value)
    scorer = LossScorer(num_samples, init_value)
    return _engine_kwargs("infobatch", scorer, policy, num_samples, epochs, ratio, seed, options)


def seta(
    num_samples: int,
    epochs: int,
    ratio: float,
    *,
    prune_prob: float = 0.1,
    num_groups: int = 5,
    alpha: float = 0.9,
    delta: float = 0.875,
    init_value: float = 3.0,
    seed: int = 0,
) -> dict[str, Any]:
    """SeTa ranked by the last loss (``pruner=seta``)."""
    options = dict(prune_prob=prune_prob, num_groups=num_groups, alpha=alpha, delta=delta)
    policy = SeTa(num_samples, seed=seed, **options)
    options.update(init_value=init_value)
    scorer = LossScorer(num_samples, init_value)
    return _engine_kwargs("seta", scorer, policy, num_samples, epochs, ratio, seed, options)


def seta_das(
    num_samples: int,
    epochs: int,
    ratio: float,
    *,
    prune_prob: float = 0.1,
    num_groups: int = 5,
    alpha: float = 0.9,
    delta: float = 0.875,
    window: int | None = 25,
    rho: str = "pearson",
    dtype: str = "float32",
    cold_start: str = "loss",
    cold_start_fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """AlignPrune on SeTa: SeTa ranked by the Dynamic Alignment Score (``pruner=seta_das``)."""
    options = dict(prune_prob=prune_prob, num_groups=num_groups, alpha=alpha, delta=delta)
    policy = SeTa(num_samples, seed=seed, **options)
    scorer = _das(num_samples, window, rho, dtype, cold_start, cold_start_fraction)
    options.update(window=window, rho=rho, dtype=dtype, cold_start=cold_start, cold_start_fraction=cold_start_fraction)
    return _engine_kwargs("seta_das", scorer, policy, num_samples, epochs, ratio, seed, options)


def random_dynamic(
    num_samples: int,
    epochs: int,
    ratio: float,
    *,
    prune_prob: float = 0.5,
    delta: float = 0.875,
    keep_fraction: float | None = None,
    init_value: float = 3.0,
    seed: int = 0,
) -> dict[str, Any]:
    """A fresh uniform subset each epoch, sized as InfoBatch's for the loss scores (``pruner=random_dynamic``)."""
    options = dict(prune_prob=prune_prob, delta=delta, keep_fraction=keep_fraction)
    policy = RandomDynamic(num_samples, seed=seed, **options)
    options.update(init_value=init_value)
    scorer = LossScorer(num_samples, init_value)
    return _engine_kwargs("random_dynamic", scorer, policy, num_samples, epochs, ratio, seed, options)
