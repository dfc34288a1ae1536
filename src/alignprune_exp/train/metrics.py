"""Noise-detection and subset-composition metrics over per-sample scores (batched torch ops)."""

from __future__ import annotations

import torch

from alignprune_exp.pruning.base import below_mean


def auroc(scores: torch.Tensor, positives: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mann-Whitney AUROC that positives score higher than negatives, ties counted 1/2.

    Rank-based with average ranks for ties, O(n log n), on the tensors' device.

    Args:
        scores: [n] real scores.
        positives: [n] bool (or 0/1) labels.
        mask: optional [n] bool restricting the samples compared (e.g. observed ones).

    Returns:
        AUROC in [0, 1]; NaN if one class is empty or a score is NaN (a diverged run, stopped by the trainer).
    """
    scores = scores.detach().reshape(-1).double()
    positives = positives.reshape(-1).to(scores.device, torch.bool)
    if positives.numel() != scores.numel():
        raise ValueError(f"got {scores.numel()} scores but {positives.numel()} labels")
    if mask is not None:
        keep = mask.reshape(-1).to(scores.device, torch.bool)
        scores, positives = scores[keep], positives[keep]
    if torch.isnan(scores).any():
        return float("nan")
    n_pos = int(positives.sum())
    n_neg = positives.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    sorted_scores, order = torch.sort(scores)
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    avg_rank = ends - (counts.double() - 1) / 2  # 1-based mean rank of each tie group
    rank_sum = avg_rank[inverse][positives[order]].sum().item()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def noise_auroc(scores: torch.Tensor, is_noisy: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """AUROC that a score puts noisy samples at the pruned (low) end; 1.0 = all noisy go first."""
    return auroc(-scores.detach().double(), is_noisy, mask)


def loss_noise_auroc(losses: torch.Tensor, is_noisy: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """AUROC that a high loss flags noisy samples; peaks, then falls as labels get memorised."""
    return auroc(losses, is_noisy, mask)


def kept_noisy_fraction(indices: torch.Tensor, is_noisy: torch.Tensor) -> float:
    """Noisy share of the samples that train this epoch (NaN if none train)."""
    if indices.numel() == 0:
        return float("nan")
    noisy = is_noisy.to(indices.device, torch.bool)[indices]
    return noisy.double().mean().item()


def weighted_noisy_share(indices: torch.Tensor, weights: torch.Tensor, is_noisy: torch.Tensor) -> float:
    """Noisy share of the loss weight that trains: sum of w over kept noisy / sum of w over kept.

    Args:
        indices: [m] training indices of the epoch.
        weights: [num_samples] per-sample loss weights (as returned by a policy).
        is_noisy: [num_samples] bool.
    """
    if indices.numel() == 0:
        return float("nan")
    w = weights.to(indices.device, torch.float64)[indices]
    noisy = is_noisy.to(indices.device, torch.bool)[indices]
    return (w * noisy).sum().item() / w.sum().item()


def mean_losses(last_loss: torch.Tensor, observed: torch.Tensor, is_noisy: torch.Tensor) -> dict[str, float]:
    """Mean last observed loss of the clean and of the noisy samples (NaN for a group not yet observed)."""
    seen_clean, seen_noisy = observed & ~is_noisy, observed & is_noisy
    return {
        "loss/mean_clean": last_loss[seen_clean].mean().item() if seen_clean.any() else float("nan"),
        "loss/mean_noisy": last_loss[seen_noisy].mean().item() if seen_noisy.any() else float("nan"),
    }


def noise_detection(
    scores: torch.Tensor,
    trained: torch.Tensor,
    weights: torch.Tensor,
    last_loss: torch.Tensor,
    observed: torch.Tensor,
    is_noisy: torch.Tensor,
) -> dict[str, float]:
    """How much of an epoch's training was on noisy samples, and how well score and loss flag them."""
    return {
        "prune/kept_noisy_fraction": kept_noisy_fraction(trained, is_noisy),
        "prune/weighted_noisy_share": weighted_noisy_share(trained, weights, is_noisy),
        "score/noise_auroc": noise_auroc(scores, is_noisy),
        "loss/noise_auroc": loss_noise_auroc(last_loss, is_noisy, mask=observed),
    }


def below_mean_fraction(scores: torch.Tensor) -> float:
    """Share of samples strictly below the mean score (InfoBatch's prunable set, Table F), by InfoBatch's rule."""
    return below_mean(scores).double().mean().item() if scores.numel() else float("nan")


def pruning_accounting(
    scores: torch.Tensor, cold_start: bool, selected: int, trained: int, n: int, in_batch: bool
) -> dict[str, float | bool]:
    """An epoch's pruning figures, kept apart: what the policy pruned vs what did not train (budget cut included).

    A batch-level policy selects inside batches, so what it pruned is what did not train; ``cold_start`` says
    the scores were a cold-start stand-in, not the scorer's own ranking.
    """
    chosen = trained if in_batch else selected
    return {
        "prune/policy_pruned_fraction": 1.0 - chosen / n,
        "prune/untrained_fraction": 1.0 - trained / n,
        "prune/below_mean_fraction": below_mean_fraction(scores),
        "score/cold_start": bool(cold_start),
    }
