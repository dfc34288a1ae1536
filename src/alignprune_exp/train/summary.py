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
    """Run-level figures from the epoch records and the run's state.

    Pruning averages come from the records: the policy's pruned fraction and what did not train (budget cut
    included) over every epoch; score figures over the non-annealing epochs, the scorer's own ranking apart
    from its cold-start stand-in's.
    """
    accs = [r["test/acc"] for r in history if not math.isnan(r["test/acc"])]
    pruning = [r for r in history if not r.get("prune/annealing", False)]
    own = [r for r in pruning if not r.get("score/cold_start", False)]  # ranked by the scorer itself
    cold = [r for r in pruning if r.get("score/cold_start", False)]  # ranked by the cold-start loss

    def mean(values):
        return sum(values) / len(values) if values else float("nan")

    def mean_of(key, records, empty=float("nan")):
        """Mean of ``key`` over the records that have a number for it (records from before a key existed,
        restored with an older checkpoint, have none)."""
        values = [r[key] for r in records if r.get(key) is not None and not math.isnan(r[key])]
        return mean(values) if values else empty

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
        "avg_policy_pruned_fraction": mean_of("prune/policy_pruned_fraction", history, 0.0),
        "avg_untrained_fraction": mean_of("prune/untrained_fraction", history, 0.0),
        "mean_below_mean_fraction": mean_of("prune/below_mean_fraction", own),
        "final_score_noise_auroc": last.get("score/noise_auroc", float("nan")),
        "mean_score_noise_auroc": mean_of("score/noise_auroc", own),
        "mean_cold_start_noise_auroc": mean_of("score/noise_auroc", cold),
        "final_loss_noise_auroc": last.get("loss/noise_auroc", float("nan")),
        "mean_kept_noisy_fraction": mean([r["prune/kept_noisy_fraction"] for r in history]),
        "mean_weighted_noisy_share": mean([r["prune/weighted_noisy_share"] for r in history]),
        "wall_time_s": wall_time_s,
        "world_size": world_size,
        "global_batch_size": global_batch_size,
    }
