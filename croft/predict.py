"""Predict with a finished run: ``croft.load(run_dir)`` / ``croft-predict RUN_DIR IMAGES...``.

:meth:`Predictor.from_run` restores the run's trainer from its folder, without its dataset:

1. the run folder is checked (``config.yaml``, a finished ``results.json`` of schema version 2,
   checkpoints), without importing torch, so a bad folder fails fast with one line;
2. ``config.yaml`` (the merged config the run saved) is merged into the default config tree;
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
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_SCORE = "energy"
RUN_FOLDER = "a run folder written by croft-train (config.yaml, checkpoints, results.json)"


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


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictError(f"unreadable {what}", path, f"the JSON file a finished croft run writes ({exc})") from None
    if not isinstance(data, dict):
        raise PredictError(f"invalid {what}", path, "a JSON object at the top level")
    return data


def check_run_dir(run_dir):
    """Check a run folder before anything is built; returns a :class:`RunInfo` or raises :class:`PredictError`."""
    run_dir = os.path.abspath(os.path.expanduser(str(run_dir)))
    if not os.path.exists(run_dir):
        raise PredictError("run folder not found", run_dir, RUN_FOLDER)
    if not os.path.isdir(run_dir):
        raise PredictError("not a folder", run_dir, RUN_FOLDER)
    if not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
        raise PredictError("no config.yaml", run_dir, "the merged config croft-train writes when a run starts")
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
    detector_path = os.path.join(run_dir, DETECTOR_FILE)
    detector = _read_json(detector_path, DETECTOR_FILE) if os.path.isfile(detector_path) else None
    if detector is not None and detector.get("format") != DETECTOR_FORMAT:
        raise PredictError(f"detector.json of format {detector.get('format')}", detector_path,
                           f"format {DETECTOR_FORMAT}, the format this croft writes")
    return RunInfo(run_dir, results, detector)


def _checkpoint_folders(run_dir, best_epoch):
    found = []
    for name in sorted(os.listdir(run_dir)):
        sub = os.path.join(run_dir, name)
        if os.path.isdir(sub) and (os.path.isfile(os.path.join(sub, BEST_NAME))
                                   or os.path.isfile(os.path.join(sub, f"{EPOCH_PREFIX}{best_epoch}"))):
            found.append(name)
    return found


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


def _load_checkpoints(trainer, run_dir, best_epoch):
    """Load the checkpoint the run evaluated: ``model-best`` of every model, else ``model.pth.tar-<best_epoch>``."""
    names = trainer.get_model_names()
    if not names:
        return None
    if all(os.path.isfile(os.path.join(run_dir, n, BEST_NAME)) for n in names):
        trainer.load_model(run_dir)
        return BEST_NAME
    epoch_file = f"{EPOCH_PREFIX}{best_epoch}"
    if best_epoch is not None and all(os.path.isfile(os.path.join(run_dir, n, epoch_file)) for n in names):
        trainer.load_model(run_dir, epoch=best_epoch)
        return epoch_file
    missing = [n for n in names if not os.path.isfile(os.path.join(run_dir, n, BEST_NAME))]
    raise PredictError("checkpoint not found", os.path.join(run_dir, missing[0]),
                       f"{BEST_NAME} (or {epoch_file}) for each model of trainer {trainer.cfg.TRAINER.NAME}: "
                       f"{', '.join(names)}")


def _check_backbone(trainer, detector, run_dir):
    """A backbone rebuilt from a random initialisation must be the run's (same state-dict hash)."""
    weights = ((detector or {}).get("backbone") or {}).get("weights") or {}
    if weights.get("kind") != "random-init" or not weights.get("state_dict_sha256"):
        return
    from .data.feature_cache import state_dict_digest

    if state_dict_digest(trainer.clip_model) != weights["state_dict_sha256"]:
        raise PredictError("the rebuilt random-init backbone differs from the run's", run_dir,
                           "the backbone of the run (state-dict hash in detector.json); a random initialisation "
                           "is rebuilt from SEED and needs the same open_clip and torch versions")


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

    def __init__(self, run_dir, cfg, trainer, info, device, checkpoint=None):
        from .data.transforms import build_transform

        self.run_dir, self.cfg, self.trainer, self.info = run_dir, cfg, trainer, info
        self.device = device
        self.checkpoint = checkpoint
        self.detector = info.detector
        self.classnames = list(trainer.classnames)
        self.transform = build_transform(cfg, is_train=False)
        self._val_scores = None
        self.knn_bank, self.knn_k = None, None
        detector = self.detector or {}
        # Without detector.json: the run's scores, except knn (no bank).
        names = list(detector.get("scores") or [n for n in detector_score_names(cfg) if n != "knn"])
        knn = detector.get("knn")
        if "knn" in names:
            bank_path = os.path.join(run_dir, (knn or {}).get("bank", KNN_BANK_FILE))
            if knn and os.path.isfile(bank_path):
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
    def from_run(cls, run_dir, device=None):
        """Restore the run in ``run_dir`` (see the module docstring); ``device``: default the run's
        (CUDA when ``USE_CUDA`` and available, else the CPU). Raises :class:`PredictError` for a bad folder."""
        info = check_run_dir(run_dir)
        cfg = load_run_config(info.run_dir)
        from . import trainers  # noqa: F401  (registers every trainer)
        from .engine.trainer import TRAINER_REGISTRY, set_random_seed

        if cfg.TRAINER.NAME not in TRAINER_REGISTRY:
            raise PredictError(f"unknown trainer {cfg.TRAINER.NAME!r}", os.path.join(info.run_dir, CONFIG_FILE),
                               f"one of {', '.join(TRAINER_REGISTRY.names())}")
        pretrained = str(cfg.MODEL.BACKBONE.PRETRAINED).strip().lower()
        if pretrained in ("none", "") and cfg.SEED < 0:
            raise PredictError("the run's backbone is an unseeded random initialisation", info.run_dir,
                               "pretrained weights, or a random initialisation with SEED >= 0, to rebuild it")
        dataset = _classes_of_run(info, cfg)
        device = device or _default_device(cfg)
        with _PreservedRNG():
            if cfg.SEED >= 0:
                set_random_seed(cfg.SEED)  # a random-init backbone draws from the global RNG, as in training
            trainer = build_trainer_for_inference(cfg, dataset, device)
        _check_backbone(trainer, info.detector, info.run_dir)
        try:
            checkpoint = _load_checkpoints(trainer, info.run_dir, info.results.get("best_epoch"))
        except FileNotFoundError as exc:
            raise PredictError("checkpoint not found", info.run_dir, str(exc)) from None
        if not hasattr(trainer, "image_encoder"):
            raise PredictError(f"trainer {cfg.TRAINER.NAME} has no frozen image encoder", info.run_dir,
                               "a trainer built on croft.trainers.clip_base.FrozenCLIPTrainer")
        trainer.set_model_mode("eval")
        return cls(info.run_dir, cfg, trainer, info, trainer.device, checkpoint)

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
            return self.transform(image.convert("RGB"))
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


def load(run_dir, device=None):
    """``Predictor.from_run(run_dir, device)``: a finished run, ready to :meth:`Predictor.predict`."""
    return Predictor.from_run(run_dir, device=device)


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
    return parser


class _cli_logging:
    """croft's log to stderr (stdout may carry the CSV), at INFO with ``--verbose``, else silent
    (errors are reported by ``main``); the root logger (open_clip's warnings) likewise. The previous
    logging state is restored on exit, so ``main`` can be called in-process."""

    def __init__(self, verbose):
        self.verbose = verbose

    def __enter__(self):
        import logging

        from .engine.logger import LOGGER_NAME

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
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
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
    if args.output is not None and not args.output.lower().endswith((".csv", ".jsonl")):
        raise PredictError(f"unknown output format {args.output}", "--output", "a .csv or .jsonl file name")
    check_run_dir(args.run_dir)  # fail fast (no torch import) on a bad folder
    images = find_images(args.images)
    if not images:
        raise PredictError("no images", " ".join(args.images), f"image files ({', '.join(IMAGE_EXTENSIONS)}) or "
                                                               "folders holding some")
    with _cli_logging(args.verbose):
        predictor = Predictor.from_run(args.run_dir, device=args.device)
    if predictor.detector is None:
        sys.stderr.write(f"warning: {args.run_dir} has no detector.json: no thresholds, is_unknown is empty\n")
    predictions = predictor.predict(images, batch_size=args.batch_size, score=args.score, tpr=args.tpr,
                                    errors="record", progress=not args.no_progress)
    write_predictions(predictions, args.output)
    ok = predictions.ok
    summary = f"{len(predictions)} images, {int((~ok).sum())} unreadable"
    if predictions.threshold is not None:
        det = predictor.detector
        summary += (f"; {int(predictions.is_unknown[ok].sum())} unknown ({args.score} < {predictions.threshold:.6g}, "
                    f"TPR {predictions.tpr:g} of {det['n_val']} ID {det.get('source', 'val')} images)")
    sys.stderr.write(summary + (f"; written to {args.output}" if args.output else "") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
