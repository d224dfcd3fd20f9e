#!/usr/bin/env bash
# CLIP-Adapter on ImageNet, Setup-I: one training run, evaluated on ImageNet (ID),
# ImageNet-V2/-Sketch/-A/-R and the new-class open-set images.
# usage: DATA=/path bash scripts/clip_adapter/clip_adapter_imagenet.sh DATASET CFG SEED SHOTS [RATIO] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (imagenet46)
#   CFG      trainer config in configs/trainers/CLIP_Adapter (ViT_ep30 or rn50_ep30)
#   RATIO    residual ratio; default: the config's TRAINER.CLIP_Adapter.RATIO
# Protocol: TEST.OOD_PROTOCOL standard (default) or reference (EXTRA_OPTS); give each its own OUTPUT.
# Output: $OUTPUT/CLIP_Adapter/<DATASET>_<CFG>_<RATIO>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,9p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/CLIP_Adapter/${CFG}.yaml"
OPTS=()
[ -n "${5:-}" ] && OPTS+=(TRAINER.CLIP_Adapter.RATIO "$(as_float "$5")")
RATIO=${5:-$(cfg_value "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.CLIP_Adapter.RATIO)}
shift $(( $# < 5 ? $# : 5 ))
run_one "${OUTPUT}/CLIP_Adapter/${DATASET}_${CFG}_${RATIO}/seed${SEED}/shots${SHOTS}" \
    --seed "${SEED}" --trainer CLIP_Adapter \
    --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
    DATASET.NUM_SHOTS "${SHOTS}" \
    "${OPTS[@]}" "$@"
