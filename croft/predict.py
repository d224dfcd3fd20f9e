"""Predict with a finished run: ``croft.load(run_dir)`` / ``croft-predict RUN_DIR IMAGES...``.

:meth:`Predictor.from_run` restores the run's trainer from its folder, without its dataset:

1. the run folder is checked (``config.yaml``, a finished ``results.json`` of schema version 2,
   checkpoints), without importing torch, so a bad folder fails fast with one line;
2. ``config.yaml`` (the merged config the run saved) is merged into the default config tree, and
   checked against what the run recorded (:func:`check_fingerprints`: results.json, fingerprint.json
   and every checkpoint must record the same settings, and config.yaml must give them);
3. the trainer's models are built for the class names recorded in ``detector.json``
   (:func:`build_trainer_for_inference`: the trainer's own ``build_model()`` with a
   :class:`ClassNamesDataset` in place of the dataset; no data manager, no loaders, no feature
   cache), the frozen backbone from the run's weights (a random initialisation from the run's
   seed, checked against the hash the run recorded), and the learnt modules from the checkpoint
   the run evaluated (``<model>/model-best.pth.tar``, else ``model.pth.tar-<best_epoch>``);
4. :meth:`Predictor.predict` reads images (paths, PIL images or test-transformed CHW tensors),
   applies the run's test transform, encodes them with the frozen image encoder and runs
   ``trainer.inference(features, FINAL)``, the final-evaluation path, in batches.

Open-set flags use the thresholds of ``detector.json`` (:mod:`croft.evaluation.detector`): an
image is *unknown* when its score is below the threshold keeping the chosen TPR of the ID
validation images. ``docs/predict.md`` is the user documentation.

A folder of checkpoints without ``config.yaml`` (the original CRoFT code's, which
``croft-train --eval-only --model-dir`` evaluates) loads with the settings given explicitly
(``config``, ``dataset_config``, ``root``, ``opts``: :func:`explicit_run_config`). Without a
detector.json its class names and thresholds come from the run's dataset: the trainer is built on it
and the thresholds are computed in memory as the run's evaluation computes them
(:func:`croft.evaluation.detector.compute_detector`).

**DPLCLIP** averages its generated domain prompt over the inference batch, so its predictions
depend on which images share a batch (``batch_size`` and order); predict with the run's
``DATALOADER.TEST.BATCH_SIZE`` and the test order to reproduce its evaluation exactly.
"""
import argparse
import csv
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .evaluation.detector import (DETECTOR_FILE, DETECTOR_FORMAT, KNN_BANK_FILE, VAL_SCORES_FILE, check_tpr,
                                  detector_score_names, score_probe, threshold_at)

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.json"  # croft.results.io.RESULTS_FILE
SCHEMA_VERSION = 2  # croft.results.io.SCHEMA_VERSION (the run-folder checks do not import numpy or torch)
BEST_NAME = "model-best.pth.tar"  # croft.engine.checkpoint.BEST_NAME
EPOCH_PREFIX = "model.pth.tar-"  # croft.engine.checkpoint.epoch_file_name
LAST_NAME = "last.pth.tar"  # croft.engine.checkpoint.LAST_NAME
FINGERPRINT_FILE = "fingerprint.json"  # croft.engine.run_folder.FINGERPRINT_FILE
#: config.yaml keys that may differ from what the run recorded: where the dataset is (a moved dataset);
#: predicting does not read it. ``fingerprint_version`` is the code's, not the config's.
RELOCATABLE_KEYS = ("DATASET.ROOT", "DATASET.OOD_ROOT", "fingerprint_version")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_SCORE = "energy"
RUN_FOLDER = "a run folder written by croft-train (config.yaml, checkpoints, results.json)"
EXPLICIT_HINT = ("a folder of checkpoints alone (the original CRoFT code's) loads with the settings it was trained "
                 "with: --config-file, --dataset-config-file, --root, --set KEY VALUE (croft.load(run_dir, "
                 "config=..., dataset_config=...))")
SAME_RUN = ("the files of one run (config.yaml, fingerprint.json, checkpoints and results.json as croft-train "
            "wrote them); restore the run's own file, or re-run croft-train")


class PredictError(Exception):
    """A run folder (or request) that cannot be predicted with: ``<what>, <where>, <what was expected>``."""

    def __init__(self, what, where, expected):
        super().__init__(f"{what}, {where}, {expected}")
        self.what, self.where, self.expected = what, where, expected


# ---------------------------------------------------------------------------------------------- run folder

@dataclass
class RunInfo:
    """What the run folder says about itself (read without torch)."""
    run_dir: str
    results: dict
    detector: Optional[dict]
    #: The settings are given by the caller (a folder without config.yaml), not read from config.yaml.
    explicit: bool = False


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictError(f"unreadable {what}", path, f"the JSON file a finished croft run writes ({exc})") from None
    if not isinstance(data, dict):
        raise PredictError(f"invalid {what}", path, "a JSON object at the top level")
    return data


def check_run_dir(run_dir, explicit=False):
    """Check a run folder before anything is built; returns a :class:`RunInfo` or raises :class:`PredictError`.

    ``explicit``: the caller gives the run's settings (a folder without config.yaml, whose
    results.json, when there is one, is optional)."""
    run_dir = os.path.abspath(os.path.expanduser(str(run_dir)))
    if not os.path.exists(run_dir):
        raise PredictError("run folder not found", run_dir, RUN_FOLDER)
    if not os.path.isdir(run_dir):
        raise PredictError("not a folder", run_dir, RUN_FOLDER)
    has_config = os.path.isfile(os.path.join(run_dir, CONFIG_FILE))
    if explicit:
        if has_config:
            raise PredictError("settings given for a run that has its own config.yaml", run_dir,
                               "the run's config.yaml alone (drop --config-file, --dataset-config-file, --root, "
                               "--seed, --trainer, --backbone, --set: they are for a folder of checkpoints without "
                               "config.yaml)")
        results_path = os.path.join(run_dir, RESULTS_FILE)
        results = _read_json(results_path, "results.json") if os.path.isfile(results_path) else {}
        return RunInfo(run_dir, results, _read_detector(run_dir), explicit=True)
    if not has_config:
        expected = "the merged config croft-train writes when a run starts"
        if _checkpoint_folders(run_dir, None):
            expected += f"; {EXPLICIT_HINT}"
        raise PredictError("no config.yaml", run_dir, expected)
    results_path = os.path.join(run_dir, RESULTS_FILE)
    if not os.path.isfile(results_path):
        raise PredictError("unfinished run (no results.json)", run_dir,
                           "results.json, written last by a finished run (rerun croft-train with the same "
                           "--output-dir to finish it)")
    results = _read_json(results_path, "results.json")
    version = results.get("schema_version", 1)
    if version != SCHEMA_VERSION:
        raise PredictError(f"results.json of schema_version {version}", results_path,
                           f"schema_version {SCHEMA_VERSION}, the version this croft writes (re-evaluate the run "
                           "with croft-train --eval-only to rewrite it)")
    best_epoch = results.get("best_epoch")
    if best_epoch is not None and not _checkpoint_folders(run_dir, best_epoch):
        raise PredictError("no checkpoint", run_dir,
                           f"<model>/{BEST_NAME} (or {EPOCH_PREFIX}{best_epoch}) of trainer "
                           f"{results.get('trainer', '?')}; an --eval-only run folder holds none: use the folder "
                           "of the training run")
    return RunInfo(run_dir, results, _read_detector(run_dir))


def _read_detector(run_dir):
    detector_path = os.path.join(run_dir, DETECTOR_FILE)
    detector = _read_json(detector_path, DETECTOR_FILE) if os.path.isfile(detector_path) else None
    if detector is not None and detector.get("format") != DETECTOR_FORMAT:
        raise PredictError(f"detector.json of format {detector.get('format')}", detector_path,
                           f"format {DETECTOR_FORMAT}, the format this croft writes")
    return detector


def _checkpoint_folders(run_dir, best_epoch):
    """Sub-folders holding ``model-best``, or ``model.pth.tar-<best_epoch>`` (any epoch when ``best_epoch`` is None)."""
    found = []
    for name in sorted(os.listdir(run_dir)):
        sub = os.path.join(run_dir, name)
        if name.startswith(".") or not os.path.isdir(sub):
            continue
        files = os.listdir(sub)
        if BEST_NAME in files or (f"{EPOCH_PREFIX}{best_epoch}" in files if best_epoch is not None
                                  else any(f.startswith(EPOCH_PREFIX) for f in files)):
            found.append(name)
    return found


def check_output_path(path):
    """Refuse an ``--output`` file that cannot be written, before anything is built or read (:class:`PredictError`).

    Missing parent folders are created when writing (as for croft-train's OUTPUT_DIR): the nearest
    existing one must be a writable folder."""
    if not path.lower().endswith((".csv", ".jsonl")):
        raise PredictError(f"unknown output format {path}", "--output", "a .csv or .jsonl file name")
    target = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(target):
        raise PredictError("--output is a folder", target, "a .csv or .jsonl file name")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise PredictError("--output is not writable", target, "a file you may write (or a new file name)")
    folder = os.path.dirname(target)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise PredictError("cannot create the --output file", target, f"a path below folders, but {folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PredictError("--output folder is not writable", target,
                           f"a folder you may write to ({folder} is read-only for you)")
    return target


def load_run_config(run_dir):
    """The run's ``config.yaml`` merged into the default tree, for prediction: ``OUTPUT_DIR`` = ``run_dir``
    and ``CACHE.ENABLED False`` (predicting never reads or writes the feature cache). Frozen."""
    from .config import ConfigError, get_cfg_default, merge_from_file, validate_cfg

    path = os.path.join(run_dir, CONFIG_FILE)
    cfg = get_cfg_default()
    try:
        merge_from_file(cfg, path)
        validate_cfg(cfg)
    except ConfigError as exc:
        raise PredictError("config.yaml does not fit this croft's config tree", path,
                           f"a run's merged config ({exc})") from None
    cfg.OUTPUT_DIR = run_dir
    cfg.CACHE.ENABLED = False
    cfg.freeze()
    return cfg


def explicit_run_config(run_dir, config=None, dataset_config=None, root=None, opts=None):
    """The settings of a folder without config.yaml, found, merged and checked as croft-train does
    (``configs/...`` paths as :func:`croft.config.locate.locate_config` finds them; defaults, dataset
    YAML, trainer YAML, ``root``, ``opts`` = ``KEY VALUE`` overrides; :class:`~croft.config.ConfigError`
    naming the key); ``OUTPUT_DIR`` = ``run_dir``, no feature cache. Frozen."""
    from argparse import Namespace

    from .config import setup_cfg
    from .config.locate import locate_config
    from .engine.checks import check_cfg

    args = Namespace(config_file=locate_config(os.fspath(config) if config else ""),
                     dataset_config_file=locate_config(os.fspath(dataset_config) if dataset_config else "",
                                                       "--dataset-config-file"),
                     root=os.fspath(root) if root else "", output_dir="", resume="", seed=None, source_domains=None,
                     target_domains=None, transforms=None, trainer="", backbone="", head="",
                     opts=[str(o) for o in (opts or [])])
    cfg = setup_cfg(args)
    check_cfg(cfg)
    cfg.defrost()
    cfg.OUTPUT_DIR = run_dir
    cfg.CACHE.ENABLED = False
    cfg.freeze()
    return cfg


# ---------------------------------------------------------------------------------------------- run identity

def checkpoint_files(run_dir):
    """Every checkpoint of the folder, as ``(label, path)``: ``<model>/model-best.pth.tar``,
    ``<model>/model.pth.tar-<E>`` (sub-folders not starting with a dot), and ``last.pth.tar``."""
    found = []
    for name in sorted(os.listdir(run_dir)):
        sub = os.path.join(run_dir, name)
        if name.startswith(".") or not os.path.isdir(sub):
            continue
        for file_name in sorted(os.listdir(sub)):
            if file_name == BEST_NAME or file_name.startswith(EPOCH_PREFIX):
                found.append((f"checkpoint {name}/{file_name}", os.path.join(sub, file_name)))
    if os.path.isfile(os.path.join(run_dir, LAST_NAME)):
        found.append((f"checkpoint {LAST_NAME}", os.path.join(run_dir, LAST_NAME)))
    return found


def _checkpoint_fingerprint(path):
    """The fingerprint a checkpoint records (None when it records none), reading no tensor data."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 -- not a plain zip checkpoint: the checked reader says why, or reads it
        from .engine.checkpoint import safe_torch_load

        state = safe_torch_load(path)
    fingerprint = state.get("fingerprint") if isinstance(state, dict) else None
    return fingerprint if isinstance(fingerprint, dict) and "values" in fingerprint else None


def recorded_fingerprints(info):
    """``[(label, path, fingerprint or None)]`` of what the run folder records: results.json,
    fingerprint.json, then every checkpoint (:func:`checkpoint_files`)."""
    records = []
    if info.results:
        values = info.results.get("fingerprint_values")
        records.append(("results.json", os.path.join(info.run_dir, RESULTS_FILE),
                        {"values": values} if isinstance(values, dict) else None))
    path = os.path.join(info.run_dir, FINGERPRINT_FILE)
    if os.path.isfile(path):
        stored = _read_json(path, FINGERPRINT_FILE)
        records.append((FINGERPRINT_FILE, path, stored if isinstance(stored.get("values"), dict) else None))
    records.extend((label, path, _checkpoint_fingerprint(path)) for label, path in checkpoint_files(info.run_dir))
    return records


def _mismatch(label, where, other, diffs):
    key, mine, theirs = diffs[0]
    more = f" (and {len(diffs) - 1} more key{'s' if len(diffs) > 2 else ''})" if len(diffs) > 1 else ""
    return PredictError(f"{label} does not match {other}: {key} is {mine!r} in {label}, {theirs!r} in {other}{more}",
                        where, SAME_RUN)


def check_fingerprints(info, cfg):
    """Refuse a run folder whose files do not describe one run (:class:`PredictError` naming the first
    differing key and both values).

    A run's folder: results.json, fingerprint.json and every checkpoint must record the same settings
    (compared as the fingerprint compares them: a key one of them lacks counts as its default), and
    ``cfg`` (its config.yaml) must give them, except :data:`RELOCATABLE_KEYS`. A folder whose
    settings are given (``info.explicit``): every recorded fingerprint must match them on the
    training side, as ``croft-train --eval-only --model-dir`` checks; a folder that records none (the
    original CRoFT code's) is not checked.
    """
    from .engine.fingerprint import differences, make_fingerprint

    current = make_fingerprint(cfg)
    records = recorded_fingerprints(info)
    if info.explicit:
        for label, path, stored in records:
            diffs = differences(stored, current, training_only=True) if stored is not None else []
            if diffs:
                raise _mismatch(label, path, "the settings given", diffs)
        return
    recorded = [(label, stored) for label, _, stored in records if stored is not None]
    if not recorded:
        return  # written before croft recorded fingerprints: nothing to compare
    reference, expected = recorded[0]
    for label, path, stored in records:
        if stored is None:
            raise PredictError(f"{label} records no fingerprint, unlike {reference}", path,
                               f"{SAME_RUN} (croft writes the fingerprint into every file it writes)")
        diffs = differences(stored, expected)
        if diffs:
            raise _mismatch(label, path, reference, diffs)
    diffs = [d for d in differences(current, expected) if d[0] not in RELOCATABLE_KEYS]
    if diffs:
        raise _mismatch(CONFIG_FILE, os.path.join(info.run_dir, CONFIG_FILE), reference, diffs)


# ---------------------------------------------------------------------------------------------- trainer

class UnavailableItems:
    """The run's item list (e.g. its training images) of known length, whose items are not available.

    A trainer may ask how many training images the run had (Tip-Adapter-F's cache size check);
    reading an item raises an error naming the list.
    """

    def __init__(self, count, what):
        self.count, self.what = int(count), what

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        raise RuntimeError(f"the run's {self.what} images are not available when predicting")

    def __iter__(self):
        raise RuntimeError(f"the run's {self.what} images are not available when predicting")


class ClassNamesDataset:
    """What building a trainer's models needs of a dataset, without its images: the class names
    (in label order), the size of the training list, the domain names. No item is available."""

    setup = "custom"
    #: No image is available: a trainer built on it builds its models only, no loaders.
    has_items = False

    def __init__(self, classnames, num_train=0, source_domains=(), target_domains=()):
        self.classnames = list(classnames)
        self.num_classes = len(self.classnames)
        self.train_x = UnavailableItems(num_train, "training")
        self.train_full = self.train_x
        self.val, self.test = [], []
        self.test_sets, self.ood, self.class_subsets = {}, {}, {}
        self.source_domains, self.target_domains = list(source_domains), list(target_domains)


def build_trainer_for_inference(cfg, dataset, device):
    """The trainer ``cfg.TRAINER.NAME`` with its models built for ``dataset`` (usually a
    :class:`ClassNamesDataset`) on ``device``: no dataset read, no data manager, no loaders."""
    from .engine.trainer import TRAINER_REGISTRY

    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg, dataset=dataset, device=device)


class _PreservedRNG:
    """Restores the Python, NumPy and torch CPU RNG states on exit (rebuilding a seeded backbone
    must not change the caller's random streams)."""

    def __enter__(self):
        import random

        import numpy as np
        import torch

        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        return self

    def __exit__(self, *exc):
        import random

        import numpy as np
        import torch

        random.setstate(self.states[0])
        np.random.set_state(self.states[1])
        torch.set_rng_state(self.states[2])
        return False


def _default_device(cfg):
    import torch

    return "cuda" if cfg.USE_CUDA and torch.cuda.is_available() else "cpu"


def _classes_of_run(info, cfg):
    """A :class:`ClassNamesDataset` of the run: from detector.json, else from the run's dataset
    (a run written before detector.json existed) when it is still at ``DATASET.ROOT``."""
    detector = info.detector
    if detector is not None and detector.get("classnames"):
        return ClassNamesDataset(detector["classnames"], detector.get("n_train", 0),
                                 detector.get("source_domains", ()), detector.get("target_domains", ()))
    from .data.datasets import build_dataset

    try:
        dataset = build_dataset(cfg)
    except Exception as exc:  # noqa: BLE001 -- any failure to read the dataset means the same here
        raise PredictError("class names unknown (no detector.json)", info.run_dir,
                           f"detector.json (written at the end of a run), or the run's dataset "
                           f"{info.results.get('dataset')} at DATASET.ROOT {cfg.DATASET.ROOT!r} "
                           f"({type(exc).__name__}: {exc})") from None
    return ClassNamesDataset(dataset.classnames, len(dataset.train_x), dataset.source_domains,
                             dataset.target_domains)


def _load_checkpoints(trainer, run_dir, best_epoch, load_epoch=None):
    """Load the checkpoint the run evaluated: ``model-best`` of every model, else ``model.pth.tar-<best_epoch>``;
    ``model.pth.tar-<load_epoch>`` when ``load_epoch`` is given."""
    names = trainer.get_model_names()
    if not names:
        return None
    if load_epoch is not None:
        epoch_file = f"{EPOCH_PREFIX}{load_epoch}"
        missing = [n for n in names if not os.path.isfile(os.path.join(run_dir, n, epoch_file))]
        if missing:
            raise PredictError("checkpoint not found", os.path.join(run_dir, missing[0], epoch_file),
                               f"{epoch_file} (load_epoch {load_epoch}) for each model of trainer "
                               f"{trainer.cfg.TRAINER.NAME}: {', '.join(names)}")
        trainer.load_model(run_dir, epoch=load_epoch)
        return epoch_file
    if all(os.path.isfile(os.path.join(run_dir, n, BEST_NAME)) for n in names):
        trainer.load_model(run_dir)
        return BEST_NAME
    epoch_file = f"{EPOCH_PREFIX}{best_epoch}"
    if best_epoch is not None and all(os.path.isfile(os.path.join(run_dir, n, epoch_file)) for n in names):
        trainer.load_model(run_dir, epoch=best_epoch)
        return epoch_file
    missing = [n for n in names if not os.path.isfile(os.path.join(run_dir, n, BEST_NAME))]
    alternative = epoch_file if best_epoch is not None else f"{EPOCH_PREFIX}<E> with --load-epoch E"
    raise PredictError("checkpoint not found", os.path.join(run_dir, missing[0]),
                       f"{BEST_NAME} (or {alternative}) for each model of trainer {trainer.cfg.TRAINER.NAME}: "
                       f"{', '.join(names)}")


def _check_backbone(trainer, detector, run_dir):
    """A backbone rebuilt from a random initialisation must be the run's (same state-dict hash)."""
    weights = ((detector or {}).get("backbone") or {}).get("weights") or {}
    if weights.get("kind") != "random-init" or not weights.get("state_dict_sha256"):
        return
    from .clip.weights import state_dict_digest

    if state_dict_digest(trainer.clip_model) != weights["state_dict_sha256"]:
        raise PredictError("the rebuilt random-init backbone differs from the run's", run_dir,
                           "the backbone of the run (state-dict hash in detector.json); a random initialisation "
                           "is rebuilt from SEED and needs the same open_clip and torch versions")


def _build_trainer_on_dataset(cfg, info, device):
    """The trainer on the run's dataset (a folder without detector.json: its class names and ID val
    images come from there), built as croft-train builds it."""
    from .data.datasets import build_dataset
    from .data.verify import verify_images
    from .engine.trainer import TRAINER_REGISTRY

    try:
        dataset = build_dataset(cfg)
        verify_images(dataset, cfg.DATASET.NAME)
    except Exception as exc:  # noqa: BLE001 -- any failure to read the dataset means the same here
        raise PredictError("class names and detector thresholds unknown (no detector.json)", info.run_dir,
                           f"the run's dataset {cfg.DATASET.NAME} at DATASET.ROOT {cfg.DATASET.ROOT!r} (--root), "
                           "to read its class names and compute the thresholds on its ID val images, or the "
                           "detector files of an --eval-only run of these checkpoints in the folder "
                           f"({type(exc).__name__}: {exc})") from None
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg, dataset=dataset, device=device)


def _compute_thresholds(trainer, info):
    """Detector thresholds computed in memory as the run's evaluation computes them; None (logged) when the
    dataset has no ID val or test image."""
    from .utils.logging import get_logger
    from .evaluation.detector import compute_detector, describe_thresholds

    data = compute_detector(trainer)
    if data is not None:
        get_logger().info(f"{describe_thresholds(data.detector)} (computed now, not stored in {info.run_dir})")
    return data


# ---------------------------------------------------------------------------------------------- predictions

@dataclass
class Predictions:
    """Predictions for N images, in input order. Unreadable images (``errors`` mode ``"record"``)
    have an ``errors[i]`` message, ``class_index`` -1 and NaN numbers.

    - ``classes[i]`` / ``class_index[i]``: the predicted class (argmax of the logits);
    - ``confidence[i]``: its softmax probability;
    - ``scores[name][i]``: each open-set score (higher = more in-distribution);
    - ``is_unknown[i]``: ``scores[score][i] < threshold`` (the threshold keeping ``tpr`` of the ID
      validation images); all False, and ``threshold`` None, for a run without detector thresholds.
    """
    paths: List[Optional[str]]
    classnames: List[str]
    logits: "object"                       # N x C float32 numpy array
    class_index: "object"                  # N int64 numpy array
    confidence: "object"                   # N float64 numpy array
    scores: Dict[str, "object"]            # name -> N float64 numpy array
    score: str
    tpr: Optional[float]
    threshold: Optional[float]
    is_unknown: "object"                   # N bool numpy array
    errors: List[Optional[str]] = field(default_factory=list)

    def __len__(self):
        return len(self.paths)

    @property
    def classes(self):
        return [None if i < 0 else self.classnames[i] for i in self.class_index.tolist()]

    @property
    def ok(self):
        """Bool mask of the images that were read and predicted."""
        import numpy as np

        return np.array([e is None for e in self.errors], dtype=bool)

    def row(self, i):
        """One image as a flat dict: path, class, class_index, confidence, each score, is_unknown, error."""
        error = self.errors[i]
        row = {"path": self.paths[i]}
        if error is not None:
            row.update({"class": None, "class_index": None, "confidence": None})
            row.update({name: None for name in self.scores})
            row.update({"is_unknown": None, "error": error})
            return row
        row.update({"class": self.classnames[int(self.class_index[i])], "class_index": int(self.class_index[i]),
                    "confidence": float(self.confidence[i])})
        row.update({name: float(values[i]) for name, values in self.scores.items()})
        row.update({"is_unknown": bool(self.is_unknown[i]) if self.threshold is not None else None, "error": None})
        return row

    def rows(self):
        return [self.row(i) for i in range(len(self))]

    def __getitem__(self, i):
        return self.row(i)

    def __iter__(self):
        return (self.row(i) for i in range(len(self)))

    @property
    def columns(self):
        return ["path", "class", "class_index", "confidence", *self.scores, "is_unknown", "error"]


class ImageReadError(ValueError):
    """An input image that cannot be read or is not a valid input."""


class Predictor:
    """A finished run restored for prediction; build it with :meth:`from_run` (or ``croft.load``)."""

    def __init__(self, run_dir, cfg, trainer, info, device, checkpoint=None, detector_data=None):
        """``detector_data``: a :class:`~croft.evaluation.detector.DetectorData` computed in memory, in
        place of the run's detector files (``info.detector`` is then its detector)."""
        from .data.transforms import build_transform

        self.run_dir, self.cfg, self.trainer, self.info = run_dir, cfg, trainer, info
        self.device = device
        self.checkpoint = checkpoint
        self.detector = info.detector
        self.classnames = list(trainer.classnames)
        self.transform = build_transform(cfg, is_train=False)
        self._val_scores = detector_data.val_scores if detector_data is not None else None
        self.knn_bank, self.knn_k = None, None
        detector = self.detector or {}
        # Without detector.json: the run's scores, except knn (no bank).
        names = list(detector.get("scores") or [n for n in detector_score_names(cfg) if n != "knn"])
        knn = detector.get("knn")
        if "knn" in names:
            bank_path = os.path.join(run_dir, (knn or {}).get("bank", KNN_BANK_FILE))
            if knn and detector_data is not None and detector_data.knn_bank is not None:
                import torch

                self.knn_bank = torch.from_numpy(detector_data.knn_bank).float()
                self.knn_k = int(knn["k"])
            elif knn and detector_data is None and os.path.isfile(bank_path):
                import numpy as np
                import torch

                self.knn_bank = torch.from_numpy(np.load(bank_path, allow_pickle=False)).float()
                self.knn_k = int(knn["k"])
            else:
                names.remove("knn")
        self.score_names = names
        #: Scores whose definition changed since the run (their stored thresholds do not apply).
        self.stale_scores = []
        probe = detector.get("score_probe")
        if probe:
            import numpy as np

            now = score_probe([n for n in names if n in probe], cfg.TEST.MCM_TEMPERATURE)
            self.stale_scores = [n for n, values in now.items()
                                 if not np.allclose(values, probe[n], rtol=1e-5, atol=1e-6)]

    @classmethod
    def from_run(cls, run_dir, device=None, config=None, dataset_config=None, root=None, opts=None,
                 load_epoch=None):
        """Restore the run in ``run_dir`` (see the module docstring); ``device``: default the run's
        (CUDA when ``USE_CUDA`` and available, else the CPU). Raises :class:`PredictError` for a bad folder.

        ``config``, ``dataset_config``, ``root``, ``opts`` (``[KEY, VALUE, ...]``): the settings of a
        folder without config.yaml, as ``croft-train --eval-only --model-dir`` takes them
        (:class:`~croft.config.ConfigError` for a bad one). ``load_epoch``: load
        ``model.pth.tar-<load_epoch>`` instead of the checkpoint the run evaluated.
        """
        explicit = any(v not in (None, "", [], ()) for v in (config, dataset_config, root, opts))
        info = check_run_dir(run_dir, explicit=explicit)
        if explicit:
            cfg = explicit_run_config(info.run_dir, config, dataset_config, root, opts)
        else:
            cfg = load_run_config(info.run_dir)
        from . import trainers  # noqa: F401  (registers every trainer)
        from .engine.trainer import TRAINER_REGISTRY, set_random_seed

        where = os.path.join(info.run_dir, CONFIG_FILE) if not explicit else "the settings given"
        if cfg.TRAINER.NAME not in TRAINER_REGISTRY:
            raise PredictError(f"unknown trainer {cfg.TRAINER.NAME!r}", where,
                               f"one of {', '.join(TRAINER_REGISTRY.names())}")
        pretrained = str(cfg.MODEL.BACKBONE.PRETRAINED).strip().lower()
        if pretrained in ("none", "") and cfg.SEED < 0:
            raise PredictError("the run's backbone is an unseeded random initialisation", info.run_dir,
                               "pretrained weights, or a random initialisation with SEED >= 0, to rebuild it")
        check_fingerprints(info, cfg)
        device = device or _default_device(cfg)
        detector_data = None
        with _PreservedRNG():
            if cfg.SEED >= 0:
                set_random_seed(cfg.SEED)  # a random-init backbone draws from the global RNG, as in training
            if explicit and info.detector is None:
                trainer = _build_trainer_on_dataset(cfg, info, device)
            else:
                trainer = build_trainer_for_inference(cfg, _classes_of_run(info, cfg), device)
        _check_backbone(trainer, info.detector, info.run_dir)
        try:
            checkpoint = _load_checkpoints(trainer, info.run_dir, info.results.get("best_epoch"), load_epoch)
        except FileNotFoundError as exc:
            raise PredictError("checkpoint not found", info.run_dir, str(exc)) from None
        if not hasattr(trainer, "image_encoder"):
            raise PredictError(f"trainer {cfg.TRAINER.NAME} has no frozen image encoder", info.run_dir,
                               "a trainer built on croft.trainers.clip_base.FrozenCLIPMethod")
        trainer.set_model_mode("eval")
        if explicit and info.detector is None:
            detector_data = _compute_thresholds(trainer, info)
            info.detector = detector_data.detector if detector_data is not None else None
        return cls(info.run_dir, cfg, trainer, info, trainer.device, checkpoint, detector_data)

    # ------------------------------------------------------------------ thresholds
    @property
    def tpr(self):
        """The TPR of the stored thresholds (None without detector.json)."""
        return None if self.detector is None else float(self.detector["tpr"])

    def val_scores(self, score):
        """The sorted ID val scores of ``score`` (``detector_val_scores.npz``)."""
        if self._val_scores is None:
            import numpy as np

            path = os.path.join(self.run_dir, (self.detector or {}).get("val_scores", VAL_SCORES_FILE))
            if not os.path.isfile(path):
                raise PredictError("no ID val scores", path, "the detector_val_scores.npz written with detector.json, "
                                   "to threshold at a TPR other than the stored one")
            with np.load(path, allow_pickle=False) as data:
                self._val_scores = {k: data[k] for k in data.files}
        if score not in self._val_scores:
            raise PredictError(f"no ID val scores of {score!r}", self.run_dir, f"one of {sorted(self._val_scores)}")
        return self._val_scores[score]

    def threshold(self, score=DEFAULT_SCORE, tpr=None):
        """The threshold of ``score`` at ``tpr`` (default the stored TPR); None without detector.json."""
        self._check_score(score)
        if self.detector is None:
            return None
        if score in self.stale_scores:
            others = [s for s in self.score_names if s not in self.stale_scores]
            raise PredictError(f"the definition of score {score!r} changed since the run",
                               os.path.join(self.run_dir, DETECTOR_FILE),
                               "thresholds computed by this croft: re-evaluate the run (croft-train --eval-only), "
                               f"or choose another score ({', '.join(others) or 'none left'})")
        tpr = self.tpr if tpr is None else check_tpr(tpr)
        stored = self.detector.get("thresholds", {})
        if math.isclose(tpr, self.tpr, rel_tol=0, abs_tol=1e-12) and score in stored:
            return float(stored[score])
        return threshold_at(self.val_scores(score), tpr)

    def _check_score(self, score):
        if score not in self.score_names:
            hint = " (the run stored no KNN bank)" if score == "knn" else ""
            raise PredictError(f"unknown score {score!r}{hint}", self.run_dir,
                               f"one of the run's scores: {', '.join(self.score_names)}")

    # ------------------------------------------------------------------ images
    def _load(self, image):
        """One input -> a CHW float tensor of the test transform (or ImageReadError)."""
        import torch
        from PIL import Image

        from .data.images import read_image

        if isinstance(image, torch.Tensor):
            size = tuple(self.cfg.INPUT.SIZE)
            if image.dim() != 3 or tuple(image.shape[1:]) != size or image.shape[0] != 3:
                raise ImageReadError(f"tensor of shape {tuple(image.shape)}; expected 3 x {size[0]} x {size[1]}, "
                                     "already through the run's test transform")
            return image.detach().float().cpu()
        if isinstance(image, Image.Image):
            from .data.images import ImageModeError, to_rgb

            try:
                return self.transform(to_rgb(image))
            except ImageModeError as exc:
                raise ImageReadError(str(exc)) from exc
        if isinstance(image, (str, os.PathLike)):
            try:
                return self.transform(read_image(image))
            except Exception as exc:  # noqa: BLE001 -- any unreadable file is reported, never fatal in "record"
                raise ImageReadError(f"{type(exc).__name__}: {exc}") from exc
        raise ImageReadError(f"unsupported input of type {type(image).__name__}; expected a file path, a PIL image "
                             "or a CHW tensor")

    @staticmethod
    def _entries(images):
        import torch
        from PIL import Image

        if isinstance(images, (str, os.PathLike, Image.Image)):
            return [images]
        if isinstance(images, torch.Tensor):
            return [images] if images.dim() == 3 else list(images)
        return list(images)

    def _infer(self, tensors, names):
        """Logits, confidences and scores of one batch of transformed images."""
        import torch

        from .evaluation.inference import FINAL, Outputs
        from .evaluation.scores import ScoreContext, compute_scores

        trainer = self.trainer
        with torch.no_grad():
            features = trainer.image_encoder(torch.stack(tensors).to(self.device))
            out = trainer.inference(features, FINAL)
            logits = out.logits.float().cpu()
            outputs = Outputs(logits, out.image_features.float().cpu(), torch.zeros(len(logits), dtype=torch.long),
                              out.text_features.float().cpu())
            context = ScoreContext(knn_bank=self.knn_bank, knn_k=self.knn_k or 1,
                                   mcm_temperature=self.cfg.TEST.MCM_TEMPERATURE)
            scores = compute_scores(outputs, names, context)
            probs = torch.softmax(logits.double(), dim=1)
            confidence, index = probs.max(dim=1)
        return logits.numpy(), index.numpy(), confidence.numpy(), scores

    def predict(self, images, batch_size=32, score=DEFAULT_SCORE, tpr=None, errors="raise", progress=False):
        """Predict ``images`` (a path, PIL image or CHW tensor, an NCHW tensor, or a list of those).

        Batches hold ``batch_size`` readable images, in input order. ``errors="raise"`` stops at the
        first unreadable image (:class:`ImageReadError`); ``"record"`` reports it in
        ``Predictions.errors`` and goes on. ``score`` / ``tpr``: the score and TPR of ``is_unknown``.
        Tensors must already be test-transformed (3 x ``INPUT.SIZE``).
        """
        import numpy as np
        from tqdm import tqdm

        if errors not in ("raise", "record"):
            raise ValueError(f"errors must be 'raise' or 'record', got {errors!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        threshold = self.threshold(score, tpr)
        entries = self._entries(images)
        n, names = len(entries), self.score_names
        logits = np.full((n, len(self.classnames)), np.nan, dtype=np.float32)
        index = np.full(n, -1, dtype=np.int64)
        confidence = np.full(n, np.nan)
        scores = {name: np.full(n, np.nan) for name in names}
        errs = [None] * n
        paths = [os.fspath(e) if isinstance(e, (str, os.PathLike)) else None for e in entries]
        pending, at = [], []

        def flush():
            if pending:
                lg, ix, cf, sc = self._infer(pending, names)
                logits[at], index[at], confidence[at] = lg, ix, cf
                for name in names:
                    scores[name][at] = sc[name]
                pending.clear()
                at.clear()

        with tqdm(total=n, desc="predict", unit="img", disable=not progress, file=sys.stderr,
                  dynamic_ncols=True) as bar:
            for i, entry in enumerate(entries):
                try:
                    pending.append(self._load(entry))
                    at.append(i)
                except ImageReadError as exc:
                    if errors == "raise":
                        where = paths[i] if paths[i] is not None else f"input {i}"
                        raise ImageReadError(f"cannot read {where}: {exc}") from exc.__cause__
                    errs[i] = str(exc)
                if len(pending) == batch_size:
                    flush()
                bar.update(1)
            flush()
        flags = np.zeros(n, dtype=bool)
        if threshold is not None:
            flags = np.isfinite(scores[score]) & (scores[score] < threshold)
        return Predictions(paths=paths, classnames=self.classnames, logits=logits, class_index=index,
                           confidence=confidence, scores=scores, score=score,
                           tpr=(self.tpr if tpr is None else check_tpr(tpr)) if threshold is not None else None,
                           threshold=threshold, is_unknown=flags, errors=errs)


def load(run_dir, device=None, config=None, dataset_config=None, root=None, opts=None, load_epoch=None):
    """``Predictor.from_run(run_dir, ...)``: a finished run, ready to :meth:`Predictor.predict`.

    ``config``, ``dataset_config``, ``root``, ``opts``: the settings of a folder of checkpoints without
    config.yaml (the original CRoFT code's), as croft-train's ``--config-file``, ``--dataset-config-file``,
    ``--root`` and ``KEY VALUE`` overrides."""
    return Predictor.from_run(run_dir, device=device, config=config, dataset_config=dataset_config, root=root,
                              opts=opts, load_epoch=load_epoch)


# ---------------------------------------------------------------------------------------------- command line

def find_images(inputs):
    """Files given, and image files under folders given (recursive, sorted; hidden entries skipped)."""
    found = []
    for item in inputs:
        if os.path.isdir(item):
            for folder, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(folder, f) for f in sorted(files)
                             if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
        else:
            found.append(item)  # a missing or unreadable file is reported in its row
    return found


def _format(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_predictions(predictions, path=None):
    """CSV (``.csv``, and stdout when ``path`` is None) or JSON lines (``.jsonl``); a file is written atomically."""
    from .utils.atomic import atomic_write_text

    jsonl = path is not None and path.lower().endswith(".jsonl")
    buffer = io.StringIO()
    if jsonl:
        for row in predictions:
            buffer.write(json.dumps(row) + "\n")
    else:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(predictions.columns)
        for row in predictions:
            writer.writerow([_format(row[c]) for c in predictions.columns])
    if path is None:
        sys.stdout.write(buffer.getvalue())
        sys.stdout.flush()
    else:
        atomic_write_text(path, buffer.getvalue())


def build_parser():
    parser = argparse.ArgumentParser(
        prog="croft-predict",
        description="Classify images with a finished croft run and flag open-set (unknown) images with the "
                    "run's detector thresholds (docs/predict.md).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (OUTPUT_DIR of croft-train)")
    parser.add_argument("images", metavar="IMAGES", nargs="+",
                        help=f"image files, or folders searched recursively for {', '.join(IMAGE_EXTENSIONS)}")
    parser.add_argument("--output", "-o", default=None,
                        help="preds.csv or preds.jsonl (default: CSV on stdout)")
    parser.add_argument("--score", default=DEFAULT_SCORE,
                        help="the open-set score of is_unknown (default: energy)")
    parser.add_argument("--tpr", type=float, default=None,
                        help="keep this fraction of the ID val images (default: the TPR stored in detector.json, 0.95)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", "-v", action="store_true", help="log the restore steps (to stderr)")
    parser.add_argument("--load-epoch", type=int, default=None,
                        help="load model.pth.tar-<epoch> instead of the checkpoint the run evaluated")
    given = parser.add_argument_group(
        "a folder of checkpoints without config.yaml (the original CRoFT code's)",
        "the settings it was trained with, as croft-train --eval-only --model-dir takes them; its class names and "
        "detector thresholds come from its dataset (ID val images) unless the folder holds a detector.json")
    given.add_argument("--config-file", default="", help="trainer config file")
    given.add_argument("--dataset-config-file", default="", help="dataset config file")
    given.add_argument("--root", default="", help="dataset root (DATASET.ROOT)")
    given.add_argument("--seed", type=int, default=None, help="SEED (>= 0)")
    given.add_argument("--trainer", default="", help="TRAINER.NAME")
    given.add_argument("--backbone", default="", help="MODEL.BACKBONE.NAME")
    given.add_argument("--source-domains", nargs="+", default=None, help="DATASET.SOURCE_DOMAINS")
    given.add_argument("--target-domains", nargs="+", default=None, help="DATASET.TARGET_DOMAINS")
    given.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), dest="overrides",
                       help="a config override, as croft-train's trailing KEY VALUE pairs (repeatable)")
    return parser


def explicit_settings(args):
    """``(config, dataset_config, root, opts)`` of the command line's settings for a folder without
    config.yaml; croft-train's flags become overrides in its merge order (flags, then ``--set`` pairs)."""
    opts = []
    if args.seed is not None and args.seed >= 0:
        opts += ["SEED", str(args.seed)]
    if args.source_domains:
        opts += ["DATASET.SOURCE_DOMAINS", repr(list(args.source_domains))]
    if args.target_domains:
        opts += ["DATASET.TARGET_DOMAINS", repr(list(args.target_domains))]
    if args.trainer:
        opts += ["TRAINER.NAME", args.trainer]
    if args.backbone:
        opts += ["MODEL.BACKBONE.NAME", args.backbone]
    for key, value in args.overrides:
        opts += [key, value]
    return args.config_file, args.dataset_config_file, args.root, opts


class _cli_logging:
    """croft's log to stderr (stdout may carry the CSV), at INFO with ``--verbose``, else silent
    (errors are reported by ``main``); the root logger (open_clip's warnings) likewise. The previous
    logging state is restored on exit, so ``main`` can be called in-process."""

    def __init__(self, verbose):
        self.verbose = verbose

    def __enter__(self):
        import logging

        from .utils.logging import LOGGER_NAME

        self.logger, self.root = logging.getLogger(LOGGER_NAME), logging.getLogger()
        self.saved = (list(self.logger.handlers), self.logger.level, self.logger.propagate, self.root.level)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.handlers = [handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO if self.verbose else logging.CRITICAL + 1)
        self.root.setLevel(logging.WARNING if self.verbose else logging.CRITICAL + 1)
        return self

    def __exit__(self, *exc):
        handlers, level, propagate, root_level = self.saved
        self.logger.handlers = handlers
        self.logger.setLevel(level)
        self.logger.propagate = propagate
        self.root.setLevel(root_level)
        return False


def _error(message):
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return 1


def main(argv=None):
    """The command line; returns the exit status: 0 done, 1 failed (or no image predicted), 2 bad settings."""
    from .config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except ConfigError as exc:
        if os.environ.get("CROFT_TRACEBACK"):
            raise
        _error(str(exc))
        return 2
    except PredictError as exc:
        if os.environ.get("CROFT_TRACEBACK"):
            raise
        return _error(str(exc))
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        if os.environ.get("CROFT_TRACEBACK"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return _error(f"{message} (set CROFT_TRACEBACK=1 for the traceback)")


def _main(args):
    if args.tpr is not None:
        try:
            check_tpr(args.tpr)
        except ValueError:
            raise PredictError(f"invalid --tpr {args.tpr}", "command line", "a number in (0, 1]") from None
    if args.batch_size < 1:
        raise PredictError(f"invalid --batch-size {args.batch_size}", "command line", "an integer >= 1")
    if args.output is not None:
        check_output_path(args.output)
    config, dataset_config, root, opts = explicit_settings(args)
    check_run_dir(args.run_dir, explicit=bool(config or dataset_config or root or opts))  # no torch: fails fast
    images = find_images(args.images)
    if not images:
        raise PredictError("no images", " ".join(args.images), f"image files ({', '.join(IMAGE_EXTENSIONS)}) or "
                                                               "folders holding some")
    with _cli_logging(args.verbose):
        predictor = Predictor.from_run(args.run_dir, device=args.device, config=config, dataset_config=dataset_config,
                                       root=root, opts=opts, load_epoch=args.load_epoch)
    if predictor.detector is None:
        sys.stderr.write(f"warning: {args.run_dir} has no detector.json: no thresholds, is_unknown is empty\n")
    predictions = predictor.predict(images, batch_size=args.batch_size, score=args.score, tpr=args.tpr,
                                    errors="record", progress=not args.no_progress)
    ok = predictions.ok
    if not ok.any():
        first = next(i for i, e in enumerate(predictions.errors) if e is not None)
        raise PredictError(f"no image could be predicted ({len(predictions)} unreadable; first: "
                           f"{predictions.paths[first]}: {predictions.errors[first]})", " ".join(args.images),
                           "image files that PIL can open (nothing was written)")
    write_predictions(predictions, args.output)
    summary = f"{len(predictions)} images, {int((~ok).sum())} unreadable"
    if predictions.threshold is not None:
        det = predictor.detector
        summary += (f"; {int(predictions.is_unknown[ok].sum())} unknown ({args.score} < {predictions.threshold:.6g}, "
                    f"TPR {predictions.tpr:g} of {det['n_val']} ID {det.get('source', 'val')} images)")
    sys.stderr.write(summary + (f"; written to {args.output}" if args.output else "") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
