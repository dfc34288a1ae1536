#!/usr/bin/env python
"""Print the result rows of runs.csv as a table: accuracy, achieved pruning ratio, noise-detection AUROC.

    python scripts/summarize_runs.py results/runs.csv --experiment demo_digits --last 2
    python scripts/summarize_runs.py results/            # every runs*.csv in the folder (all machines)
    python scripts/summarize_runs.py --rebuild results/  # regenerate runs.csv from the run folders

Unreadable rows (torn by a crash or a full disk) are skipped and reported on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from alignprune_exp.core.errors import AlignPruneError
from alignprune_exp.report.read import load_results, rebuild_index, report

COLUMNS = {
    "pruner": "pruner",
    "noise": "noise",
    "ratio": "ratio",
    "seed": "seed",
    "final_test_acc": "test acc (%)",
    "achieved_ratio": "achieved ratio",
    "mean_score_noise_auroc": "score noise AUROC",
    "final_loss_noise_auroc": "final loss noise AUROC",
    "mean_cold_start_noise_auroc": "cold-start AUROC",
    "mean_kept_noisy_fraction": "noisy share kept",
    "avg_policy_pruned_fraction": "policy pruned",
    "avg_untrained_fraction": "untrained",
    "mean_below_mean_fraction": "below mean",
    "epochs_run": "epochs",
    "wall_time_s": "time (s)",
    "status": "status",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_csv", type=Path, nargs="?", help="a results file, or a folder of runs*.csv")
    parser.add_argument("--experiment", help="only rows of this experiment_name")
    parser.add_argument("--last", type=int, help="only the last N matching rows")
    parser.add_argument(
        "--rebuild",
        type=Path,
        metavar="DIR",
        help="regenerate DIR/runs.csv from the summary.json of every run folder under DIR or named by its rows "
        "(refused, nothing changed, when a row's run folder is missing)",
    )
    args = parser.parse_args(argv)
    if args.rebuild:
        if not args.rebuild.is_dir():
            print(f"error: {args.rebuild} is not a folder: give the results_dir of the runs", file=sys.stderr)
            return 2
        try:
            path, n = rebuild_index(args.rebuild)
        except AlignPruneError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"rebuilt {path} from {n} run folder(s); the previous runs*.csv are kept as *.bak")
        if args.runs_csv is None:
            return 0
    if args.runs_csv is None or not args.runs_csv.exists():
        print(
            f"error: {args.runs_csv} does not exist: run train.py first (it appends one row per run)", file=sys.stderr
        )
        return 2
    try:
        rows, problems = load_results(args.runs_csv)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report(problems)
    for col in COLUMNS:
        if col not in rows:
            rows[col] = ""
    numeric = [c for c in COLUMNS if c not in ("pruner", "noise", "ratio", "seed", "status")]
    rows[numeric] = rows[numeric].apply(pd.to_numeric, errors="coerce")
    if args.experiment:
        rows = rows[rows["experiment"] == args.experiment]
    if args.last:
        rows = rows.tail(args.last)
    table = rows[list(COLUMNS)].rename(columns=COLUMNS)
    print(
        "score noise AUROC: mean over the pruning epochs of how well the pruning score puts noisy samples "
        "at the pruned end (1 = all noisy pruned first, 0.5 = chance)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
