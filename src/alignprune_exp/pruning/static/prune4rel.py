"""Prune4ReL (Park et al. NeurIPS 2023): greedy neighbourhood-confidence coreset; spec static_baselines §8."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.static.base import StaticPolicy
from alignprune_exp.pruning.static.margin import margins

log = logging.getLogger("alignprune")


class Prune4ReL(StaticPolicy):
    """Greedily maximise the summed reduced neighbourhood confidence sum_i tanh(N_i(S) / eta).

    Each step picks the unselected sample with the largest own gain tanh((N_p + conf_p)/eta) - tanh(N_p/eta)
    (the released code's proxy), then adds w_ip * conf_p to every N_i, with w_ip = sim * 1[sim > tau],
    sim = 0.5 + 0.5 cos(h_i, h_p) on warm-up penultimate features. One step costs O(N d) (one
    matrix-vector product against the new pick; no N x N similarity matrix is built), so the selection
    costs O(B N d) time and O(N d) memory. Probabilities and features come from the warm-up model in eval
    mode on one seeded strong view (AutoAugment + crop/flip + Cutout), as the released ``eval_train_strong``;
    ``view=weak`` uses the un-augmented view.

    Args:
        tau: similarity threshold (0.975 CIFAR-10N, 0.95 CIFAR-100N / WebVision / ImageNet in the scripts).
        eta: saturation of the utility tanh(z / eta) (1 in every script).
        confidence: ``least_confidence`` (max softmax probability, the scripts' choice) or ``margin``.
        class_balanced: round-robin over noisy-label classes as the released code (see ``choose``).
        view: ``strong`` (default, the released code) or ``weak`` (un-augmented); a record without strong-view
            outputs (streamed data) falls back to ``weak`` with a warning.
    """

    def __init__(
        self,
        num_samples: int,
        keep_fraction: float,
        class_balanced: bool = True,
        seed: int = 0,
        tau: float = 0.95,
        eta: float = 1.0,
        confidence: str = "least_confidence",
        view: str = "strong",
    ):
        super().__init__(num_samples, keep_fraction, class_balanced, seed)
        if confidence not in ("least_confidence", "margin"):
            raise ConfigError(f"pruner.policy.confidence={confidence!r} is not one of: least_confidence, margin")
        if float(eta) <= 0:
            raise ConfigError(f"pruner.policy.eta={eta} must be > 0")
        if view not in ("strong", "weak"):
            raise ConfigError(f"pruner.policy.view={view!r} is not one of: strong, weak")
        self.tau, self.eta, self.confidence, self.view = float(tau), float(eta), confidence, view

    def outputs(self, record) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, features) of the configured view."""
        if self.view == "strong":
            if record.logits_strong is not None:
                return record.logits_strong, record.features_strong
            log.warning("Prune4ReL: the warm-up record has no strong view (streamed data): scoring the weak view")
        return record.logits, record.features

    def confidences(self, logits: torch.Tensor) -> torch.Tensor:
        if self.confidence == "margin":
            return margins(logits)
        return logits.float().softmax(1).max(1).values

    def choose(self, record, budget: int | None = None) -> torch.Tensor:
        """Greedy selection of ``budget`` samples.

        Class balance (released code): step i targets class ``active[i mod len(active)]``; a class with
        nothing left is dropped (the first dropped class's size is remembered) and, if the class targeted
        next has already contributed more than 1.5 x that size, every later step picks globally.
        """
        budget = self.budget if budget is None else int(budget)
        logits, features = self.outputs(record)
        conf = self.confidences(logits)
        h = F.normalize(features.float(), dim=1)
        labels = record.labels.to(h.device)
        n = len(h)
        nn_conf = torch.zeros(n, device=h.device)
        selected = torch.zeros(n, dtype=torch.bool, device=h.device)
        picks = torch.empty(budget, dtype=torch.long)
        remaining = torch.bincount(labels, minlength=record.num_classes).tolist()
        initial = list(remaining)
        active = [c for c in range(record.num_classes) if remaining[c] > 0]
        balanced, min_balance = self.class_balanced, None
        neg = torch.tensor(-1.0, device=h.device)
        for i in range(budget):
            gain = torch.tanh((nn_conf + conf) / self.eta) - torch.tanh(nn_conf / self.eta)
            gain = torch.where(selected, neg, gain)
            if balanced:
                target = active[i % len(active)]
                while remaining[target] == 0:
                    if min_balance is None:
                        min_balance = initial[target]
                    active.remove(target)
                    target = active[i % len(active)]
                    if initial[target] - remaining[target] > 1.5 * min_balance:
                        balanced = False
                gain = torch.where(labels == target, gain, neg - 1)
                remaining[target] -= 1
            p = int(torch.argmax(gain))
            selected[p] = True
            picks[i] = p
            sim = 0.5 + 0.5 * (h @ h[p])
            nn_conf += torch.where(sim > self.tau, sim, torch.zeros_like(sim)) * conf[p]
        return picks.to(h.device)
