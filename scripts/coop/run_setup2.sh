#!/usr/bin/env bash
# CoOp on the Setup-II grid: PACS and VLCS, RN50 and ViT-B/16, seeds 1-3, 16 shots,
# the method's default hyper-parameters (pass them to the per-dataset scripts to change them).
# usage: DATA=/path bash scripts/coop/run_setup2.sh     (then: python tools/collect_results.py output/CoOp)
set -euo pipefail
HERE=$(dirname "$0")
for SEED in 1 2 3; do
    for CFG in rn50_ep30 ViT_ep30; do
        bash "${HERE}/coop_pacs.sh" PACS "${CFG}" "${SEED}" 16
        bash "${HERE}/coop_vlcs.sh" VLCS "${CFG}" "${SEED}" 16
    done
done
