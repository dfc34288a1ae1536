#!/usr/bin/env python
"""Write PNG figures (Figs. 1, 2, 3, A, B, C and per-epoch pruning diagnostics) from the runs under a results folder.

python scripts/make_plots.py results/cifar10n_cpu --out results/cifar10n_cpu/plots
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alignprune_exp.report.plots import make_plots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="folder holding runs.csv; run folders are found from its rows")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    args = parser.parse_args(argv)
    try:
        paths = make_plots(args.results_dir, args.out)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    if not paths:
        print("no figure: the rows have no run that any figure needs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
