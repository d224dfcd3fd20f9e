#!/usr/bin/env bash
# CRoFT on VLCS, leave-one-domain-out over the 4 held-out domains (Setup-II).
# usage: DATA=/path bash scripts/croft/croft_vlcs.sh DATASET CFG SEED SHOTS LAMBDA2 [LAMBDA1] [RATIO] [RATIO_TEXT] [GEN_STEP] [KEY VALUE ...]
#   CFG runs configs/trainers/CRoFT/<CFG>_vlcs.yaml; LAMBDA1, RATIO, RATIO_TEXT, GEN_STEP default to its
#   TRAINER.CRoFT.lambda1, ratio, ratio_text, gen_step (the reference's VLCS values).
# Unlike the reference, the ratios are part of the folder name, so every ratio pair trains.
# Output: $OUTPUT/CRoFT/<DATASET>_<CFG>_<LAMBDA1>_<LAMBDA2>_r<RATIO>_rt<RATIO_TEXT>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 5 ]; then sed -n '2,7p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4; LAMBDA2=$5
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/CRoFT/${CFG}_vlcs.yaml"
if [ ! -f "${TRAINER_YAML}" ]; then
    echo "error: no CRoFT VLCS config for CFG ${CFG}: ${TRAINER_YAML} does not exist" >&2
    exit 2
fi
OPTS=()
[ -n "${6:-}" ] && OPTS+=(TRAINER.CRoFT.lambda1 "$(as_float "$6")")
[ -n "${7:-}" ] && OPTS+=(TRAINER.CRoFT.ratio "$(as_float "$7")")
[ -n "${8:-}" ] && OPTS+=(TRAINER.CRoFT.ratio_text "$(as_float "$8")")
[ -n "${9:-}" ] && OPTS+=(TRAINER.CRoFT.gen_step "$9")
VALUES=$(cfg_value --short-floats "${DATASET_YAML}" "${TRAINER_YAML}" \
    TRAINER.CRoFT.lambda1 TRAINER.CRoFT.ratio TRAINER.CRoFT.ratio_text)
{ read -r LAMBDA1; read -r RATIO; read -r RATIO_TEXT; } <<< "${VALUES}"
LAMBDA1=${6:-${LAMBDA1}}; RATIO=${7:-${RATIO}}; RATIO_TEXT=${8:-${RATIO_TEXT}}
shift $(( $# < 9 ? $# : 9 ))
for DOMAIN in labelme sun pascal caltech; do
    run_one "${OUTPUT}/CRoFT/${DATASET}_${CFG}_${LAMBDA1}_${LAMBDA2}_r${RATIO}_rt${RATIO_TEXT}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer CRoFT \
        --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        TRAINER.CRoFT.lambda2 "$(as_float "${LAMBDA2}")" "${OPTS[@]}" "$@"
done
