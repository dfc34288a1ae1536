"""A run's summary figures from its epoch records: accuracy, budget, pruning and noise-detection averages."""

from __future__ import annotations

import math

from alignprune_exp.train.state import RunState


def summarize(
    history: list[dict],
    st: RunState,
    last_test: tuple[float, float],
    wall_time_s: float,
    *,
    world_size: int,
    global_batch_size: int,
) -> dict:
    """Run-level figures from the epoch records and the run's state."""
    accs = [r["test/acc"] for r in history if not math.isnan(r["test/acc"])]
    pruning = [
        r["score/noise_auroc"]
        for r in history
        if not r.get("prune/annealing", False) and not math.isnan(r["score/noise_auroc"])
    ]

    def mean(values):
        return sum(values) / len(values) if values else float("nan")

    last = history[-1] if history else {}
    return {
        "epochs_run": st.epoch,
        "final_test_acc": last_test[1],
        "best_test_acc": max(accs) if accs else float("nan"),
        "achieved_ratio": st.budget.achieved_ratio,
        "budget_spent_fraction": st.budget.progress,
        "train_fwd": st.budget.spent,
        "reference_fwd": st.reference_fwd,
        "full_fwd": st.budget.full,
        "selection_fwd": st.selection_fwd,
        "avg_pruned_fraction": mean(st.pruned_fractions) if st.pruned_fractions else 0.0,
        "final_score_noise_auroc": last.get("score/noise_auroc", float("nan")),
        "mean_score_noise_auroc": mean(pruning),
        "final_loss_noise_auroc": last.get("loss/noise_auroc", float("nan")),
        "mean_kept_noisy_fraction": mean([r["prune/kept_noisy_fraction"] for r in history]),
        "mean_weighted_noisy_share": mean([r["prune/weighted_noisy_share"] for r in history]),
        "wall_time_s": wall_time_s,
        "world_size": world_size,
        "global_batch_size": global_batch_size,
    }
