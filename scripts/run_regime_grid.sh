#!/usr/bin/env bash
# The regime study's grid (docs/regime_cpu.md) in paired parts: digits (10 seeds), then CIFAR-10 one seed at a
# time, two one-thread jobs at once. Finished cells are skipped and killed ones continue (resume=auto), so the
# script can be stopped at any point and run again; rows land in results/regime_cpu/{digits,cifar10}/runs.csv,
# and machine.json records the CPU they were computed on (rows reproduce exactly only on the same kind).
#   bash scripts/run_regime_grid.sh [DATA_DIR]          # DATA_DIR: CIFAR-10 + CIFAR-N labels (../shared/data)
set -euo pipefail
DATA_DIR=${1:-../shared/data}
PY=${PY:-.venv/bin/python}
COMMON=(hydra/launcher=local num_threads=1 resume=auto)
"$PY" train.py -m +experiment=regime_digits "${COMMON[@]}"
for seed in 0 1 2 3 4; do
    "$PY" train.py -m +experiment=regime_cpu data_dir="$DATA_DIR" "${COMMON[@]}" hydra.sweeper.params.seed="$seed"
done
"$PY" scripts/record_machine.py results/regime_cpu/digits results/regime_cpu/cifar10
