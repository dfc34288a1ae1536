#!/usr/bin/env python
"""Write paper-style tables (markdown + LaTeX), paper-vs-measured and efficiency tables from results rows.

python scripts/make_tables.py results/cifar10n_cpu --out results/cifar10n_cpu/tables
python scripts/make_tables.py results/cifar10n_cpu --out /tmp/t --std --metric best_test_acc
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alignprune_exp.report.tables import write_tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="folder holding runs.csv (and any runs.<n>.csv)")
    parser.add_argument("--out", type=Path, required=True, help="folder for tables.md, tables.tex, cells.csv, ...")
    parser.add_argument(
        "--metric", default="final_test_acc", help="results column to tabulate (default: final_test_acc)"
    )
    parser.add_argument("--std", action="store_true", help="show the std over seeds in each cell")
    parser.add_argument("--methods", default="", help="comma-separated pruners shown as rows even when missing")
    parser.add_argument("--paper", type=Path, help="paper results CSV (default: the packaged one)")
    args = parser.parse_args(argv)
    try:
        paths = write_tables(
            args.results_dir,
            args.out,
            metric=args.metric,
            std=args.std,
            methods=[m for m in args.methods.split(",") if m],
            paper_path=args.paper,
        )
    except (FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
