#!/usr/bin/env bash
# croft demo on a CPU (docs/demo.md): a synthetic PACS benchmark with a designed covariate shift
# (art_painting held out) and designed unseen classes -> a toy contrastive pretraining of the tiny
# CLIP on a pool of source-style images -> zero-shot CLIP, CLIP-Adapter and CRoFT over 3 seeds ->
# energy plot -> results table -> croft-predict on held-out and unseen-class images.
# About 2 minutes on 2 cores, no downloads.
# usage: bash scripts/demo.sh [DEMO_DIR]   (default: demo_output; SEEDS="1 2 3" to change the seeds)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${1:-demo_output}
SEEDS=${SEEDS:-"1 2 3"}
export HF_HUB_OFFLINE=1
PYTHON=${PYTHON:-python}
DATA="${DEMO_DIR}/data"
WEIGHTS="${DEMO_DIR}/tiny_clip_demo.pt"
OUT="${DEMO_DIR}/output"

echo "== 1/6 demo benchmark in ${DATA} (PACS, open-set sets in the held-out style, pretraining pool)"
"${PYTHON}" tools/make_synthetic_data.py --demo --root "${DATA}"

echo "== 2/6 toy pretraining of the tiny CLIP on ${DATA}/pretrain (photo/cartoon/sketch captions only)"
if [ ! -f "${WEIGHTS}" ]; then
    "${PYTHON}" tools/pretrain_tiny_clip.py --data "${DATA}/pretrain" --datasets PACS --holdout art_painting \
        --eval-data "${DATA}" --output "${WEIGHTS}"
else
    echo "reusing ${WEIGHTS} (delete it to pretrain again)"
fi

echo "== 3/6 zero-shot CLIP, CLIP-Adapter and CRoFT on PACS, art_painting held out, seeds ${SEEDS}"
rm -rf "${OUT}/ZeroshotCLIP" "${OUT}/CLIP_Adapter" "${OUT}/CRoFT"
# One Python process for all runs (imports and the frozen backbone once); one torch thread is the
# fastest for these small models, also on a busy machine. Each run's full log: <run>/log.txt.
"${PYTHON}" - "${DATA}" "${WEIGHTS}" "${OUT}" "${DEMO_DIR}/feature_cache" ${SEEDS} <<'PY'
import contextlib, io, json, os, sys, time

import torch

torch.set_num_threads(1)
from croft.train import main  # noqa: E402

data, weights, out, cache, seeds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
common = ["--root", data, "--dataset-config-file", "configs/datasets/PACS.yaml", "--backbone", "tiny",
          "MODEL.BACKBONE.PRETRAINED", weights, "TEST_ENV", "test_on_art_painting.json",
          "DATASET.NUM_SHOTS", "16", "DATASET.OOD_SETS", "['DTD', 'Food101', 'Caltech101']",
          "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "1000", "TEST.PLOT", "False", "CACHE.DIR", cache]
# The demo's training recipe, the same for both trained methods (docs/demo.md): the reference's
# SGD + cosine + warm-up epoch, with 20 epochs of batch 16, lr 0.05 and weight decay 5e-4.
recipe = ["OPTIM.MAX_EPOCH", "20", "DATALOADER.TRAIN_X.BATCH_SIZE", "16", "OPTIM.LR", "0.05",
          "OPTIM.WEIGHT_DECAY", "5e-4", "CACHE.TRAIN_VIEWS", "10"]
methods = [
    ("ZeroshotCLIP", "configs/trainers/ZeroshotCLIP/rn50.yaml", []),
    ("CLIP_Adapter", "configs/trainers/CLIP_Adapter/rn50_ep30.yaml", recipe),
    ("CRoFT", "configs/trainers/CRoFT/rn50_ep30.yaml",
     recipe + ["TRAINER.CRoFT.lambda1", "15.0", "TRAINER.CRoFT.lambda2", "10.0", "TRAINER.CRoFT.gen_step", "1"]),
]
for seed in seeds:
    for trainer, config, extra in methods:
        run_dir = os.path.join(out, trainer, "PACS_tiny", "test_on_art_painting", f"seed{seed}")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            rc = main(["--trainer", trainer, "--config-file", config, "--seed", seed, "--output-dir", run_dir,
                       *common, *extra])
        if rc != 0:
            sys.exit(f"{trainer} seed {seed} failed (exit {rc}): {err.getvalue().strip()[-2000:]}; see {run_dir}/log.txt")
        with open(os.path.join(run_dir, "results.json")) as f:
            r = json.load(f)
        energy = "  ".join(f"{s} {r['open_set'][s]['energy']['auroc']:.1f}" for s in r["open_set"])
        chosen = f"best epoch {r['best_epoch']}" if r.get("best_epoch") is not None else "no training"
        print(f"{trainer:<13} seed {seed}: val {r['closed_set']['val_accuracy']:5.1f}  "
              f"art_painting {r['closed_set']['test_accuracy']:5.1f}  energy AUROC {energy}  ({chosen}, "
              f"{time.perf_counter() - start:.1f} s)", flush=True)
PY

FIRST_SEED=${SEEDS%% *}
RUNS=()
for trainer in ZeroshotCLIP CLIP_Adapter CRoFT; do
    RUNS+=("${OUT}/${trainer}/PACS_tiny/test_on_art_painting/seed${FIRST_SEED}")
done
echo "== 4/6 plot: ${DEMO_DIR}/energy_runs.png (energy histograms and ROC curves, seed ${FIRST_SEED})"
"${PYTHON}" tools/plot_energy.py "${RUNS[@]}" --output "${DEMO_DIR}/energy_runs.png"

echo "== 5/6 results table (mean ± std over seeds ${SEEDS})"
"${PYTHON}" tools/collect_results.py "${OUT}" --scores energy,mcm --ood-metrics auroc

echo "== 6/6 croft-predict with CRoFT (seed ${FIRST_SEED}) on held-out and unseen-class images"
PREDICT=(croft-predict)
command -v croft-predict > /dev/null || PREDICT=("${PYTHON}" -m croft.predict)
"${PREDICT[@]}" "${RUNS[2]}" --no-progress --output "${DEMO_DIR}/predictions.csv" \
    "${DATA}"/PACS/images/art_painting/{dog,giraffe,horse,person}/*_0000.jpg \
    "${DATA}"/caltech-101/101_ObjectCategories/{stop_sign,soccer_ball}/image_0001.jpg \
    "${DATA}"/food-101/images/pizza/100???.jpg "${DATA}"/dtd/images/zigzagged/zigzagged_0001.jpg
"${PYTHON}" - "${DEMO_DIR}/predictions.csv" "${DATA}" <<'PY'
import csv, os, sys

rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'image':<60} {'truth':<20} {'class':<9} {'conf':>5} {'energy':>7}  unknown")
for r in rows:
    rel = os.path.relpath(r["path"], sys.argv[2])
    truth = rel.split(os.sep)[-2] + ("" if rel.startswith("PACS") else " (unseen)")
    print(f"{rel:<60} {truth:<20} {r['class']:<9} {float(r['confidence']):5.2f} {float(r['energy']):7.2f}  {r['is_unknown']}")
print(f"(all columns: {sys.argv[1]}; unknown = energy below the threshold that keeps 95% of the ID val images)")
PY
