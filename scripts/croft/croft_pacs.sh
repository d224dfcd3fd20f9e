#!/usr/bin/env bash
# CRoFT on PACS, leave-one-domain-out over the 4 held-out domains (Setup-II).
# usage: DATA=/path bash scripts/croft/croft_pacs.sh DATASET CFG SEED SHOTS LAMBDA2 [LAMBDA1] [GEN_STEP] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (PACS, or PACS_DTD ... to pick open-set sets)
#   CFG      rn50_ep30 or ViT_ep30 (or *_ep100): runs configs/trainers/CRoFT/<CFG>_pacs.yaml
#   LAMBDA1, GEN_STEP  default: that config's TRAINER.CRoFT.lambda1 / gen_step (the reference's PACS values)
# Open-set sets: DTD, Food101 and Caltech101 are evaluated after training (DATASET.OOD_SETS).
# Output: $OUTPUT/CRoFT/<DATASET>_<CFG>_<LAMBDA1>_<LAMBDA2>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 5 ]; then sed -n '2,8p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4; LAMBDA2=$5
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/CRoFT/${CFG}_pacs.yaml"
if [ ! -f "${TRAINER_YAML}" ]; then
    echo "error: no CRoFT PACS config for CFG ${CFG}: ${TRAINER_YAML} does not exist" >&2
    exit 2
fi
OPTS=()
[ -n "${6:-}" ] && OPTS+=(TRAINER.CRoFT.lambda1 "$(as_float "$6")")
[ -n "${7:-}" ] && OPTS+=(TRAINER.CRoFT.gen_step "$7")
LAMBDA1=${6:-$(cfg_value --short-floats "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.CRoFT.lambda1)}
shift $(( $# < 7 ? $# : 7 ))
for DOMAIN in sketch photo cartoon art_painting; do
    run_one "${OUTPUT}/CRoFT/${DATASET}_${CFG}_${LAMBDA1}_${LAMBDA2}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer CRoFT \
        --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        TRAINER.CRoFT.lambda2 "$(as_float "${LAMBDA2}")" "${OPTS[@]}" "$@"
done
