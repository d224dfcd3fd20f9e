#!/usr/bin/env bash
# Tip-Adapter-F on ImageNet, Setup-I: one training run, evaluated on ImageNet (ID),
# ImageNet-V2/-Sketch/-A/-R and the new-class open-set images.
# usage: DATA=/path bash scripts/tip_adapter/tip_adapter_imagenet.sh DATASET CFG SEED SHOTS [ALPHA] [BETA] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (imagenet46)
#   CFG      trainer config in configs/trainers/TIP_ADAPTER (ViT_ep30 or rn50_ep30)
#   ALPHA    cache weight (the reference's tip.sh swapped ALPHA/BETA); default: the config's TRAINER.TIP_ADAPTER.ALPHA
#   BETA     sharpness; default: the config's TRAINER.TIP_ADAPTER.BETA
# Protocol: TEST.OOD_PROTOCOL standard (default) or reference (EXTRA_OPTS); give each its own OUTPUT.
# Output: $OUTPUT/TIP_ADAPTER/<DATASET>_<CFG>_<ALPHA>_<BETA>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,10p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/TIP_ADAPTER/${CFG}.yaml"
OPTS=()
[ -n "${5:-}" ] && OPTS+=(TRAINER.TIP_ADAPTER.ALPHA "$(as_float "$5")")
[ -n "${6:-}" ] && OPTS+=(TRAINER.TIP_ADAPTER.BETA "$(as_float "$6")")
VALUES=$(cfg_value "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.TIP_ADAPTER.ALPHA TRAINER.TIP_ADAPTER.BETA)
{ read -r ALPHA; read -r BETA; } <<< "${VALUES}"
ALPHA=${5:-${ALPHA}}; BETA=${6:-${BETA}}
shift $(( $# < 6 ? $# : 6 ))
run_one "${OUTPUT}/TIP_ADAPTER/${DATASET}_${CFG}_${ALPHA}_${BETA}/seed${SEED}/shots${SHOTS}" \
    --seed "${SEED}" --trainer TIP_ADAPTER \
    --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
    DATASET.NUM_SHOTS "${SHOTS}" \
    "${OPTS[@]}" "$@"
