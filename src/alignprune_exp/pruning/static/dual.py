"""DUAL (Cho et al. ICML 2025): uncertainty x difficulty, with ratio-adaptive Beta sampling (spec static_baselines
§10)."""

from __future__ import annotations

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static.base import top_k
from alignprune_exp.pruning.static.dyn_unc import TrajectoryPolicy, windows


def dual_scores(probs: torch.Tensor, window: int = 10) -> torch.Tensor:
    """mean over windows of std(window) * (1 - mean(window)) of the given-label probability."""
    w = windows(probs, window)
    return (w.std(dim=-1) * (1.0 - w.mean(dim=-1))).mean(0)


def beta_weights(probs: torch.Tensor, scores: torch.Tensor, ratio: float, c_d: float) -> torch.Tensor:
    """Sampling weights BetaPDF(pbar; a, b) * DUAL with b = 15 (1 - mu_a)(1 - r^c_D), a = 16 - b.

    pbar is the mean given-label probability over ``probs`` and mu_a its mean over the 10 highest
    DUAL scores; as r -> 1 the Beta mass moves to easy samples (pbar ~ 1).
    """
    pbar = probs.float().mean(0)
    mu_a = pbar[top_k(scores, min(10, len(scores)), "high")].mean()
    b = (15.0 * (1.0 - mu_a) * (1.0 - ratio**c_d)).clamp(min=1e-3)
    a = 16.0 - b
    beta = torch.distributions.Beta(a, b)
    density = beta.log_prob(pbar.clamp(1e-6, 1 - 1e-6)).exp()
    return density * scores


def weighted_sample(weights: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` indices without replacement with probability proportional to ``weights`` (Efraimidis-Spirakis:
    the top k of u^(1/w)); zero-weight entries come last, in index order."""
    u = torch.rand(len(weights), generator=generator, dtype=torch.float64).to(weights.device)
    keys = torch.log(u) / weights.double()
    keys = torch.where(weights > 0, keys, torch.full_like(keys, -float("inf")))
    return top_k(keys, k, "high")


class DUAL(TrajectoryPolicy):
    """DUAL over the first T = ``epochs`` (30) epochs of the full-length run, kept by Beta sampling.

    Args:
        window, epochs, trajectory: as ``TrajectoryPolicy`` (J = 10, T = 30, ``full_run``).
        beta_sampling: draw B samples without replacement with weight BetaPDF(pbar) * DUAL (default true,
            the official CIFAR README's ``--sample beta``); false: plain top-B by DUAL.
        c_d: the Beta schedule's exponent c_D (4, the CIFAR README).
        beta_mean_epochs: ``scored`` (default: pbar over the same first T epochs as the score, the official
            ``data_subset.py`` ``beta_sampling`` since behaapyy/dual-pruning 65e999c, "Use only first 30
            epochs"; under noise a whole-run mean includes the memorised wrong labels) or ``all`` (over the
            whole recorded run, the README's 200-epoch ``target_probs`` file before that commit).
    """

    def __init__(
        self,
        num_samples: int,
        keep_fraction: float,
        class_balanced: bool = False,
        seed: int = 0,
        window: int = 10,
        epochs: int | None = 30,
        trajectory: str = "full_run",
        beta_sampling: bool = True,
        c_d: float = 4.0,
        beta_mean_epochs: str = "scored",
    ):
        super().__init__(num_samples, keep_fraction, class_balanced, seed, window, epochs, trajectory)
        if beta_sampling and class_balanced:
            raise ConfigError("pruner.policy.beta_sampling samples globally: set class_balanced=false")
        if beta_mean_epochs not in ("all", "scored"):
            raise ConfigError(f"pruner.policy.beta_mean_epochs={beta_mean_epochs!r} is not one of: all, scored")
        self.beta_sampling, self.c_d, self.beta_mean_epochs = bool(beta_sampling), float(c_d), beta_mean_epochs

    def score(self, record) -> torch.Tensor:
        return dual_scores(self.history(record), self.window)

    def choose(self, record, budget: int | None = None) -> torch.Tensor:
        if not self.beta_sampling:
            return super().choose(record, budget)
        budget = self.budget if budget is None else int(budget)
        scores = self.score(record)
        ratio = 1.0 - budget / self.num_samples
        probs = record.probs if self.beta_mean_epochs == "all" else self.history(record)
        return weighted_sample(beta_weights(probs, scores, ratio, self.c_d), budget, self.generator)
