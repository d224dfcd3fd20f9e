#!/usr/bin/env bash
# CRoFT on ImageNet, Setup-I: one training run, evaluated on ImageNet (ID),
# ImageNet-V2/-Sketch/-A/-R and the new-class open-set images.
# usage: DATA=/path bash scripts/croft/croft.sh DATASET CFG SEED SHOTS LAMBDA1 LAMBDA2 GEN_STEP [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (imagenet46)
#   CFG      trainer config in configs/trainers/CRoFT (ViT_ep30, the reference's, or rn50_ep30)
#   GEN_STEP the reference uses 10 for 1 shot and 1 otherwise (run_setup1.sh)
# Protocol: TEST.OOD_PROTOCOL standard (default) or reference, e.g. EXTRA_OPTS="TEST.OOD_PROTOCOL reference";
# give each protocol its own OUTPUT, since the folder name does not include it.
# Output: $OUTPUT/CRoFT/<DATASET>_<LAMBDA1>_<LAMBDA2>/seed<SEED>/shots<SHOTS>/ (skipped if results.json exists)
source "$(dirname "$0")/../common.sh"
if [ $# -lt 7 ]; then sed -n '2,10p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4; LAMBDA1=$5; LAMBDA2=$6; GEN_STEP=$7
shift 7
run_one "${OUTPUT}/CRoFT/${DATASET}_${LAMBDA1}_${LAMBDA2}/seed${SEED}/shots${SHOTS}" \
    --seed "${SEED}" --trainer CRoFT \
    --dataset-config-file "${REPO_ROOT}/configs/datasets/${DATASET}.yaml" \
    --config-file "${REPO_ROOT}/configs/trainers/CRoFT/${CFG}.yaml" \
    DATASET.NUM_SHOTS "${SHOTS}" TRAINER.CRoFT.gen_step "${GEN_STEP}" \
    TRAINER.CRoFT.lambda1 "$(as_float "${LAMBDA1}")" TRAINER.CRoFT.lambda2 "$(as_float "${LAMBDA2}")" "$@"
