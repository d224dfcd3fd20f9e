#!/usr/bin/env bash
# CoCoOp on PACS (and, through cocoop_vlcs.sh, VLCS), leave-one-domain-out over the 4 held-out domains (Setup-II).
# usage: DATA=/path bash scripts/cocoop/cocoop_pacs.sh DATASET CFG SEED SHOTS [N_CTX] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (PACS, or PACS_DTD ...)
#   CFG      trainer config in configs/trainers/CoCoOp (rn50_ep30 or ViT_ep30)
#   N_CTX    context tokens; default: the config's TRAINER.COCOOP.N_CTX
# Open-set sets: DTD, Food101 and Caltech101 are evaluated after training (DATASET.OOD_SETS).
# Output: $OUTPUT/CoCoOp/<DATASET>_<CFG>_<N_CTX>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,8p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/CoCoOp/${CFG}.yaml"
OPTS=()
[ -n "${5:-}" ] && OPTS+=(TRAINER.COCOOP.N_CTX "$5")
N_CTX=${5:-$(cfg_value "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.COCOOP.N_CTX)}
shift $(( $# < 5 ? $# : 5 ))
# Held-out domains: PACS's by default; scripts/cocoop/cocoop_vlcs.sh sets VLCS's.
for DOMAIN in ${HELDOUT_DOMAINS:-sketch photo cartoon art_painting}; do
    run_one "${OUTPUT}/CoCoOp/${DATASET}_${CFG}_${N_CTX}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer CoCoOp \
        --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        "${OPTS[@]}" "$@"
done
