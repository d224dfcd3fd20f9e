#!/usr/bin/env bash
# Tip-Adapter-F on PACS (and, through tip_adapter_vlcs.sh, VLCS), leave-one-domain-out over the 4 held-out domains (Setup-II, reference-spec §4.3, §6).
# usage: DATA=/path bash scripts/tip_adapter/tip_adapter_pacs.sh DATASET CFG SEED SHOTS [ALPHA] [BETA] [KEY VALUE ...]
#   DATASET  dataset config name in configs/datasets (PACS, or PACS_DTD ...)
#   CFG      trainer config in configs/trainers/TIP_ADAPTER (rn50_ep30 or ViT_ep30)
#   ALPHA    cache weight (the reference's PACS/VLCS scripts: 1); default 1.0 (TRAINER.TIP_ADAPTER.ALPHA)
#   BETA     sharpness (the reference's PACS/VLCS scripts: 10); default 10.0 (TRAINER.TIP_ADAPTER.BETA)
# Open-set sets: DTD, Food101 and Caltech101 are evaluated after training (DATASET.OOD_SETS).
# Output: $OUTPUT/TIP_ADAPTER/<DATASET>_<CFG>_<ALPHA>_<BETA>/test_on_<domain>/seed<SEED>/shots<SHOTS>/
source "$(dirname "$0")/../common.sh"
if [ $# -lt 4 ]; then sed -n '2,9p' "$0"; exit 2; fi
DATASET=$1; CFG=$2; SEED=$3; SHOTS=$4
ALPHA=${5:-1.0}
BETA=${6:-10.0}
shift $(( $# < 6 ? $# : 6 ))
# Held-out domains: PACS's by default; scripts/tip_adapter/tip_adapter_vlcs.sh sets VLCS's.
for DOMAIN in ${HELDOUT_DOMAINS:-sketch photo cartoon art_painting}; do
    run_one "${OUTPUT}/TIP_ADAPTER/${DATASET}_${CFG}_${ALPHA}_${BETA}/test_on_${DOMAIN}/seed${SEED}/shots${SHOTS}" \
        --seed "${SEED}" --trainer TIP_ADAPTER \
        --dataset-config-file "${REPO_ROOT}/configs/datasets/${DATASET}.yaml" \
        --config-file "${REPO_ROOT}/configs/trainers/TIP_ADAPTER/${CFG}.yaml" \
        DATASET.NUM_SHOTS "${SHOTS}" TEST_ENV "test_on_${DOMAIN}.json" \
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
        TRAINER.TIP_ADAPTER.ALPHA "${ALPHA}" TRAINER.TIP_ADAPTER.BETA "${BETA}" "$@"
done
