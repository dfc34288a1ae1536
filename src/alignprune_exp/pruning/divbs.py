"""DivBS (Hong et al., ICML 2024): diversified batch selection from last-layer gradient features."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from alignprune_exp.core.errors import ConfigError
from alignprune_exp.pruning.base import Policy


def gradient_gram(features: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Gram matrix [B, B] (float64) of last-layer per-sample gradients g_i = (softmax(z_i) - e_{y_i}) ⊗ h_i.

    <p_i ⊗ h_i, p_j ⊗ h_j> = <p_i, p_j> <h_i, h_j>, so the B x (C * d) gradients are never built.
    """
    p = F.softmax(logits.double(), dim=1)
    p = p - F.one_hot(targets.long(), p.shape[1]).to(p.dtype)
    h = features.double().flatten(1)
    return (p @ p.T) * (h @ h.T)


def greedy_orthogonal(gram: torch.Tensor, m: int, generator: torch.Generator) -> torch.Tensor:
    """DivBS's greedy selection of ``m`` of B samples, in the span of their gradients (via ``gram``).

    Residual rho starts at the mean gradient. Each step samples i (not yet chosen) with probability
    proportional to |<g_i, rho>| (``torch.multinomial``), orthonormalises g_i against the chosen ones
    (Gram-Schmidt) into q and sets rho <- rho - <q, rho> q. Every vector is held as coefficients over the
    B gradients (v = sum_j a_j g_j), so inner products are ``a^T gram b``. When no candidate has weight
    (rho exhausted) or g_i lies in the chosen span, the rest is filled uniformly at random.

    Args:
        gram: [B, B] float64 Gram matrix of the gradient features, on CPU.
        m: number of samples to choose, 1 <= m <= B.
        generator: CPU generator for the draws.

    Returns:
        int64 [m] chosen positions, in selection order.
    """
    b = gram.shape[0]
    scale = float(gram.diagonal().max().clamp(min=1e-300))
    rho = torch.full((b,), 1.0 / b, dtype=torch.float64)
    fit = gram @ rho  # <g_i, rho> for every i, updated in place as rho shrinks
    basis = torch.zeros(m, b, dtype=torch.float64)  # rows: coefficients of the orthonormal q's
    basis_gram = torch.zeros(m, b, dtype=torch.float64)  # rows: <g_i, q_j> over i
    free = torch.ones(b, dtype=torch.bool)
    chosen: list[int] = []
    while len(chosen) < m:
        weight = fit.abs() * free
        total = float(weight.sum())
        if not math.isfinite(total) or total <= 1e-12 * scale:
            break
        i = int(torch.multinomial(weight, 1, generator=generator))
        t = len(chosen)
        chosen.append(i)
        free[i] = False
        a = -(basis[:t].T @ basis_gram[:t, i])
        a[i] += 1.0
        ga = gram @ a
        norm2 = float(a @ ga)
        if not math.isfinite(norm2) or norm2 <= 1e-10 * float(gram[i, i]):
            break
        inv_norm = 1.0 / math.sqrt(norm2)
        basis[t], basis_gram[t] = a * inv_norm, ga * inv_norm
        coef = float(ga @ rho) / norm2
        rho -= coef * a
        fit -= coef * ga
    if len(chosen) < m:
        rest = free.nonzero().squeeze(1)
        fill = rest[torch.randperm(rest.numel(), generator=generator)[: m - len(chosen)]]
        chosen.extend(fill.tolist())
    return torch.tensor(chosen, dtype=torch.int64)


class DivBS(Policy):
    """Online batch selection (spec ``dynamic_pruning.md`` section 3; a loss-free baseline of Tables B/C).

    ``select`` keeps every sample each epoch with weight 1; the trainer then draws batches of
    ``draw_batch_size`` samples, runs a no-grad forward (counted as selection forward passes) and trains
    on the m = max(1, round(keep_fraction * B)) samples ``select_in_batch`` chooses by
    ``greedy_orthogonal`` on last-layer gradient features, with plain mean loss.

    Args:
        num_samples: size of the training set.
        keep_fraction: fraction of each drawn batch that trains, in (0, 1] (the reference's 0.1; the
            config ties it to the pruning ratio so the run has as many epochs as full training).
        draw_batch_size: B, the size of the drawn batch (320 in the reference code).
        seed: seed of the private generator for the greedy draws.
    """

    selects_in_batch = True

    def __init__(self, num_samples: int, keep_fraction: float, draw_batch_size: int = 320, seed: int = 0) -> None:
        super().__init__(num_samples, seed)
        if not 0.0 < float(keep_fraction) <= 1.0:
            raise ConfigError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
        if int(draw_batch_size) < 1:
            raise ConfigError(f"draw_batch_size must be >= 1, got {draw_batch_size}")
        self.keep_fraction = float(keep_fraction)
        self.draw_batch_size = int(draw_batch_size)

    def select(
        self, scores: torch.Tensor, epoch: int, progress: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every index with weight 1: DivBS selects inside batches, not per epoch."""
        return self._full(self._check_scores(scores), annealing=False)

    def batch_keep_count(self, batch_size: int) -> int:
        """m = max(1, round(keep_fraction * B)), rounding halves up, at most B."""
        return min(batch_size, max(1, math.floor(self.keep_fraction * batch_size + 0.5)))

    def select_in_batch(
        self,
        features: torch.Tensor,
        logits: torch.Tensor,
        targets: torch.Tensor,
        indices: torch.Tensor,
    ) -> torch.Tensor:
        """Positions (sorted, int64, on ``features``' device) of the drawn batch's samples that train.

        Args:
            features: [B, d] penultimate features from a no-grad forward.
            logits: [B, C] logits of the same forward.
            targets: [B] training (noisy) labels.
            indices: [B] dataset indices (unused; part of the trainer's hook).
        """
        b = features.shape[0]
        m = self.batch_keep_count(b)
        if m >= b:
            return torch.arange(b, device=features.device)
        gram = gradient_gram(features, logits, targets).cpu()
        chosen = greedy_orthogonal(gram, m, self.generator)
        return torch.sort(chosen).values.to(features.device)
