"""Closed-set and open-set evaluation of a model on a dataset, returned as data.

:class:`Evaluator` gets everything it uses explicitly: the config, the dataset, the data manager
(which builds loaders of any item list) and the model (``set_model_mode``, ``encode``, ``inference``,
see :mod:`.inference`). It reads nothing else of a trainer and writes no file:
:mod:`croft.results.writer` turns an :class:`EvaluationResult` into the run folder's files.
"""
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from ..utils.logging import get_logger
from ..results.io import correct_key, id_key, ood_key, shift_key, VAL_ENERGY_KEY
from .inference import FINAL, InferenceSettings, Outputs, run_inference
from .protocols import build_protocol
from .score_context import setup_score_context
from .scores import ScoreContext, compute_scores


@dataclass
class EvaluationResult:
    closed_set: dict
    open_set: dict
    #: ``scores.npz`` arrays, keyed by :mod:`croft.results.io`'s key scheme.
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)
    #: The run's score context (:mod:`.score_context`), when the evaluation set it up; the ID val and
    #: test outputs. The detector thresholds reuse them instead of inferring again.
    score_context: Optional[ScoreContext] = None
    val_outputs: Optional[Outputs] = None
    test_outputs: Optional[Outputs] = None


class Evaluator:
    def __init__(self, cfg, dataset, data, model, settings: InferenceSettings = FINAL):
        self.cfg = cfg
        self.dataset = dataset
        self.data = data
        self.model = model
        self.settings = settings
        self.protocol = build_protocol(cfg)
        self.logger = get_logger()
        self.context = None

    # ---------------------------------------------------------------- inference
    def infer_loader(self, loader, desc) -> Outputs:
        return run_inference(self.model, loader, self.settings, desc, num_classes=self.dataset.num_classes)

    def infer(self, items, name, train_transform=False) -> Outputs:
        return self.infer_loader(self.data.eval_loader(items, train_transform=train_transform, name=name), name)

    # ---------------------------------------------------------------- closed set
    def closed_set(self):
        """``(closed_set dict, test Outputs, val Outputs or None, {set: energies})``.

        ``TEST.SPLIT val`` evaluates the val split in place of the test split (and its test sets).
        """
        ds, dm = self.dataset, self.data
        val_out = self.infer_loader(dm.val_loader, "val") if dm.val_loader is not None else None
        if self.cfg.TEST.SPLIT == "val":
            if val_out is None:
                raise ValueError(f"TEST.SPLIT val: dataset {self.cfg.DATASET.NAME} has no val split")
            self.logger.info("Do evaluation on val set (TEST.SPLIT val)")
            test_out, test_sets = val_out, {"val": ds.val}
        else:
            self.logger.info("Do evaluation on test set")
            test_out, test_sets = self.infer_loader(dm.test_loader, "test"), ds.test_sets
        per_domain, shift_energy = {}, {}
        subsets = ds.class_subsets if test_sets is ds.test_sets else {}
        for name, items in test_sets.items():
            out = test_out if items is ds.test or items is ds.val else self.infer(items, name)
            per_domain[name] = out.subset_accuracy(subsets[name]) if name in subsets else out.accuracy
            shift_energy[name] = compute_scores(out, ["energy"], ScoreContext())["energy"]
        closed = {"val_accuracy": val_out.accuracy if val_out is not None else None,
                  "test_accuracy": test_out.accuracy, "per_domain": per_domain}
        if len(per_domain) > 1:
            closed["average_accuracy"] = float(np.mean(list(per_domain.values())))
        self.logger.info(f"=> result\n* total: {len(test_out.labels)}\n* correct: {int(test_out.correct.sum())}\n"
                         f"* accuracy: {test_out.accuracy:.2f}%")
        return closed, test_out, val_out, shift_energy

    def score_context(self, val_out):
        """The run's score context, set up on first use from the ID features (:func:`setup_score_context`)."""
        if self.context is None:
            self.context = setup_score_context(self.cfg, self.protocol, self.dataset, val_out, self.infer, self.logger)
        return self.context

    # ---------------------------------------------------------------- open set
    def open_set(self, test_out, val_out):
        """Detection metrics for every open-set set and score; returns ``(open_set dict, arrays)``."""
        cfg, ds, protocol = self.cfg, self.dataset, self.protocol
        if not ds.ood:
            return {}, {}
        id_out = protocol.id_side(ds, test_out, val_out)
        names = list(cfg.TEST.OOD_SCORES)
        context = self.score_context(val_out)
        id_scores = compute_scores(id_out, names, context)
        id_correct = id_out.correct.numpy()
        arrays = {id_key(s): v for s, v in id_scores.items()}
        arrays[correct_key()] = id_correct
        results = {}
        for set_name, items in ds.ood.items():
            ood_scores = compute_scores(self.infer(items, set_name, train_transform=protocol.ood_train_transform),
                                        names, context)
            results[set_name] = {}
            for score in names:
                metrics = protocol.metrics(score, id_scores[score], id_correct, ood_scores[score])
                results[set_name][score] = {k: float(v) for k, v in metrics.items()}
                if score == "knn":
                    results[set_name][score]["k"] = context.knn_k
                arrays[ood_key(set_name, score)] = ood_scores[score]
            summary = ", ".join(f"{s} AUROC {results[set_name][s]['auroc']:.2f} FPR95 {results[set_name][s]['fpr95']:.2f}"
                                for s in names)
            self.logger.info(f"open-set {set_name} ({protocol.name}): {summary}")
        return results, arrays

    # ---------------------------------------------------------------- everything
    def evaluate(self) -> EvaluationResult:
        closed, test_out, val_out, shift_energy = self.closed_set()
        open_set, arrays = self.open_set(test_out, val_out)
        if val_out is not None:
            arrays[VAL_ENERGY_KEY] = compute_scores(val_out, ["energy"], ScoreContext())["energy"]
        for name, values in shift_energy.items():
            arrays[shift_key(name)] = values
        return EvaluationResult(closed_set=closed, open_set=open_set, arrays=arrays, score_context=self.context,
                                val_outputs=val_out, test_outputs=test_out)
