#!/usr/bin/env bash
# CoOp on the Setup-I grid: ImageNet46, seeds 1-3 x shots {1, 16, 32},
# the method's default hyper-parameters; finished runs (results.json) are skipped.
# usage: DATA=/path bash scripts/coop/run_setup1.sh     (then: python tools/collect_results.py output/CoOp)
# Optional environment: SEEDS, SHOTS_LIST (space-separated), CFG (default ViT_ep30),
# DATASET (default imagenet46), plus those of scripts/common.sh (OUTPUT, BACKBONE, ...).
exec bash "$(dirname "$0")/../setup1_grid.sh" "$(dirname "$0")/coop_imagenet.sh"
