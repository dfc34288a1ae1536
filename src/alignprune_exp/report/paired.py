"""Paired per-seed comparisons of two methods of a grid (same seed: same noise draw, initialisation and subset).

A seed's difference ``a - b`` removes what the seed shares between methods, so a few seeds resolve a gap that the
spread of each method's own accuracy would hide. Each comparison gets its per-seed differences, their mean and a
two-sided 95% Student-t interval; ``render_metrics`` tabulates the per-cell means of the figures that explain them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

# (ranked by DAS, ranked by loss): the same policy and settings, only the score differs
PAIRS = (
    ("infobatch_das", "infobatch"),
    ("infobatch_das_r1", "infobatch_r1"),
    ("infobatch_das_norescale", "infobatch_norescale"),
    ("seta_das", "seta"),
)
CELL = ["setting", "noise", "ratio"]
METRICS = {  # results column -> header of the per-cell table
    "final_test_acc": "final acc",
    "best_test_acc": "best acc",
    "mean_score_noise_auroc": "score AUROC (DAS epochs)",
    "mean_cold_start_noise_auroc": "score AUROC (cold start)",
    "final_loss_noise_auroc": "final loss AUROC",
    "mean_kept_noisy_fraction": "noisy share trained",
    "mean_weighted_noisy_share": "noisy share of the weight",
    "mean_below_mean_fraction": "below mean",
    "avg_policy_pruned_fraction": "policy pruned",
    "epochs_run": "epochs",
    "wall_time_s": "time (s)",
}


def _numeric(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def paired_differences(rows: pd.DataFrame, metric: str = "final_test_acc", pairs=PAIRS) -> pd.DataFrame:
    """One row per (setting, noise, ratio, pair) over the seeds both methods completed: n, the per-seed
    differences (seed order), mean, std (ddof 1), the 95% t interval (lo, hi; NaN for one seed) and a's wins."""
    out = []
    for a, b in pairs:
        left, right = rows[rows["method"] == a], rows[rows["method"] == b]
        if left.empty or right.empty:
            continue
        both = left.merge(right, on=[*CELL, "seed"], suffixes=("_a", "_b"))
        for key, group in both.groupby(CELL, sort=True):
            group = group.assign(seed_n=_numeric(group["seed"])).sort_values("seed_n")
            diff = _numeric(group[f"{metric}_a"]) - _numeric(group[f"{metric}_b"])
            diff = diff[np.isfinite(diff)]
            n = len(diff)
            if not n:
                continue
            mean = float(diff.mean())
            std = float(diff.std(ddof=1)) if n > 1 else math.nan
            half = float(student_t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
            out.append(
                {
                    **dict(zip(CELL, key)),
                    "a": a,
                    "b": b,
                    "n": n,
                    "per_seed": " ".join(f"{d:+.2f}" for d in diff),
                    "mean": mean,
                    "std": std,
                    "lo": mean - half,
                    "hi": mean + half,
                    "wins": int((diff > 0).sum()),
                }
            )
    columns = [*CELL, "a", "b", "n", "per_seed", "mean", "std", "lo", "hi", "wins"]
    return pd.DataFrame(out, columns=columns)


def _f(x: float, signed: bool = False) -> str:
    return "–" if not np.isfinite(x) else (f"{x:+.2f}" if signed else f"{x:.2f}")


def render_paired(rows: pd.DataFrame, metrics=("final_test_acc", "best_test_acc")) -> str:
    """Markdown: per metric, the paired differences of every comparison present in ``rows``."""
    text = ["# Paired per-seed differences (a - b, same seed)\n"]
    for metric in metrics:
        diffs = paired_differences(rows, metric)
        text.append(f"\n## {METRICS.get(metric, metric)} (`{metric}`)\n")
        if diffs.empty:
            text.append("\nNo seed ran both methods of a comparison.\n")
            continue
        for setting, block in diffs.groupby("setting", sort=True):
            text.append(f"\n### {setting}\n\n")
            text.append("| noise | ratio | a - b | seeds | per seed | mean | 95% interval | a wins |\n")
            text.append("|---|---|---|---|---|---|---|---|\n")
            for r in block.itertuples():
                interval = f"[{_f(r.lo, True)}, {_f(r.hi, True)}]"
                text.append(
                    f"| {r.noise} | {r.ratio} | {r.a} - {r.b} | {r.n} | {r.per_seed} | {_f(r.mean, True)} | "
                    f"{interval} | {r.wins}/{r.n} |\n"
                )
    return "".join(text)


def render_metrics(rows: pd.DataFrame) -> str:
    """Markdown: per setting and noise, each method's mean (± std over seeds) of the figures in ``METRICS``."""
    text = ["# Per-cell means over seeds (± std)\n"]
    present = [m for m in METRICS if m in rows]
    values = rows.assign(**{m: _numeric(rows[m]) for m in present})
    for (setting, noise), block in values.groupby(["setting", "noise"], sort=True):
        text.append(f"\n## {setting} | noise {noise}\n\n")
        text.append("| method | ratio | seeds | " + " | ".join(METRICS[m] for m in present) + " |\n")
        text.append("|---|---|---|" + "---|" * len(present) + "\n")
        for (method, ratio), cell in block.groupby(["method", "ratio"], sort=True):
            parts = []
            for m in present:
                v = cell[m].to_numpy()
                v = v[np.isfinite(v)]
                if not len(v):
                    parts.append("–")
                elif len(v) == 1:
                    parts.append(_f(v[0]))
                else:
                    parts.append(f"{_f(v.mean())} ± {_f(v.std(ddof=1))}")
            text.append(f"| {method} | {ratio} | {len(cell)} | " + " | ".join(parts) + " |\n")
    return "".join(text)
