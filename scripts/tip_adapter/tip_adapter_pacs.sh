#!/usr/bin/env bash
# Tip-Adapter-F on PACS (and, through tip_adapter_vlcs.sh, VLCS), leave-one-domain-out over the 4 held-out domains (Setup-II).
# usage: DATA=/path bash scripts/tip_adapter/tip_adapter_pacs.sh DATASET CFG SEED SHOTS [ALPHA] [BETA] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (PACS, or PACS_DTD ...)
#   CFG      rn50_ep30 or ViT_ep30: runs configs/trainers/TIP_ADAPTER/<CFG>_pacs.yaml (<CFG>_vlcs.yaml for VLCS*)
#   ALPHA    cache weight; default: that config's TRAINER.TIP_ADAPTER.ALPHA
#   BETA     sharpness; default: that config's TRAINER.TIP_ADAPTER.BETA (the reference's PACS/VLCS value)
# Open-set sets: DTD, Food101 and Caltech101 are evaluated after training (DATASET.OOD_SETS).
# Output: $OUTPUT/TIP_ADAPTER/<DATASET>_<CFG>_<ALPHA>_<BETA>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,9p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
# The dataset family (pacs, vlcs) picks the trainer config that holds its hyper-parameters.
FAMILY=$(printf '%s' "${DATASET%%_*}" | tr '[:upper:]' '[:lower:]')
DATASET_YAML="${REPO_ROOT}/configs/datasets/${DATASET}.yaml"
TRAINER_YAML="${REPO_ROOT}/configs/trainers/TIP_ADAPTER/${CFG}_${FAMILY}.yaml"
if [ ! -f "${TRAINER_YAML}" ]; then
    echo "error: no Tip-Adapter config for CFG ${CFG} on ${DATASET}: ${TRAINER_YAML} does not exist" >&2
    exit 2
fi
OPTS=()
[ -n "${5:-}" ] && OPTS+=(TRAINER.TIP_ADAPTER.ALPHA "$(as_float "$5")")
[ -n "${6:-}" ] && OPTS+=(TRAINER.TIP_ADAPTER.BETA "$(as_float "$6")")
VALUES=$(cfg_value "${DATASET_YAML}" "${TRAINER_YAML}" TRAINER.TIP_ADAPTER.ALPHA TRAINER.TIP_ADAPTER.BETA)
{ read -r ALPHA; read -r BETA; } <<< "${VALUES}"
ALPHA=${5:-${ALPHA}}; BETA=${6:-${BETA}}
shift $(( $# < 6 ? $# : 6 ))
# Held-out domains: PACS's by default; scripts/tip_adapter/tip_adapter_vlcs.sh sets VLCS's.
for DOMAIN in ${HELDOUT_DOMAINS:-sketch photo cartoon art_painting}; do
    run_one "${OUTPUT}/TIP_ADAPTER/${DATASET}_${CFG}_${ALPHA}_${BETA}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer TIP_ADAPTER \
        --dataset-config-file "${DATASET_YAML}" --config-file "${TRAINER_YAML}" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        "${OPTS[@]}" "$@"
done
