"""The predictor: a finished run restored for prediction (:meth:`Predictor.from_run`, ``croft.load``)
and its :class:`Predictions`. Images go through the run's test transform, the method's ``encode`` and
``inference(features, FINAL)``, and the evaluation's score code with the run's score context, in
batches; ``is_unknown`` uses the thresholds of ``detector.json``.
"""
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..evaluation.detector import (DETECTOR_FILE, VAL_SCORES_FILE, check_tpr, detector_score_names, score_probe,
                                   threshold_at)
from ..utils.layout import CONFIG_FILE
from .restore import (_build_trainer_on_dataset, _check_backbone, _classes_of_run, _compute_thresholds, _default_device,
                      _load_checkpoints, build_trainer_for_inference, run_score_context)
from .run_dir import PredictError, check_fingerprints, check_run_dir, explicit_run_config, load_run_config

DEFAULT_SCORE = "energy"


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
        from ..data.transforms import build_transform

        self.run_dir, self.cfg, self.trainer, self.info = run_dir, cfg, trainer, info
        self.device = device
        self.checkpoint = checkpoint
        self.detector = info.detector
        self.classnames = list(trainer.classnames)
        self.transform = build_transform(cfg, is_train=False)
        self._val_scores = detector_data.val_scores if detector_data is not None else None
        detector = self.detector or {}
        #: The run's score context (the KNN bank and k, the MCM temperature): the evaluation's.
        self.score_context = (detector_data.score_context if detector_data is not None
                              else run_score_context(run_dir, self.detector, cfg))
        names = list(detector.get("scores") or detector_score_names(cfg))
        if "knn" in names and self.score_context.knn_bank is None:
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
        from .. import trainers  # noqa: F401  (registers every trainer)
        from ..engine.trainer import TRAINER_REGISTRY, set_random_seed
        from ..utils.rng import preserved_rng

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
        with preserved_rng(cuda=str(device).startswith("cuda")):  # the caller's random streams stay as they were
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
        if not callable(getattr(trainer, "encode", None)):
            raise PredictError(f"trainer {cfg.TRAINER.NAME} has no encode(images, settings)", info.run_dir,
                               "a method on croft.trainers.clip_base.FrozenCLIPMethod (the engine contract)")
        trainer.set_model_mode("eval")
        if explicit and info.detector is None:
            detector_data = _compute_thresholds(trainer, info)
            info.detector = detector_data.detector if detector_data is not None else None
        return cls(info.run_dir, cfg, trainer, info, trainer.device, checkpoint, detector_data)

    @property
    def knn_bank(self):
        """The KNN bank the run's evaluation used (float32 N x D tensor), or None."""
        return self.score_context.knn_bank

    @property
    def knn_k(self):
        """The ``k`` of the KNN score (the evaluation's), or None without a bank."""
        return None if self.score_context.knn_bank is None else int(self.score_context.knn_k)

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

        from ..data.images import read_image

        if isinstance(image, torch.Tensor):
            size = tuple(self.cfg.INPUT.SIZE)
            if image.dim() != 3 or tuple(image.shape[1:]) != size or image.shape[0] != 3:
                raise ImageReadError(f"tensor of shape {tuple(image.shape)}; expected 3 x {size[0]} x {size[1]}, "
                                     "already through the run's test transform")
            return image.detach().float().cpu()
        if isinstance(image, Image.Image):
            from ..data.images import ImageModeError, to_rgb

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
        """Logits, confidences and scores of one batch of transformed images, through the evaluation's path:
        ``encode``, ``inference(features, FINAL)``, its outputs collected and scored as the evaluator does."""
        import torch

        from ..evaluation.inference import FINAL, OutputsCollector
        from ..evaluation.scores import compute_scores

        trainer = self.trainer
        images = torch.stack(tensors).to(self.device)
        collector = OutputsCollector()
        with torch.no_grad():
            collector.add(trainer.inference(trainer.encode(images, FINAL), FINAL),
                          torch.zeros(len(images), dtype=torch.long))
        outputs = collector.outputs(len(self.classnames))
        scores = compute_scores(outputs, names, self.score_context)
        confidence, index = torch.softmax(outputs.logits.double(), dim=1).max(dim=1)
        return outputs.logits.numpy(), index.numpy(), confidence.numpy(), scores

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
