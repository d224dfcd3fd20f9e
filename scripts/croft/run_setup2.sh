#!/usr/bin/env bash
# The reference's Setup-II grid (reference-spec §4.3): PACS and VLCS, seeds 1-3, 16 shots.
#   PACS: lambda2 in {1000,100,10,1,0}, lambda1 15, RN50 (gen_step 0) and ViT-B/16 (gen_step 1).
#   VLCS: lambda2 in {1000,100,10,1,0} x lambda1 in {15,5,0} x (ratio, ratio_text) in
#         {(0.2,0.5),(0.2,0.0),(0.5,0.0)}, gen_step 5, both backbones.
# usage: DATA=/path bash scripts/croft/run_setup2.sh     (then: python tools/collect_results.py output/CRoFT)
set -euo pipefail
HERE=$(dirname "$0")
for SEED in 1 2 3; do
    for LAMBDA2 in 1000 100 10 1 0; do
        bash "${HERE}/croft_pacs.sh" PACS rn50_ep30 "${SEED}" 16 "${LAMBDA2}" 15 0
        bash "${HERE}/croft_pacs.sh" PACS ViT_ep30 "${SEED}" 16 "${LAMBDA2}" 15 1
        for LAMBDA1 in 15 5 0; do
            for RATIOS in "0.2 0.5" "0.2 0.0" "0.5 0.0"; do
                read -r RATIO RATIO_TEXT <<< "${RATIOS}"
                bash "${HERE}/croft_vlcs.sh" VLCS rn50_ep30 "${SEED}" 16 "${LAMBDA2}" "${LAMBDA1}" "${RATIO}" "${RATIO_TEXT}" 5
                bash "${HERE}/croft_vlcs.sh" VLCS ViT_ep30 "${SEED}" 16 "${LAMBDA2}" "${LAMBDA1}" "${RATIO}" "${RATIO_TEXT}" 5
            done
        done
    done
done
