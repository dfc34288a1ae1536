#!/usr/bin/env bash
# Installs a built wheel into a fresh virtual environment outside the checkout and runs it from a temporary
# directory, as a user would: --help lists every config group, --cfg job composes, and the installed console
# script trains on digits for a few epochs with a pruner YAML from a user's own --config-dir.
#   bash .ci/check_wheel.sh dist/alignprune_exp-0.1.0-py3-none-any.whl .venv/bin/python
# The fresh environment reaches the dependencies (torch, ...) already installed for PYTHON through a .pth
# line, so nothing is downloaded again; alignprune-exp itself comes only from the wheel (checked below).
set -euo pipefail
wheel=$(realpath "$1")
python=${2:-python3}
checkout=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "check-wheel ok: $*"; }
fail() { echo "check-wheel FAILED: $*" >&2; exit 1; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

echo "wheel: $wheel ($(du -k "$wheel" | cut -f1) KiB)"
in_conf=$(cd conf && find . -name '*.yaml' | wc -l)
in_wheel=$("$python" -c "import sys, zipfile; print(sum(n.startswith('alignprune_exp/conf/') and n.endswith('.yaml')
                                                      for n in zipfile.ZipFile(sys.argv[1]).namelist()))" "$wheel")
[ "$in_conf" -eq "$in_wheel" ] || fail "the wheel holds $in_wheel of the $in_conf YAML files of conf/"
ok "the wheel ships all $in_conf config files"
test_seams=$("$python" -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1])
print(' '.join(n for n in z.namelist() if n.endswith('.py') and ('faultinject' in n or n.startswith('tests/')
      or b'ALIGNPRUNE_TEST' in z.read(n))))" "$wheel")
[ -z "$test_seams" ] || fail "the wheel ships test-only code: $test_seams"
ok "the wheel holds no fault-injection or test code"

"$python" -m venv "$work/venv"
venv_site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$venv_site/_dependencies.pth"
mkdir "$work/run" "$work/my_conf" "$work/my_conf/pruner"
cd "$work/run"
start=$(date +%s.%N)
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel"
echo "pip install of the wheel: $(since "$start") s"
installed=$("$work/venv/bin/python" -c 'import alignprune_exp; print(alignprune_exp.__file__)')
case "$installed" in "$venv_site"/*) ;; *) fail "alignprune_exp imports from $installed, not the fresh venv";; esac
ok "alignprune_exp imports from the fresh venv ($installed)"

cat > "$work/my_conf/pruner/infobatch_das_r07.yaml" <<'EOF'
defaults:
  - infobatch_das
  - _self_
name: infobatch_das_r07
policy:
  prune_prob: 0.7
EOF
train=(--config-dir "$work/my_conf" pruner=infobatch_das_r07 dataset=digits noise=sym0.5 model=mlp optimizer=sgd
       optimizer.lr=0.05 epochs=3 device=cpu progress_bar=false results_dir="$work/run/results")
export WANDB_MODE=disabled PYTHONUNBUFFERED=1
"$work/venv/bin/alignprune-train" "${train[@]}" 2>&1 | while IFS= read -r line; do
  echo "$line"
  case "$line" in *"epoch   0 |"*) echo "pip install of the wheel -> first epoch logged: $(since "$start") s";; esac
done
[ "$(grep -c . "$work/run/results/runs.csv")" -eq 2 ] || fail "the digits run wrote no row to results/runs.csv"
grep -q "infobatch_das_r07" "$work/run/results/runs.csv" || fail "the --config-dir pruner was not used"
ok "alignprune-train trained on digits from $work/run with a --config-dir pruner"

help=$("$work/venv/bin/alignprune-train" --help)
for group in $(cd "$checkout/conf" && find . -mindepth 1 -maxdepth 1 -type d ! -name hydra ! -name __pycache__ \
               -printf '%f\n' | sort); do
  grep -q "^$group: " <<<"$help" || fail "--help does not list the config group $group"
done
ok "--help lists every config group"

config=$("$work/venv/bin/python" -m alignprune_exp dataset=digits --cfg job)
grep -q "^  name: digits" <<<"$config" && grep -q "^seed: 0" <<<"$config" || fail "--cfg job printed: $config"
ok "python -m alignprune_exp --cfg job prints the composed config"
[ -z "$(ls -A "$work/run" | grep -v '^results$')" ] || fail "the runs wrote outside results_dir: $(ls -A "$work/run")"
echo "check-wheel: $passed passed, 0 failed"
