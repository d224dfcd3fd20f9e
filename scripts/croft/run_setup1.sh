#!/usr/bin/env bash
# The reference's Setup-I grid: ImageNet46 with ViT-B/16 (ViT_ep30),
# seeds 1-3 x shots {1, 16, 32} x lambda1 x lambda2 in {1,5,10,15,20}^2 = 225 runs;
# gen_step 10 for 1 shot, 1 otherwise. Each run evaluates ID accuracy, the four variants and the
# open-set detection itself (no separate test script); finished runs (results.json) are skipped.
# usage: DATA=/path bash scripts/croft/run_setup1.sh      (then: python tools/collect_results.py output/CRoFT)
# Optional environment: SEEDS, SHOTS_LIST, LAMBDAS (space-separated, to run part of the grid),
# CFG (default ViT_ep30), DATASET (default imagenet46), plus those of common.sh (OUTPUT, BACKBONE, ...).
set -euo pipefail
HERE=$(dirname "$0")
CFG=${CFG:-ViT_ep30}
DATASET=${DATASET:-imagenet46}
SEEDS=${SEEDS:-1 2 3}
SHOTS_LIST=${SHOTS_LIST:-1 16 32}
LAMBDAS=${LAMBDAS:-1 5 10 15 20}
for SEED in ${SEEDS}; do
    for LAMBDA1 in ${LAMBDAS}; do
        for LAMBDA2 in ${LAMBDAS}; do
            for SHOTS in ${SHOTS_LIST}; do
                if [ "${SHOTS}" = 1 ]; then GEN_STEP=10; else GEN_STEP=1; fi
                bash "${HERE}/croft.sh" "${DATASET}" "${CFG}" "${SEED}" "${SHOTS}" "${LAMBDA1}" "${LAMBDA2}" "${GEN_STEP}"
            done
        done
    done
done
