#!/usr/bin/env bash
# croft demo on a CPU: synthetic data -> a toy pretraining of the tiny CLIP on the source domains ->
# zero-shot CLIP and CRoFT on PACS with "art_painting" held out -> closed-set + open-set evaluation
# -> energy/ROC plot -> results table. About 2 minutes on 2 cores.
# usage: bash scripts/demo.sh [DEMO_DIR]   (default: demo_output)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${1:-demo_output}
export HF_HUB_OFFLINE=1
PYTHON=${PYTHON:-python}

echo "== 1/5 synthetic data in ${DEMO_DIR}/data"
"${PYTHON}" tools/make_synthetic_data.py --root "${DEMO_DIR}/data"

echo "== 2/5 toy pretraining of the tiny CLIP on photo/cartoon/sketch captions (art_painting and the open-set sets unseen)"
WEIGHTS="${DEMO_DIR}/tiny_clip.pt"
if [ ! -f "${WEIGHTS}" ]; then
    "${PYTHON}" tools/pretrain_tiny_clip.py --data "${DEMO_DIR}/data" --output "${WEIGHTS}" --holdout art_painting
fi

echo "== 3/5 zero-shot CLIP and CRoFT on PACS, art_painting held out"
COMMON=(--root "${DEMO_DIR}/data" --seed 1 --dataset-config-file configs/datasets/PACS.yaml --backbone tiny
        MODEL.BACKBONE.PRETRAINED "${WEIGHTS}" TEST_ENV test_on_art_painting.json DATASET.NUM_SHOTS 8
        DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" DATALOADER.NUM_WORKERS 2 TRAIN.PRINT_FREQ 100
        CACHE.DIR "${DEMO_DIR}/feature_cache")
ZS="${DEMO_DIR}/output/ZeroshotCLIP/PACS_tiny/test_on_art_painting/seed1"
RUN="${DEMO_DIR}/output/CRoFT/PACS_tiny_15_10/test_on_art_painting/seed1/shots8"
rm -rf "${ZS}" "${RUN}"
"${PYTHON}" -m croft.train --trainer ZeroshotCLIP --config-file configs/trainers/ZeroshotCLIP/rn50.yaml \
    --output-dir "${ZS}" "${COMMON[@]}"
"${PYTHON}" -m croft.train --trainer CRoFT --config-file configs/trainers/CRoFT/rn50_ep30.yaml \
    --output-dir "${RUN}" "${COMMON[@]}" \
    TRAINER.CRoFT.lambda1 15 TRAINER.CRoFT.lambda2 10 TRAINER.CRoFT.gen_step 1 \
    OPTIM.MAX_EPOCH 10 DATALOADER.TRAIN_X.BATCH_SIZE 16

echo "== 4/5 plot: ${RUN}/energy.png (per run) and ${DEMO_DIR}/energy_runs.png"
"${PYTHON}" tools/plot_energy.py "${RUN}" --output "${DEMO_DIR}/energy_runs.png"

echo "== 5/5 results table"
"${PYTHON}" tools/collect_results.py "${DEMO_DIR}/output" --scores energy,mcm,max_logit,knn
