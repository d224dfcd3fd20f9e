#!/usr/bin/env bash
# CoOp on ImageNet, Setup-I (reference-spec §4.1, §6): one training run, evaluated on ImageNet (ID),
# ImageNet-V2/-Sketch/-A/-R and the new-class open-set images.
# usage: DATA=/path bash scripts/coop/coop_imagenet.sh DATASET CFG SEED SHOTS [N_CTX] [CSC] [POSITION] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (imagenet46)
#   CFG      trainer config in configs/trainers/CoOp (ViT_ep30 or rn50_ep30)
#   N_CTX    context tokens; default 16 (TRAINER.COOP.N_CTX)
#   CSC      class-specific context (True/False); default False (TRAINER.COOP.CSC)
#   POSITION class token position (end/middle/front); default end (TRAINER.COOP.CLASS_TOKEN_POSITION)
# Protocol: TEST.OOD_PROTOCOL standard (default) or reference (EXTRA_OPTS); give each its own OUTPUT.
# Output: $OUTPUT/CoOp/<DATASET>_<CFG>_<N_CTX>_<CSC>_<POSITION>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,11p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
N_CTX=${5:-16}
CSC=${6:-False}
POSITION=${7:-end}
shift $(( $# < 7 ? $# : 7 ))
run_one "${OUTPUT}/CoOp/${DATASET}_${CFG}_${N_CTX}_${CSC}_${POSITION}/seed${SEED}/shots${SHOTS}" \
    --seed "${SEED}" --trainer CoOp \
    --dataset-config-file "${REPO_ROOT}/configs/datasets/${DATASET}.yaml" \
    --config-file "${REPO_ROOT}/configs/trainers/CoOp/${CFG}.yaml" \
    DATASET.NUM_SHOTS "${SHOTS}" \
    TRAINER.COOP.N_CTX "${N_CTX}" TRAINER.COOP.CSC "${CSC}" TRAINER.COOP.CLASS_TOKEN_POSITION "${POSITION}" "$@"
