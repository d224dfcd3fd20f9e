#!/usr/bin/env bash
# CoOp on PACS (and, through coop_vlcs.sh, VLCS), leave-one-domain-out over the 4 held-out domains (Setup-II).
# usage: DATA=/path bash scripts/coop/coop_pacs.sh DATASET CFG SEED SHOTS [N_CTX] [CSC] [POSITION] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (PACS, or PACS_DTD ...)
#   CFG      trainer config in configs/trainers/CoOp (rn50_ep30 or ViT_ep30)
#   N_CTX    context tokens; default: the config's TRAINER.COOP.N_CTX
#   CSC      class-specific context (True/False); default: the config's TRAINER.COOP.CSC
#   POSITION class token position (end/middle/front); default: the config's TRAINER.COOP.CLASS_TOKEN_POSITION
# Open-set sets: DTD, Food101 and Caltech101 are evaluated after training (DATASET.OOD_SETS).
# Output: $OUTPUT/CoOp/<DATASET>_<CFG>_<N_CTX>_<CSC>_<POSITION>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,10p' "$0"; exit 2; fi
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
# Held-out domains: PACS's by default; scripts/coop/coop_vlcs.sh sets VLCS's.
for DOMAIN in ${HELDOUT_DOMAINS:-sketch photo cartoon art_painting}; do
    run_one "${OUTPUT}/CoOp/${DATASET}_${CFG}_${N_CTX}_${CSC}_${POSITION}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer CoOp \
        --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        "${OPTS[@]}" "$@"
done
