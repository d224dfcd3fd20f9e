"""Predict with a finished run: ``croft.load(run_dir)`` / ``croft-predict RUN_DIR IMAGES...``.

:meth:`Predictor.from_run` restores the run's trainer from its folder, without its dataset:

1. the run folder is checked (``config.yaml``, a finished ``results.json`` of schema version 2,
   checkpoints), without importing torch, so a bad folder fails fast with one line
   (:mod:`.run_dir`, on the layout of :mod:`croft.utils.layout`);
2. ``config.yaml`` (the merged config the run saved) is merged into the default config tree, and
   checked against what the run recorded (:func:`check_fingerprints`: results.json, fingerprint.json
   and every checkpoint must record the same settings, and config.yaml must give them);
3. the trainer's models are built for the class names recorded in ``detector.json``
   (:func:`build_trainer_for_inference`, :mod:`.restore`: the trainer's own ``build_model()`` with a
   :class:`ClassNamesDataset` in place of the dataset; no data manager, no loaders, no feature
   cache), the frozen backbone from the run's weights (a random initialisation from the run's
   seed, checked against the hash the run recorded), and the learnt modules from the checkpoint
   the run evaluated (``<model>/model-best.pth.tar``, else ``model.pth.tar-<best_epoch>``); the
   run's score context (``score_context.npz``: the KNN bank and ``k`` its evaluation used);
4. :meth:`Predictor.predict` (:mod:`.predictor`) reads images (paths, PIL images or test-transformed
   CHW tensors), applies the run's test transform and goes the evaluation's way, in batches: the
   method's ``encode(images, FINAL)``, ``inference(features, FINAL)``, outputs collected as the
   inference runner collects them and scored with the run's score context.

Open-set flags use the thresholds of ``detector.json`` (:mod:`croft.evaluation.detector`): an
image is *unknown* when its score is below the threshold keeping the chosen TPR of the ID
validation images. ``docs/predict.md`` is the user documentation; :mod:`.cli` the command line.

A folder of checkpoints without ``config.yaml`` (the original CRoFT code's, which
``croft-train --eval-only --model-dir`` evaluates) loads with the settings given explicitly
(``config``, ``dataset_config``, ``root``, ``opts``: :func:`explicit_run_config`). Without a
detector.json its class names, thresholds and score context come from the run's dataset: the trainer
is built on it and they are computed in memory as the run's evaluation computes them
(:func:`croft.evaluation.detector.compute_detector`).

**DPLCLIP** averages its generated domain prompt over the inference batch, so its predictions
depend on which images share a batch (``batch_size`` and order); predict with the run's
``DATALOADER.TEST.BATCH_SIZE`` and the test order to reproduce its evaluation exactly.
"""
from .cli import IMAGE_EXTENSIONS, build_parser, explicit_settings, find_images, main, write_predictions
from .predictor import DEFAULT_SCORE, ImageReadError, Predictions, Predictor, load
from .restore import ClassNamesDataset, UnavailableItems, build_trainer_for_inference, run_score_context
from .run_dir import (RELOCATABLE_KEYS, PredictError, RunInfo, check_fingerprints, check_output_path, check_run_dir,
                      checkpoint_files, explicit_run_config, load_run_config, recorded_fingerprints)

__all__ = ["IMAGE_EXTENSIONS", "build_parser", "explicit_settings", "find_images", "main", "write_predictions",
           "DEFAULT_SCORE", "ImageReadError", "Predictions", "Predictor", "load", "ClassNamesDataset",
           "UnavailableItems", "build_trainer_for_inference", "run_score_context", "RELOCATABLE_KEYS", "PredictError",
           "RunInfo", "check_fingerprints", "check_output_path", "check_run_dir", "checkpoint_files",
           "explicit_run_config", "load_run_config", "recorded_fingerprints"]
