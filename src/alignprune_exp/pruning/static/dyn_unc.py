"""Dyn-Unc, dynamic uncertainty (He et al. CVPR 2024); spec static_baselines §9."""

from __future__ import annotations

import logging

import torch

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static.base import StaticPolicy

log = logging.getLogger("alignprune")
TRAJECTORIES = ("full_run", "warmup")


def windows(probs: torch.Tensor, window: int) -> torch.Tensor:
    """Sliding windows [K, n, J] over a [E, n] probability history, J = min(window, E), K = E - J + 1.

    A history shorter than the window uses its whole length as one window.
    """
    if probs.shape[0] < 2:
        raise ConfigError(
            f"a {probs.shape[0]}-epoch history has no probability variation: "
            "set warmup.dynamics_epochs (or warmup.epochs) >= 2 for dyn_unc / dual"
        )
    j = min(int(window), probs.shape[0])
    return probs.float().unfold(0, j, 1)


def dyn_unc_scores(probs: torch.Tensor, window: int = 10) -> torch.Tensor:
    """mean over windows of the (unbiased) std of the given-label probability inside the window."""
    return windows(probs, window).std(dim=-1).mean(0)


class TrajectoryPolicy(StaticPolicy):
    """A static policy scored from the given-label probability trajectory of a training run.

    Args:
        window: J, the sliding-window length in epochs (10).
        epochs: use the first ``epochs`` epochs of the trajectory (None: all of them).
        trajectory: ``full_run`` (default: the cached full-length ``dynamics`` run, as the official code)
            or ``warmup`` (the short static warm-up, ``warmup.epochs``: one window at 10 epochs).
    """

    keep = "high"

    def __init__(
        self,
        num_samples: int,
        keep_fraction: float,
        class_balanced: bool = False,
        seed: int = 0,
        window: int = 10,
        epochs: int | None = None,
        trajectory: str = "full_run",
    ):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        if int(window) < 2:
            raise ConfigError(f"pruner.policy.window={window} must be >= 2")
        if epochs is not None and int(epochs) < 2:
            raise ConfigError(f"pruner.policy.epochs={epochs} must be >= 2 (or null for the whole run)")
        if trajectory not in TRAJECTORIES:
            raise ConfigError(f"pruner.policy.trajectory={trajectory!r} is not one of: {', '.join(TRAJECTORIES)}")
        self.window, self.epochs, self.trajectory = int(window), None if epochs is None else int(epochs), trajectory

    @property
    def warmup_protocol(self) -> str:
        """Which cached run ``cli.build_policy`` prepares this policy from."""
        return "dynamics" if self.trajectory == "full_run" else "scoring"

    def history(self, record) -> torch.Tensor:
        """The [T, n] probabilities the score reads: the record's first ``epochs`` epochs (all if fewer)."""
        if self.epochs is not None and record.num_epochs < self.epochs:
            log.warning(
                "%s: the record has %d epochs, fewer than the protocol's %d: scoring all of them",
                type(self).__name__,
                record.num_epochs,
                self.epochs,
            )
        return record.probs[: self.epochs] if self.epochs is not None else record.probs


class DynUnc(TrajectoryPolicy):
    """Keep the HIGHEST dynamic uncertainty: the mean over sliding windows of J epochs of the std of the
    given-label probability, over ALL epochs of a full-length training run (``epochs: null``)."""

    def score(self, record) -> torch.Tensor:
        return dyn_unc_scores(self.history(record), self.window)
