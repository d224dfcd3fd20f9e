#!/usr/bin/env bash
# CoOp on ImageNet, Setup-I: one training run, evaluated on ImageNet (ID),
# ImageNet-V2/-Sketch/-A/-R and the new-class open-set images.
# usage: DATA=/path bash scripts/coop/coop_imagenet.sh DATASET CFG SEED SHOTS [N_CTX] [CSC] [POSITION] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (imagenet46)
#   CFG      trainer config in configs/trainers/CoOp (ViT_ep30 or rn50_ep30)
#   N_CTX    context tokens; default: the config's TRAINER.COOP.N_CTX
#   CSC      class-specific context (True/False); default: the config's TRAINER.COOP.CSC
#   POSITION class token position (end/middle/front); default: the config's TRAINER.COOP.CLASS_TOKEN_POSITION
# Protocol: TEST.OOD_PROTOCOL standard (default) or reference (EXTRA_OPTS); give each its own OUTPUT.
# Output: $OUTPUT/CoOp/<DATASET>_<CFG>_<N_CTX>_<CSC>_<POSITION>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,11p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/CoOp/${CFG}.yaml"
OPTS=()
[ -n "${5:-}" ] && OPTS+=(TRAINER.COOP.N_CTX "$5")
[ -n "${6:-}" ] && OPTS+=(TRAINER.COOP.CSC "$6")
[ -n "${7:-}" ] && OPTS+=(TRAINER.COOP.CLASS_TOKEN_POSITION "$7")
VALUES=$(cfg_value "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.COOP.N_CTX TRAINER.COOP.CSC TRAINER.COOP.CLASS_TOKEN_POSITION)
{ read -r N_CTX; read -r CSC; read -r POSITION; } <<< "${VALUES}"
N_CTX=${5:-${N_CTX}}; CSC=${6:-${CSC}}; POSITION=${7:-${POSITION}}
shift $(( $# < 7 ? $# : 7 ))
run_one "${OUTPUT}/CoOp/${DATASET}_${CFG}_${N_CTX}_${CSC}_${POSITION}/seed${SEED}/shots${SHOTS}" \
    --seed "${SEED}" --trainer CoOp \
    --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
    DATASET.NUM_SHOTS "${SHOTS}" \
    "${OPTS[@]}" "$@"
