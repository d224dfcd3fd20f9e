"""The run folder's layout: the name of every file croft writes into a run folder, finding its
checkpoints, and reading its JSON records. Imports neither torch nor numpy, so a run folder can be
checked (``croft-predict``, ``croft-sweep status``) before anything heavy is loaded.

Every module that reads or writes a run folder takes the names from here; ``docs/results-schema.md``
§1 describes each file. A run folder (``OUTPUT_DIR``)::

    log.txt  config.yaml  fingerprint.json  last.pth.tar  metrics.jsonl  tensorboard/
    <model>/model-best.pth.tar  <model>/model.pth.tar-<E>  <model>/checkpoint
    scores.npz  energy.png  detector.json  detector_val_scores.npz  score_context.npz
    results.json            (last: a finished run)
    stage.json  error.txt  submitted.json   (written by croft-sweep)
    .run.lock  .old/<time>/
"""
import json
import os

# ---------------------------------------------------------------------------------------------- files

LOG_FILE = "log.txt"
CONFIG_FILE = "config.yaml"
FINGERPRINT_FILE = "fingerprint.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
RESULTS_FILE = "results.json"
#: Version of the results.json schema written by this code (1: no ``schema_version`` key).
SCHEMA_VERSION = 2
SCORES_FILE = "scores.npz"
ENERGY_PLOT_FILE = "energy.png"
#: Detector thresholds for croft-predict (:mod:`croft.evaluation.detector`).
DETECTOR_FILE = "detector.json"
DETECTOR_VAL_SCORES_FILE = "detector_val_scores.npz"
#: The KNN bank of runs written before the score context was saved (read, no longer written).
DETECTOR_KNN_BANK_FILE = "detector_knn_bank.npy"
#: The score context of the run's evaluation (:mod:`croft.evaluation.score_context`).
SCORE_CONTEXT_FILE = "score_context.npz"
#: The ID/open-set class split of an ImageNet46 run (:mod:`croft.data.datasets.imagenet`).
CLASS_SPLIT_FILE = "class_split.json"
#: Tip-Adapter-F's cache of training keys.
TIP_ADAPTER_CACHE_DIR = "tip_adapter_cache"

#: Written by croft-sweep: the stage of a run (read by the results table), a failed attempt's
#: one-line error, a submitit job.
STAGE_FILE = "stage.json"
ERROR_FILE = "error.txt"
SUBMITTED_FILE = "submitted.json"

#: The claim of a live run on its folder (:func:`croft.engine.run_folder.claim_run_folder`).
LOCK_FILE = ".run.lock"
#: Where ``--restart`` moves an earlier run's files (``.old/<time>/``).
OLD_DIR = ".old"

# ---------------------------------------------------------------------------------------------- checkpoints

#: The rolling checkpoint of the last completed epoch, in the run folder.
LAST_NAME = "last.pth.tar"
#: In each model's sub-folder: the best-val checkpoint, the epoch checkpoints, and a text file
#: naming the latest epoch checkpoint (Dassl's layout).
BEST_NAME = "model-best.pth.tar"
EPOCH_PREFIX = "model.pth.tar-"
CHECKPOINT_MARKER = "checkpoint"

#: The run's own files, which ``--restart`` moves aside (with :func:`model_folders` and
#: :data:`TIP_ADAPTER_CACHE_DIR`).
RUN_FILES = (RESULTS_FILE, SCORES_FILE, ENERGY_PLOT_FILE, METRICS_FILE, DETECTOR_FILE, DETECTOR_VAL_SCORES_FILE,
             DETECTOR_KNN_BANK_FILE, SCORE_CONTEXT_FILE, CONFIG_FILE, FINGERPRINT_FILE, LAST_NAME)


def epoch_file_name(epoch):
    """``model.pth.tar-<epoch>``."""
    return f"{EPOCH_PREFIX}{epoch}"


def _sub_folders(run_dir):
    """Sorted sub-folder names of ``run_dir``, hidden ones (``.old``) left out; [] when it is no folder."""
    try:
        names = sorted(os.listdir(run_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(run_dir, n))]


def _holds_checkpoints(files, epoch=None):
    if BEST_NAME in files:
        return True
    if epoch is not None:
        return epoch_file_name(epoch) in files
    return CHECKPOINT_MARKER in files or any(f.startswith(EPOCH_PREFIX) for f in files)


def model_folders(run_dir, epoch=None):
    """Paths of the sub-folders of ``run_dir`` that hold a model's checkpoints, sorted.

    A model folder holds ``model-best.pth.tar``, or (``epoch`` None) any ``model.pth.tar-<E>`` or the
    ``checkpoint`` marker; with ``epoch``, ``model-best.pth.tar`` or ``model.pth.tar-<epoch>``.
    Hidden sub-folders (``.old``) are not looked at."""
    found = []
    for name in _sub_folders(run_dir):
        sub = os.path.join(run_dir, name)
        if _holds_checkpoints(set(os.listdir(sub)), epoch):
            found.append(sub)
    return found


def has_checkpoints(run_dir):
    """Whether ``run_dir`` holds a checkpoint: ``last.pth.tar`` or a model folder."""
    return os.path.isfile(os.path.join(run_dir, LAST_NAME)) or bool(model_folders(run_dir))


def has_run(run_dir):
    """Whether ``run_dir`` holds a run's results or checkpoints."""
    return os.path.isdir(run_dir) and (os.path.isfile(os.path.join(run_dir, RESULTS_FILE)) or has_checkpoints(run_dir))


def checkpoint_files(run_dir):
    """Every checkpoint of the folder, as ``(label, path)``: ``<model>/model-best.pth.tar`` and
    ``<model>/model.pth.tar-<E>`` of each sub-folder (sorted), then ``last.pth.tar``."""
    found = []
    for name in _sub_folders(run_dir):
        sub = os.path.join(run_dir, name)
        for file_name in sorted(os.listdir(sub)):
            if file_name == BEST_NAME or file_name.startswith(EPOCH_PREFIX):
                found.append((f"{name}/{file_name}", os.path.join(sub, file_name)))
    if os.path.isfile(os.path.join(run_dir, LAST_NAME)):
        found.append((LAST_NAME, os.path.join(run_dir, LAST_NAME)))
    return found


# ---------------------------------------------------------------------------------------------- records

class UnreadableRecord(ValueError):
    """A JSON record of a run folder that cannot be read: ``path``, and ``why`` in words."""

    def __init__(self, path, why):
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def read_json_object(path):
    """The JSON object in ``path`` (results.json, fingerprint.json, detector.json, stage.json, ...).

    :class:`UnreadableRecord` (a ValueError) for a file that cannot be read, is not UTF-8 JSON, or
    whose top level is not an object; FileNotFoundError when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableRecord(path, f"unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise UnreadableRecord(path, "not a JSON object at the top level")
    return data


def read_results(run_dir):
    """The ``results.json`` of ``run_dir`` as a dict, or None when the run has not finished (no file).

    Reads without validating the content (:func:`croft.results.io.read_results_json` validates it);
    :class:`UnreadableRecord` for a damaged file."""
    try:
        return read_json_object(os.path.join(run_dir, RESULTS_FILE))
    except FileNotFoundError:
        return None
