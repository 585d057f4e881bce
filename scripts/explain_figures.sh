#!/bin/bash
# The committed explain figures (results/figures/explain_*.png, README "Explain figures"): smoke runs on the CI
# synthetic set (600 train / 100 val images) at one CPU thread, then one `poserepro explain` per figure.
# Usage: bash scripts/explain_figures.sh [WORKDIR]   (runs and data go to WORKDIR, default /tmp/explain-runs)
set -euo pipefail
W=${1:-/tmp/explain-runs}
PY=${PY:-python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DATA="--set data.root=$W/synthetic --set data.synth_images=600 --set data.synth_val_images=100"
E3="--set schedule.epochs=3 --set schedule.milestones=[2]"
OUT=results/figures
train() { [ -f "$W/$1/checkpoint.pth" ] || $PY -m poserepro train "${@:2}" $DATA --run-dir "$W/$1"; }

train transpose-learnable-15ep smoke --set model.args.pos_embed=learnable --set schedule.epochs=15 \
    --set "schedule.milestones=[14]"
train btranspose-2h btranspose-smoke $E3
train btranspose-4h btranspose-smoke $E3 --set model.args.mhsa_heads=4
train tfpose tfpose-smoke $E3
train prtr prtr-smoke $E3

$PY -m poserepro explain "$W/transpose-learnable-15ep" --figure position --step 2 --dpi 80 \
    --out $OUT/explain_transpose.png
$PY -m poserepro explain "$W/btranspose-2h" --compare "$W/btranspose-4h" --figure dependency --index 3 \
    --joints nose,left_wrist,right_knee,left_ankle --layer 1 --layer -1 --dpi 60 \
    --out $OUT/explain_btranspose.png
$PY -m poserepro explain "$W/tfpose" --figure sampling --index 3 --joints 5,6,7,8,9,10,11,12,13,14,15,16 \
    --dpi 80 --out $OUT/explain_tfpose.png
$PY -m poserepro explain "$W/tfpose" --figure q2q --layer 2 --layer 3 --dpi 80 \
    --out $OUT/explain_tfpose_q2q.png
$PY -m poserepro explain "$W/prtr" --figure refinement --index 3 --joints left_wrist --dpi 80 \
    --out $OUT/explain_prtr.png
$PY -m poserepro explain "$W/prtr" --figure queries --queries 16 --dpi 80 \
    --out $OUT/explain_prtr_queries.png
$PY -m poserepro explain "$W/prtr" --figure query-locations --dpi 80 --out $OUT/explain_prtr_locations.png
