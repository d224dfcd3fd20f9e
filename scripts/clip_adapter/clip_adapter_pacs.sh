#!/usr/bin/env bash
# CLIP-Adapter on PACS (and, through clip_adapter_vlcs.sh, VLCS), leave-one-domain-out over the 4 held-out domains (Setup-II).
# usage: DATA=/path bash scripts/clip_adapter/clip_adapter_pacs.sh DATASET CFG SEED SHOTS [RATIO] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (PACS, or PACS_DTD ...)
#   CFG      trainer config in configs/trainers/CLIP_Adapter (rn50_ep30 or ViT_ep30)
#   RATIO    residual ratio; default: the config's TRAINER.CLIP_Adapter.RATIO
# Open-set sets: DTD, Food101 and Caltech101 are evaluated after training (DATASET.OOD_SETS).
# Output: $OUTPUT/CLIP_Adapter/<DATASET>_<CFG>_<RATIO>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,8p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/CLIP_Adapter/${CFG}.yaml"
OPTS=()
[ -n "${5:-}" ] && OPTS+=(TRAINER.CLIP_Adapter.RATIO "$(as_float "$5")")
RATIO=${5:-$(cfg_value "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.CLIP_Adapter.RATIO)}
shift $(( $# < 5 ? $# : 5 ))
# Held-out domains: PACS's by default; scripts/clip_adapter/clip_adapter_vlcs.sh sets VLCS's.
for DOMAIN in ${HELDOUT_DOMAINS:-sketch photo cartoon art_painting}; do
    run_one "${OUTPUT}/CLIP_Adapter/${DATASET}_${CFG}_${RATIO}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer CLIP_Adapter \
        --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        "${OPTS[@]}" "$@"
done
