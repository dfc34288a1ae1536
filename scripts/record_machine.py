#!/usr/bin/env python
"""Write machine.json (the CPU and torch build the rows were computed on) into each results folder given.

A row's command reproduces its final accuracy exactly only on a machine with the same fingerprint
(``alignprune_exp.runs.machine``); tests/test_regime_study.py checks the rerun where it matches.

python scripts/record_machine.py results/regime_cpu/digits results/regime_cpu/cifar10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignprune_exp.runs.machine import machine_fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dirs", nargs="+", type=Path, help="folders holding runs.csv")
    args = parser.parse_args(argv)
    text = json.dumps(machine_fingerprint(), indent=2, sort_keys=True) + "\n"
    for folder in args.results_dirs:
        if not (folder / "runs.csv").is_file():
            print(f"error: {folder} holds no runs.csv: give the folder the grid wrote its rows to", file=sys.stderr)
            return 2
        (folder / "machine.json").write_text(text)
        print(folder / "machine.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
