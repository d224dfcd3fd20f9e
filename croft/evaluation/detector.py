"""Open-set detector thresholds of a run, written at the end of its final evaluation.

:func:`write_detector` computes every open-set score the run evaluated (``TEST.OOD_SCORES``, plus
``energy`` always) on the ID **validation** set under the final inference settings, and writes

- ``OUTPUT_DIR/detector_val_scores.npz``: per score, the ID val scores sorted ascending (float64),
  so that ``croft-predict --tpr`` can re-threshold at any TPR without ID data;
- ``OUTPUT_DIR/score_context.npz``: the run's score context (the KNN bank and ``k``, the MCM
  temperature, :mod:`.score_context`), with which the evaluation scored its sets and predict scores
  new images;
- ``OUTPUT_DIR/detector.json`` last (each file atomically): the thresholds at :data:`DEFAULT_TPR`,
  the class names, the logit convention, and what the thresholds came from.

Runs written before the score context was saved have ``detector_knn_bank.npy`` instead (the KNN
bank; ``k`` in detector.json); predict still reads them.

**Threshold rule** (:func:`threshold_at`): for ``n`` ID scores and a TPR ``t`` in (0, 1], the
threshold is the ``m``-th largest score with ``m = ceil(t * n)`` (at least one). At least ``m``
ID samples (``>= t * n``; more with ties) have a score ``>=`` the threshold, and a sample is flagged
*unknown* when its score is strictly below it. Every score is "higher = more in-distribution".

Without a val split the thresholds come from the ID side of the test evaluation (the open-set
protocol's ID side, ``"source": "test"`` in the file). :func:`compute_detector` computes the same
without writing (``croft.predict`` does so for a run folder that has no detector.json).
Given the run's :class:`~croft.evaluation.evaluator.EvaluationResult`, both reuse its val and test
outputs and its score context instead of inferring again. ``docs/predict.md`` documents the files.
"""
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from ..utils.layout import DETECTOR_FILE, DETECTOR_VAL_SCORES_FILE as VAL_SCORES_FILE, SCORE_CONTEXT_FILE
from ..utils.atomic import atomic_write, atomic_write_text
#: Version of the detector.json layout written here.
DETECTOR_FORMAT = 1
#: The TPR of the thresholds stored in detector.json.
DEFAULT_TPR = 0.95
THRESHOLD_RULE = ("threshold = the ceil(tpr * n)-th largest of the n ID scores; a sample is unknown when its "
                  "score is < threshold (every score: higher = more in-distribution)")
LOGIT_CONVENTION = ("logits are CLIP's logit scale times cosine similarities (already scaled), from the final "
                    "inference settings; confidence = max softmax(logits); energy = logsumexp(logits); the scores "
                    "are those of croft.ood.scores (docs/protocols.md §3), higher = more in-distribution; knn and mcm "
                    "use the run's score context (score_context.npz)")


def check_tpr(tpr):
    """``tpr`` as a float in (0, 1], or ValueError."""
    try:
        value = float(tpr)
    except (TypeError, ValueError):
        raise ValueError(f"invalid TPR {tpr!r}; expected a number in (0, 1]") from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"invalid TPR {tpr!r}; expected a number in (0, 1]")
    return value


def threshold_at(sorted_scores, tpr):
    """The threshold keeping a fraction ``tpr`` of ``sorted_scores`` (ascending): the ``ceil(tpr*n)``-th largest."""
    tpr = check_tpr(tpr)
    scores = np.asarray(sorted_scores, dtype=np.float64)
    n = len(scores)
    if n == 0:
        raise ValueError("no ID scores to threshold")
    keep = min(n, max(1, math.ceil(tpr * n - 1e-9)))  # 1e-9: 0.07 * 100 is 7.000000000000001 in floats
    return float(scores[n - keep])


def backbone_identity(trainer):
    """What identifies the frozen backbone: name, weights source and, when known, the weights' hash.

    A random initialisation (``PRETRAINED none``) is identified by its state-dict hash, which
    ``croft.predict`` checks after rebuilding the backbone from the seed.
    """
    cfg = trainer.cfg
    ident = {"name": cfg.MODEL.BACKBONE.NAME, "pretrained": cfg.MODEL.BACKBONE.PRETRAINED}
    cache = getattr(trainer, "feature_cache", None)
    if cache is not None and isinstance(getattr(cache, "identity", None), dict) and "weights" in cache.identity:
        ident["weights"] = cache.identity["weights"]
    elif str(cfg.MODEL.BACKBONE.PRETRAINED).strip().lower() in ("none", "") and hasattr(trainer, "clip_model"):
        from ..clip.weights import weights_identity

        ident["weights"] = weights_identity(cfg.MODEL.BACKBONE.PRETRAINED, trainer.clip_model)
    return ident


def detector_score_names(cfg):
    """The scores thresholded: ``energy`` first (always computable), then ``TEST.OOD_SCORES`` in order."""
    names = ["energy"] + [s for s in cfg.TEST.OOD_SCORES if s != "energy"]
    return list(dict.fromkeys(names))


def score_probe(names, mcm_temperature=1.0):
    """``{score: [4 floats]}``: each score on a fixed synthetic input (seeded, on the CPU).

    detector.json stores it; ``croft.predict`` recomputes it and refuses the thresholds of a score
    whose definition changed since the run (its stored thresholds would no longer apply).
    """
    import torch

    from .inference import Outputs
    from .scores import ScoreContext, compute_scores

    gen = torch.Generator().manual_seed(0)
    outputs = Outputs(logits=3.0 * torch.randn(4, 5, generator=gen), features=torch.randn(4, 8, generator=gen),
                      labels=torch.zeros(4, dtype=torch.long), text_features=torch.randn(5, 8, generator=gen))
    context = ScoreContext(knn_bank=torch.randn(6, 8, generator=gen), knn_k=2, mcm_temperature=mcm_temperature)
    return {name: [float(v) for v in values] for name, values in compute_scores(outputs, names, context).items()}


@dataclass
class DetectorData:
    """The detector of a run: ``detector`` (the content of detector.json), ``val_scores`` (per score,
    the sorted ID scores of detector_val_scores.npz) and ``score_context`` (the run's
    :class:`~croft.evaluation.scores.ScoreContext`, which predict scores new images with)."""
    detector: dict
    val_scores: Dict[str, np.ndarray]
    score_context: Optional[Any] = None


def compute_detector(trainer, tpr=DEFAULT_TPR, *, evaluation=None):
    """The :class:`DetectorData` of a built trainer with its models loaded, computed as the run's final
    evaluation does (ID val set, else the ID side of the test set); None without any ID sample.

    Reads the trainer's ``cfg``, ``dataset``, ``dm`` (data manager), ``classnames``, and its inference
    interface (``set_model_mode``, ``encode``, ``inference``) through the evaluator's runner. Writes
    nothing. ``evaluation``: the run's :class:`~croft.evaluation.evaluator.EvaluationResult`, whose
    val / test outputs and score context are reused (the same numbers, without inferring again).
    """
    from ..utils.logging import get_logger
    from .evaluator import Evaluator
    from .inference import FINAL
    from .scores import compute_scores

    tpr = check_tpr(tpr)
    cfg, dataset, dm = trainer.cfg, trainer.dataset, trainer.dm
    evaluator = Evaluator(cfg, dataset, dm, trainer, FINAL)
    protocol = evaluator.protocol
    if evaluation is not None:
        evaluator.context = evaluation.score_context
        val_out = evaluation.val_outputs
    else:
        val_out = evaluator.infer_loader(dm.val_loader, "val (detector)") if dm.val_loader is not None else None
    if val_out is not None and len(val_out.labels):
        source, id_out = "val", val_out
    else:
        val_out = None
        test_out = evaluation.test_outputs if evaluation is not None and evaluation.test_outputs is not None \
            else evaluator.infer_loader(dm.test_loader, "test (detector)")
        source, id_out = "test", protocol.id_side(dataset, test_out, None)
    n = len(id_out.labels)
    if n == 0:
        get_logger().warning("warning: no ID val or test sample; no detector thresholds")
        return None
    names = detector_score_names(cfg)
    context = evaluator.score_context(val_out)
    id_context = context
    knn = None
    if "knn" in names:
        bank, k = context.knn_bank, context.knn_k
        size = len(bank)
        # With the val features as the bank, each val sample is its own nearest neighbour: score it
        # leave-one-out (at most size - 1 others, plus itself), as a new image (not in the bank) is scored.
        leave_one_out = val_out is not None and bank is val_out.features and size >= 2
        val_k = min(k, size - 1) if leave_one_out else k
        if leave_one_out:
            id_context = dataclasses.replace(context, knn_k=val_k + 1)
        knn = {"k": k, "context": SCORE_CONTEXT_FILE, "bank_size": size,
               "bank_source": "val" if bank is getattr(val_out, "features", None) else
               ("train_full" if protocol.name == "reference" else "train_x"),
               "leave_one_out": leave_one_out, "val_k": val_k}
    scores = compute_scores(id_out, names, id_context)
    sorted_scores = {name: np.sort(values) for name, values in scores.items()}
    thresholds = {name: threshold_at(values, tpr) for name, values in sorted_scores.items()}
    detector = {
        "format": DETECTOR_FORMAT,
        "tpr": tpr,
        "rule": THRESHOLD_RULE,
        "thresholds": thresholds,
        "n_val": n,
        "source": source,
        "scores": names,
        "val_scores": VAL_SCORES_FILE,
        "trainer": cfg.TRAINER.NAME,
        "dataset": cfg.DATASET.NAME,
        "classnames": list(trainer.classnames),
        "num_classes": len(trainer.classnames),
        "n_train": len(dataset.train_x),
        "source_domains": list(getattr(dataset, "source_domains", [])),
        "target_domains": list(getattr(dataset, "target_domains", [])),
        "logits": {"convention": LOGIT_CONVENTION, "logit_scale": getattr(trainer, "logit_scale", None),
                   "mcm_temperature": cfg.TEST.MCM_TEMPERATURE, "inference": "final"},
        "backbone": backbone_identity(trainer),
        "score_probe": score_probe(names, cfg.TEST.MCM_TEMPERATURE),
    }
    if knn is not None:
        detector["knn"] = knn
    if source == "test":
        detector["note"] = ("the run has no val split: thresholds come from the ID side of the test evaluation "
                            f"(protocol {protocol.name})")
    return DetectorData(detector, sorted_scores, context)


def describe_thresholds(detector):
    """``"Detector thresholds at TPR t of n ID val images: energy 1.23, ..."`` (for logs)."""
    summary = ", ".join(f"{name} {value:.4g}" for name, value in detector["thresholds"].items())
    return f"Detector thresholds at TPR {detector['tpr']:g} of {detector['n_val']} ID {detector['source']} images: " \
           f"{summary}"


def write_detector(trainer, tpr=DEFAULT_TPR, *, evaluation=None):
    """Compute the detector thresholds of a built, evaluated trainer (:func:`compute_detector`, reusing
    ``evaluation``, the run's :class:`~croft.evaluation.evaluator.EvaluationResult`) and write its files
    and the run's score context; returns the path of detector.json, or None when the run has no ID sample
    to threshold on.

    Called by ``TrainerBase.evaluate_and_write_results`` after the evaluation, before results.json.
    """
    from ..utils.logging import get_logger
    from .score_context import save_score_context

    data = compute_detector(trainer, tpr, evaluation=evaluation)
    if data is None:
        return None
    save_score_context(data.score_context, trainer.output_dir)
    atomic_write(os.path.join(trainer.output_dir, VAL_SCORES_FILE),
                 lambda f: np.savez(f, **data.val_scores), binary=True)
    path = atomic_write_text(os.path.join(trainer.output_dir, DETECTOR_FILE),
                             json.dumps(data.detector, indent=2) + "\n")
    get_logger().info(f"{describe_thresholds(data.detector)} ({path})")
    return path
