#!/usr/bin/env bash
# The Setup-I grid of a baseline: ImageNet46, seeds 1-3 x shots {1, 16, 32},
# the method's default hyper-parameters; finished runs (results.json) are skipped.
# usage: bash scripts/setup1_grid.sh scripts/<method>/<method>_imagenet.sh
# Optional environment: SEEDS, SHOTS_LIST (space-separated), CFG (default ViT_ep30),
# DATASET (default imagenet46), plus those of scripts/common.sh (DATA, OUTPUT, BACKBONE, ...).
set -euo pipefail
if [ $# -ne 1 ]; then sed -n '2,6p' "$0"; exit 2; fi
RUN_SCRIPT=$1
CFG=${CFG:-ViT_ep30}
DATASET=${DATASET:-imagenet46}
for SEED in ${SEEDS:-1 2 3}; do
    for SHOTS in ${SHOTS_LIST:-1 16 32}; do
        bash "${RUN_SCRIPT}" "${DATASET}" "${CFG}" "${SEED}" "${SHOTS}"
    done
done
