#!/usr/bin/env bash
# Run paper ablations on the embedded benchmark at the budget whose tables and figures are committed under
# results/ablation_*_smoke.{csv,md,png}, then refresh README's Ablations block.
#   bash scripts/ablate_smoke.sh pos-embed resolution      (default: the sweeps recorded in README)
# Budget: the CI synthetic set (600 train / 100 val images, seed 0), batch 16, one CPU thread per process;
# epochs per family as below (the last epoch at lr x0.1, as the CI budgets).
set -euo pipefail
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=(--set data.root=data/synthetic-ci --set data.synth_images=600 --set data.synth_val_images=100
      --set data.synth_seed=0)
epochs() {  # epochs of a sweep's smoke budget
  case "$1" in
    tfpose-*) echo 4 ;;
    prtr-*) echo 8 ;;
    *) echo 6 ;;
  esac
}
sweeps=("$@")
[ ${#sweeps[@]} -gt 0 ] || sweeps=(pos-embed resolution tfpose-q2q prtr-inference tfpose-aux btranspose-loss)
[ -f data/synthetic-ci/synth_config.json ] || \
  "$PY" -m poserepro.cli.main data synth --out data/synthetic-ci --images 600 --val-images 100 --seed 0 --workers 1
for s in "${sweeps[@]}"; do
  e=$(epochs "$s")
  "$PY" -m poserepro.cli.main ablate "$s" --smoke "${DATA[@]}" --set schedule.epochs="$e" \
    --set "schedule.milestones=[$((e - 1))]"
done
"$PY" -m poserepro.cli.main report --readme README.md
