#!/usr/bin/env bash
# Run paper ablations on the embedded benchmark at the budget whose tables and figures are committed under
# results/ablation_*_smoke.{csv,md,png}, then refresh README's Ablations block.
#   bash scripts/ablate_smoke.sh pos-embed resolution      (default: the sweeps recorded in README)
# Budget: the CI synthetic set (600 train / 100 val images, seed 0), batch 16, one CPU thread per process;
# epochs (and a cap on steps per epoch, ~74 steps without it) per sweep as below, the last epoch at lr x0.1 as
# in the CI budgets.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=(--set data.root=data/synthetic-ci --set data.synth_images=600 --set data.synth_val_images=100
      --set data.synth_seed=0)
budget() {  # "EPOCHS [MAX_STEPS_PER_EPOCH]" of a sweep's smoke budget
  case "$1" in
    # full epochs: the first sweeps recorded
    pos-embed|resolution|btranspose-heads) echo 6 ;;
    prtr-inference) echo 8 ;;
    tfpose-aux) echo 4 ;;  # both cells at the budget of its first (no-aux) cell
    # reduced so that every sweep fits one session on a 2-core machine shared by several agents
    # (load average ~10): 4 epochs of at most 20 steps for the cheap families (TP-R, BTranspose, PRTR) ...
    encoder-layers|btranspose-*|prtr-*) echo 4 20 ;;
    # ... and 2 epochs of at most 15 steps for the ~8x slower TFPose and TransPose-H smoke models
    tfpose-*|encoder-scaling-h) echo 2 15 ;;
    *) echo 6 ;;
  esac
}
sweeps=("$@")
[ ${#sweeps[@]} -gt 0 ] || sweeps=(pos-embed resolution prtr-inference btranspose-heads btranspose-loss
                                   btranspose-depth-width encoder-layers prtr-input-size prtr-queries tfpose-q2q
                                   tfpose-channels encoder-scaling-h tfpose-decoder-layers tfpose-aux)
[ -f data/synthetic-ci/synth_config.json ] || \
  "$PY" -m poserepro.cli.main data synth --out data/synthetic-ci --images 600 --val-images 100 --seed 0 --workers 1
for s in "${sweeps[@]}"; do
  read -r e cap <<< "$(budget "$s")"
  steps=()
  [ -z "${cap:-}" ] || steps=(--set "train.max_steps_per_epoch=$cap")
  "$PY" -m poserepro.cli.main ablate "$s" --smoke "${DATA[@]}" --set schedule.epochs="$e" \
    --set "schedule.milestones=[$((e - 1))]" "${steps[@]}"
done
"$PY" -m poserepro.cli.main report --readme README.md
