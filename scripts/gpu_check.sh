#!/usr/bin/env bash
# One prepared GPU check (~8 minutes on one GPU): the throughput and decode benchmarks, then the paper's
# CIFAR-10N recipe (ResNet-18, LARS, OneCycle, crop + flip, DAS N = 25) on Real-W (noise=real_worst) with
# Full-training, InfoBatch and InfoBatch + DAS at 30%, run concurrently on the one GPU, for as many epochs as
# the measured throughput fits in the time left; rows, logs, printed figures and tables go to OUT_DIR.
#
#   scripts/gpu_check.sh DATA_DIR [OUT_DIR] [--smoke] [--epochs N] [--minutes M]
#     DATA_DIR  holds cifar10/ (train_x.npy, train_y.npy) and cifar-n/CIFAR-10_human.pt (the ../shared/data layout)
#     OUT_DIR   default results/gpu_check
#     --smoke   CPU, tiny sizes (small CNN, 300 images, 2 epochs): checks the script itself in about a minute
#     --epochs  fix the epochs instead of fitting them to the time left
#     --minutes total time budget (default 8)
#     --compile also time torch.compile against eager in the throughput stage (adds a minute or two)
# Only the first 1000 official CIFAR-10 test images exist in that layout: test_split=holdout (5,000 clean
# training images; the clean reference set is as large), the rest trains.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
DATA_DIR="" OUT_DIR="results/gpu_check" SMOKE=0 EPOCHS="" MINUTES=8 COMPILE=()
positional=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --epochs) EPOCHS="$2"; shift ;;
    --minutes) MINUTES="$2"; shift ;;
    --compile) COMPILE=(--compile) ;;
    -h|--help) usage ;;
    -*) echo "error: unknown option $1" >&2; usage ;;
    *) positional+=("$1") ;;
  esac
  shift
done
[[ ${#positional[@]} -ge 1 ]] || usage
DATA_DIR="${positional[0]}"
[[ ${#positional[@]} -ge 2 ]] && OUT_DIR="${positional[1]}"
if [[ ! -f "$DATA_DIR/cifar10/train_x.npy" || ! -f "$DATA_DIR/cifar-n/CIFAR-10_human.pt" ]]; then
  echo "error: $DATA_DIR needs cifar10/train_x.npy and cifar-n/CIFAR-10_human.pt (the ../shared/data layout)" >&2
  exit 2
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
mkdir -p "$OUT_DIR/logs"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE="${WANDB_MODE:-disabled}" PYTHONUNBUFFERED=1
START=$(date +%s)
DEADLINE=$((START + MINUTES * 60 - 20))
FAILED=()
left() { echo $((DEADLINE - $(date +%s))); }
stage() { echo; echo "== $1 ($(($(date +%s) - START)) s elapsed, $(left) s left)"; }

stage "environment"
{
  date -u
  git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true
  "$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '|',
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
} 2>&1 | tee "$OUT_DIR/environment.txt"

if [[ $SMOKE == 1 ]]; then
  DEVICE=cpu
  BENCH=(--device cpu --train 128 --reference 64 --eval-size 16 --repeats 1 --threads 1)
  DECODE=(--images 4 --width 96 --height 72 --image-size 48 --resize-size 56 --repeats 1)
  SIZE=(device=cpu num_threads=1 model=small_cnn model.width=8 model.depth=2 train_subset=300 holdout_size=200
        eval_batch_size=256)
  EPOCHS="${EPOCHS:-2}"
  BENCH_TIMEOUT=240 DECODE_TIMEOUT=120  # generous: a shared CPU may be slow to even import torch
  MINUTES=$(( MINUTES > 12 ? MINUTES : 12 ))
  DEADLINE=$((START + MINUTES * 60 - 20))
else
  DEVICE=cuda
  BENCH=(--device cuda --train 40000 --reference 10000 --eval-size 1000 --repeats 3 --data-dir "$DATA_DIR/cifar10")
  DECODE=(--images 256 --repeats 2)
  SIZE=(device=cuda model=resnet18_cifar holdout_size=5000)
  BENCH_TIMEOUT=200 DECODE_TIMEOUT=60
fi

stage "throughput: trainer vs bare loop, DAS vs loss epochs, AlignPrune's overhead"
if timeout --kill-after=10 "$BENCH_TIMEOUT" "$PY" "$ROOT/scripts/bench_throughput.py" "${BENCH[@]}" ${COMPILE[@]+"${COMPILE[@]}"} \
     2>&1 | tee "$OUT_DIR/throughput.txt"; then :; else FAILED+=("throughput"); fi

stage "decode: PIL vs torchvision.io (+ batched GPU decoding)"
if timeout --kill-after=10 "$DECODE_TIMEOUT" "$PY" "$ROOT/scripts/bench_decode.py" "${DECODE[@]}" \
     2>&1 | tee "$OUT_DIR/decode.txt"; then :; else FAILED+=("decode"); fi

# Epochs that fit: the trainer's measured images/s, shared by three concurrent runs, each epoch training
# ~45,000 images plus the 10,000-image reference and test passes (x1.3 margin for start-up and evaluation).
TRAIN_LEFT=$(( $(left) - 40 ))
if [[ -z "$EPOCHS" ]]; then
  IPS=$(sed -n 's/.*trainer \([0-9,]*\) img\/s.*/\1/p' "$OUT_DIR/throughput.txt" | head -1 | tr -d ,)
  IPS=${IPS:-3000}
  EPOCHS=$(( (TRAIN_LEFT - 60) * IPS / (3 * 45000 * 13 / 10) ))
  (( EPOCHS < 2 )) && EPOCHS=2
  (( EPOCHS > 200 )) && EPOCHS=200
  echo "trainer throughput ${IPS} img/s, ${TRAIN_LEFT} s for training -> epochs=${EPOCHS}"
fi

stage "paper recipe on CIFAR-10N Real-W: Full-training, InfoBatch, InfoBatch + DAS at 30%, ${EPOCHS} epochs"
COMMON=(dataset=cifar10 noise=real_worst optimizer=lars scheduler=onecycle
        test_split=holdout "data_dir=$DATA_DIR" "results_dir=$OUT_DIR" "epochs=$EPOCHS" experiment_name=gpu_check
        progress_bar=false snapshots=false "${SIZE[@]}")
pids=() names=()
for run in "full ratio=r0" "infobatch ratio=r30" "infobatch_das ratio=r30"; do
  read -r pruner ratio <<<"$run"
  timeout --kill-after=15 "$TRAIN_LEFT" "$PY" "$ROOT/train.py" "pruner=$pruner" "$ratio" "${COMMON[@]}" \
    "hydra.run.dir=$OUT_DIR/runs/$pruner" > "$OUT_DIR/logs/$pruner.log" 2>&1 &
  pids+=($!) names+=("$pruner")
done
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    echo "${names[$i]}: $(grep -o 'final test acc.*' "$OUT_DIR/logs/${names[$i]}.log" | tail -1)"
  else
    FAILED+=("train:${names[$i]}")
    echo "${names[$i]}: FAILED (exit $?); last lines of $OUT_DIR/logs/${names[$i]}.log:"
    tail -5 "$OUT_DIR/logs/${names[$i]}.log"
  fi
done

stage "tables"
if [[ -f "$OUT_DIR/runs.csv" ]]; then
  if "$PY" "$ROOT/scripts/make_tables.py" "$OUT_DIR" --out "$OUT_DIR/tables" >/dev/null; then
    cat "$OUT_DIR/tables/tables.md" 2>/dev/null || ls "$OUT_DIR/tables"
  else
    FAILED+=("tables")
  fi
  "$PY" - "$OUT_DIR/runs.csv" <<'EOF' | tee "$OUT_DIR/runs_summary.txt"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'pruner':>14} {'ratio':>6} {'epochs':>6} {'final acc':>9} {'achieved':>8} {'wall s':>7} {'ref fwd':>8}")
for r in rows:
    print(f"{r['pruner']:>14} {r['ratio']:>6} {r['epochs_run']:>6} {float(r['final_test_acc']):>9.2f} "
          f"{float(r['achieved_ratio']):>8.3f} {float(r['wall_time_s']):>7.0f} {r['reference_fwd']:>8}")
EOF
else
  echo "no runs.csv: no training run finished"
fi

echo
echo "gpu_check: $(($(date +%s) - START)) s in all; results in $OUT_DIR"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "FAILED stages: ${FAILED[*]}" >&2
  exit 1
fi
echo "all stages passed"
