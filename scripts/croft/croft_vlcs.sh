#!/usr/bin/env bash
# CRoFT on VLCS, leave-one-domain-out over the 4 held-out domains (Setup-II, reference-spec §4.3).
# usage: DATA=/path bash scripts/croft/croft_vlcs.sh DATASET CFG SEED SHOTS LAMBDA2 [LAMBDA1] [RATIO] [RATIO_TEXT] [GEN_STEP] [KEY VALUE ...]
#   defaults: LAMBDA1 15, RATIO 0.2, RATIO_TEXT 0.5, GEN_STEP 5 (the reference's values).
# Unlike the reference, the ratios are part of the folder name, so every ratio pair trains.
# Output: $OUTPUT/CRoFT/<DATASET>_<CFG>_<LAMBDA1>_<LAMBDA2>_r<RATIO>_rt<RATIO_TEXT>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 5 ]; then sed -n '2,7p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4; LAMBDA2=$5; LAMBDA1=${6:-15}; RATIO=${7:-0.2}; RATIO_TEXT=${8:-0.5}
GEN_STEP=${9:-5}
shift $(( $# < 9 ? $# : 9 ))
for DOMAIN in labelme sun pascal caltech; do
    run_one "${OUTPUT}/CRoFT/${DATASET}_${CFG}_${LAMBDA1}_${LAMBDA2}_r${RATIO}_rt${RATIO_TEXT}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer CRoFT \
        --dataset-config-file "${REPO_ROOT}/configs/datasets/${DATASET}.yaml" \
        --config-file "${REPO_ROOT}/configs/trainers/CRoFT/${CFG}.yaml" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        TRAINER.CRoFT.WCCF True TRAINER.CRoFT.gen_step "${GEN_STEP}" \
        TRAINER.CRoFT.ratio "${RATIO}" TRAINER.CRoFT.ratio_text "${RATIO_TEXT}" \
        TRAINER.CRoFT.lambda1 "${LAMBDA1}" TRAINER.CRoFT.lambda2 "${LAMBDA2}" "$@"
done
