#!/usr/bin/env bash
# CRoFT on PACS, leave-one-domain-out over the 4 held-out domains (Setup-II, reference-spec §4.3).
# usage: DATA=/path bash scripts/croft/croft_pacs.sh DATASET CFG SEED SHOTS LAMBDA2 [LAMBDA1] [GEN_STEP] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (PACS, or PACS_DTD ... to pick open-set sets)
#   CFG      trainer config in configs/trainers/CRoFT (rn50_ep30 or ViT_ep30)
#   LAMBDA1  default 15 (the reference fixes it); GEN_STEP default 0 for rn50_* and 1 otherwise.
# Open-set sets: DTD, Food101 and Caltech101 are evaluated after training (DATASET.OOD_SETS).
# Output: $OUTPUT/CRoFT/<DATASET>_<CFG>_<LAMBDA1>_<LAMBDA2>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 5 ]; then sed -n '2,9p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4; LAMBDA2=$5; LAMBDA1=${6:-15}
case "${CFG}" in rn50*) DEFAULT_GEN=0 ;; *) DEFAULT_GEN=1 ;; esac
GEN_STEP=${7:-${DEFAULT_GEN}}
shift $(( $# < 7 ? $# : 7 ))
for DOMAIN in sketch photo cartoon art_painting; do
    run_one "${OUTPUT}/CRoFT/${DATASET}_${CFG}_${LAMBDA1}_${LAMBDA2}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer CRoFT \
        --dataset-config-file "${REPO_ROOT}/configs/datasets/${DATASET}.yaml" \
        --config-file "${REPO_ROOT}/configs/trainers/CRoFT/${CFG}.yaml" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        TRAINER.CRoFT.WCCF True TRAINER.CRoFT.gen_step "${GEN_STEP}" \
        TRAINER.CRoFT.ratio 0.2 TRAINER.CRoFT.ratio_text 0.5 \
        TRAINER.CRoFT.lambda1 "${LAMBDA1}" TRAINER.CRoFT.lambda2 "${LAMBDA2}" "$@"
done
