#!/usr/bin/env bash
# CLIP-Adapter on the Setup-I grid (reference-spec §4.1): ImageNet46, seeds 1-3 x shots {1, 16, 32},
# the method's default hyper-parameters; finished runs (results.json) are skipped.
# usage: DATA=/path bash scripts/clip_adapter/run_setup1.sh     (then: python tools/collect_results.py output/CLIP_Adapter)
# Optional environment: SEEDS, SHOTS_LIST (space-separated), CFG (default ViT_ep30),
# DATASET (default imagenet46), plus those of scripts/common.sh (OUTPUT, BACKBONE, ...).
set -euo pipefail
HERE=$(dirname "$0")
CFG=${CFG:-ViT_ep30}
DATASET=${DATASET:-imagenet46}
for SEED in ${SEEDS:-1 2 3}; do
    for SHOTS in ${SHOTS_LIST:-1 16 32}; do
        bash "${HERE}/clip_adapter_imagenet.sh" "${DATASET}" "${CFG}" "${SEED}" "${SHOTS}"
    done
done
