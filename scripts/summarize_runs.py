#!/usr/bin/env python
"""Print the result rows of runs.csv as a table: accuracy, achieved pruning ratio, noise-detection AUROC.

    python scripts/summarize_runs.py results/runs.csv --experiment demo_digits --last 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

COLUMNS = {
    "pruner": "pruner", "noise": "noise", "ratio": "ratio", "seed": "seed",
    "final_test_acc": "test acc (%)", "achieved_ratio": "achieved ratio",
    "mean_score_noise_auroc": "score noise AUROC", "final_loss_noise_auroc": "final loss noise AUROC",
    "mean_kept_noisy_fraction": "noisy share kept", "epochs_run": "epochs", "wall_time_s": "time (s)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_csv", type=Path)
    parser.add_argument("--experiment", help="only rows of this experiment_name")
    parser.add_argument("--last", type=int, help="only the last N matching rows")
    args = parser.parse_args(argv)
    if not args.runs_csv.is_file():
        print(f"error: {args.runs_csv} does not exist: run train.py first (it appends one row per run)",
              file=sys.stderr)
        return 2
    rows = pd.read_csv(args.runs_csv)
    if args.experiment:
        rows = rows[rows["experiment"] == args.experiment]
    if args.last:
        rows = rows.tail(args.last)
    table = rows[list(COLUMNS)].rename(columns=COLUMNS)
    print("score noise AUROC: mean over the pruning epochs of how well the pruning score puts noisy samples "
          "at the pruned end (1 = all noisy pruned first, 0.5 = chance)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
