#!/usr/bin/env bash
# Tip-Adapter-F on ImageNet, Setup-I (reference-spec §4.1, §6): one training run, evaluated on ImageNet (ID),
# ImageNet-V2/-Sketch/-A/-R and the new-class open-set images.
# usage: DATA=/path bash scripts/tip_adapter/tip_adapter_imagenet.sh DATASET CFG SEED SHOTS [ALPHA] [BETA] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (imagenet46)
#   CFG      trainer config in configs/trainers/TIP_ADAPTER (ViT_ep30 or rn50_ep30)
#   ALPHA    cache weight (the reference's tip.sh swapped ALPHA/BETA: 1.17/1); default 1.0 (TRAINER.TIP_ADAPTER.ALPHA)
#   BETA     sharpness; default 1.17 (TRAINER.TIP_ADAPTER.BETA)
# Protocol: TEST.OOD_PROTOCOL standard (default) or reference (EXTRA_OPTS); give each its own OUTPUT.
# Output: $OUTPUT/TIP_ADAPTER/<DATASET>_<CFG>_<ALPHA>_<BETA>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,10p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
ALPHA=${5:-1.0}
BETA=${6:-1.17}
shift $(( $# < 6 ? $# : 6 ))
run_one "${OUTPUT}/TIP_ADAPTER/${DATASET}_${CFG}_${ALPHA}_${BETA}/seed${SEED}/shots${SHOTS}" \
    --seed "${SEED}" --trainer TIP_ADAPTER \
    --dataset-config-file "${REPO_ROOT}/configs/datasets/${DATASET}.yaml" \
    --config-file "${REPO_ROOT}/configs/trainers/TIP_ADAPTER/${CFG}.yaml" \
    DATASET.NUM_SHOTS "${SHOTS}" \
    TRAINER.TIP_ADAPTER.ALPHA "${ALPHA}" TRAINER.TIP_ADAPTER.BETA "${BETA}" "$@"
