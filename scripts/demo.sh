#!/usr/bin/env bash
# croft demo on a CPU: synthetic data -> CRoFT (tiny CLIP) on PACS with "sketch" held out ->
# closed-set + open-set evaluation -> energy/ROC plot -> results table. A few minutes on 2 cores.
# usage: bash scripts/demo.sh [DEMO_DIR]   (default: demo_output)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${1:-demo_output}
export HF_HUB_OFFLINE=1
PYTHON=${PYTHON:-python}

echo "== 1/4 synthetic data in ${DEMO_DIR}/data"
"${PYTHON}" tools/make_synthetic_data.py --root "${DEMO_DIR}/data"

echo "== 2/4 train CRoFT (tiny CLIP, random init) on art_painting+cartoon+photo, hold out sketch"
RUN="${DEMO_DIR}/output/CRoFT/PACS_tiny_15_10/test_on_sketch/seed1/shots8"
rm -rf "${RUN}"
"${PYTHON}" -m croft.train --root "${DEMO_DIR}/data" --seed 1 --trainer CRoFT \
    --dataset-config-file configs/datasets/PACS.yaml --config-file configs/trainers/CRoFT/rn50_ep30.yaml \
    --backbone tiny --output-dir "${RUN}" \
    MODEL.BACKBONE.PRETRAINED none TEST_ENV test_on_sketch.json DATASET.NUM_SHOTS 8 \
    DATASET.OOD_SETS "['DTD', 'Food101', 'Caltech101']" \
    TRAINER.CRoFT.lambda1 15 TRAINER.CRoFT.lambda2 10 TRAINER.CRoFT.gen_step 1 \
    OPTIM.MAX_EPOCH 10 OPTIM.LR 0.05 DATALOADER.TRAIN_X.BATCH_SIZE 16 DATALOADER.NUM_WORKERS 2 TRAIN.PRINT_FREQ 100

echo "== 3/4 plot: ${RUN}/energy.png (per run) and ${DEMO_DIR}/energy_runs.png"
"${PYTHON}" tools/plot_energy.py "${RUN}" --output "${DEMO_DIR}/energy_runs.png"

echo "== 4/4 results table"
"${PYTHON}" tools/collect_results.py "${DEMO_DIR}/output" --scores energy,mcm,max_logit,knn
