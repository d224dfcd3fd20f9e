#!/usr/bin/env bash
# The reference's Setup-II grid: PACS and VLCS, seeds 1-3, 16 shots, RN50 and ViT-B/16.
#   PACS: lambda2 in {1000,100,10,1,0}; lambda1 and gen_step from configs/trainers/CRoFT/<CFG>_pacs.yaml.
#   VLCS: lambda2 in {1000,100,10,1,0} x lambda1 in {15,5,0} x (ratio, ratio_text) in
#         {(0.2,0.5),(0.2,0.0),(0.5,0.0)}; gen_step from configs/trainers/CRoFT/<CFG>_vlcs.yaml.
# usage: DATA=/path bash scripts/croft/run_setup2.sh     (then: python tools/collect_results.py output/CRoFT)
set -euo pipefail
HERE=$(dirname "$0")
for SEED in 1 2 3; do
    for LAMBDA2 in 1000 100 10 1 0; do
        bash "${HERE}/croft_pacs.sh" PACS rn50_ep30 "${SEED}" 16 "${LAMBDA2}"
        bash "${HERE}/croft_pacs.sh" PACS ViT_ep30 "${SEED}" 16 "${LAMBDA2}"
        for LAMBDA1 in 15 5 0; do
            for RATIOS in "0.2 0.5" "0.2 0.0" "0.5 0.0"; do
                read -r RATIO RATIO_TEXT <<< "${RATIOS}"
                bash "${HERE}/croft_vlcs.sh" VLCS rn50_ep30 "${SEED}" 16 "${LAMBDA2}" "${LAMBDA1}" "${RATIO}" "${RATIO_TEXT}"
                bash "${HERE}/croft_vlcs.sh" VLCS ViT_ep30 "${SEED}" 16 "${LAMBDA2}" "${LAMBDA1}" "${RATIO}" "${RATIO_TEXT}"
            done
        done
    done
done
