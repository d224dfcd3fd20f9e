#!/usr/bin/env bash
# Tip-Adapter-F on the Setup-II grid: PACS and VLCS, RN50 and ViT-B/16, seeds 1-3, 16 shots,
# the method's default hyper-parameters (pass them to the per-dataset scripts to change them).
# usage: DATA=/path bash scripts/tip_adapter/run_setup2.sh     (then: python tools/collect_results.py output/TIP_ADAPTER)
set -euo pipefail
HERE=$(dirname "$0")
for SEED in 1 2 3; do
    for CFG in rn50_ep30 ViT_ep30; do
        bash "${HERE}/tip_adapter_pacs.sh" PACS "${CFG}" "${SEED}" 16
        bash "${HERE}/tip_adapter_vlcs.sh" VLCS "${CFG}" "${SEED}" 16
    done
done
