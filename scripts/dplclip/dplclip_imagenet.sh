#!/usr/bin/env bash
# DPLCLIP on ImageNet, Setup-I: one training run, evaluated on ImageNet (ID),
# ImageNet-V2/-Sketch/-A/-R and the new-class open-set images.
# usage: DATA=/path bash scripts/dplclip/dplclip_imagenet.sh DATASET CFG SEED SHOTS [N_CTX] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (imagenet46)
#   CFG      trainer config in configs/trainers/DPLCLIP (ViT_ep30 or rn50_ep30)
#   N_CTX    domain-prompt tokens; default: the config's TRAINER.DPLCLIP.N_CTX
# Protocol: TEST.OOD_PROTOCOL standard (default) or reference (EXTRA_OPTS); give each its own OUTPUT.
# Output: $OUTPUT/DPLCLIP/<DATASET>_<CFG>_<N_CTX>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,9p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/DPLCLIP/${CFG}.yaml"
OPTS=()
[ -n "${5:-}" ] && OPTS+=(TRAINER.DPLCLIP.N_CTX "$5")
N_CTX=${5:-$(cfg_value "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.DPLCLIP.N_CTX)}
shift $(( $# < 5 ? $# : 5 ))
run_one "${OUTPUT}/DPLCLIP/${DATASET}_${CFG}_${N_CTX}/seed${SEED}/shots${SHOTS}" \
    --seed "${SEED}" --trainer DPLCLIP \
    --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
    DATASET.NUM_SHOTS "${SHOTS}" \
    "${OPTS[@]}" "$@"
