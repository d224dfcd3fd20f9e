"""Closed-set and open-set evaluation of a trainer, and the run's results.json.

Open-set protocol (DESIGN §4, ``TEST.OOD_PROTOCOL``):
- ``standard``: every ID test sample is a positive; open-set images use the test transform.
- ``reference``: as the original code (spec §2.9, §8.11): only correctly classified ID test
  samples are positives, FPR95 uses the 5th percentile of their scores with a strict ``>``,
  and the open-set loader uses the training augmentation.
In Setup-II the ID side is the held-out (covariate-shifted) test domain (spec §2.9).
"""
import os
import random
import time
from typing import NamedTuple, Optional

import numpy as np
import torch
from tqdm import tqdm

from ..ood.metrics import hendrycks_fpr_at_recall, ood_metrics, reference_metrics
from ..ood.scores import energy_score, knn_score, max_logit_score, mcm_score
from ..results.io import save_scores, write_results_json
from .logger import get_logger


class Outputs(NamedTuple):
    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    text_features: Optional[torch.Tensor]

    @property
    def correct(self):
        return self.logits.argmax(dim=1) == self.labels

    @property
    def accuracy(self):
        return 100.0 * int(self.correct.sum()) / len(self.labels) if len(self.labels) else float("nan")

    def subset(self, indices):
        index = torch.as_tensor(indices, dtype=torch.long)
        return Outputs(self.logits[index], self.features[index], self.labels[index], self.text_features)


@torch.no_grad()
def run_inference(trainer, loader, desc):
    trainer.set_model_mode("eval")
    logits, features, labels = [], [], []
    text = None
    for batch in tqdm(loader, desc=f"eval {desc}", leave=False, dynamic_ncols=True):
        out, y = trainer.infer_batch(batch)
        logits.append(out.logits.float().cpu())
        features.append(out.image_features.float().cpu())
        labels.append(y.cpu())
        text = out.text_features.float().cpu()
    if not logits:
        return Outputs(torch.empty(0, trainer.num_classes), torch.empty(0, 0), torch.empty(0, dtype=torch.long), None)
    return Outputs(torch.cat(logits), torch.cat(features), torch.cat(labels), text)


def subset_accuracy(outputs, labels_subset):
    """Accuracy with the prediction restricted to ``labels_subset`` (other logits set to -inf)."""
    if not len(outputs.labels):
        return float("nan")
    keep = torch.zeros(outputs.logits.shape[1], dtype=torch.bool)
    keep[list(labels_subset)] = True
    pred = outputs.logits.masked_fill(~keep, float("-inf")).argmax(dim=1)
    return 100.0 * int((pred == outputs.labels).sum()) / len(outputs.labels)


def closed_set_accuracy(trainer, loader, desc):
    return run_inference(trainer, loader, desc).accuracy


def compute_scores(outputs, names, knn_bank=None, knn_k=50, mcm_temperature=1.0):
    scores = {}
    for name in names:
        if name == "energy":
            scores[name] = energy_score(outputs.logits)
        elif name == "max_logit":
            scores[name] = max_logit_score(outputs.logits)
        elif name == "mcm":
            scores[name] = mcm_score(outputs.features, outputs.text_features, temperature=mcm_temperature)
        elif name == "knn":
            scores[name] = knn_score(outputs.features, knn_bank, knn_k)
    return {k: v.double().numpy() for k, v in scores.items()}


# The reference's open-set evaluation caps ID sets at 500 images per class (spec §3.4 step 5).
REFERENCE_PER_CLASS = 500


def per_class_indices(labels, per_class, seed):
    """At most ``per_class`` indices per label, drawn with a private seeded RNG, in input order."""
    rng = random.Random(f"reference-cap/{seed}")
    by_label = {}
    for index, label in enumerate(int(v) for v in labels):
        by_label.setdefault(label, []).append(index)
    keep = []
    for label in sorted(by_label):
        group = by_label[label]
        keep.extend(group if len(group) <= per_class else rng.sample(group, per_class))
    return sorted(keep)


def _knn_bank(trainer, val_out, reference):
    cfg = trainer.cfg
    if reference:
        # Reference KNN bank: at most 500 per class of the whole source training split (spec §2.9).
        items = trainer.dataset.train_full
        items = [items[i] for i in per_class_indices([d.label for d in items], REFERENCE_PER_CLASS, cfg.SEED)]
        return run_inference(trainer, trainer.dm.eval_loader(items, name="KNN bank"), "KNN bank").features
    if cfg.TEST.KNN_BANK == "val" and val_out is not None and len(val_out.labels):
        return val_out.features
    loader = trainer.dm.eval_loader(trainer.dataset.train_x, name="train (KNN bank)")
    return run_inference(trainer, loader, "train (KNN bank)").features


def detection_metrics(score, id_scores, id_correct, ood_scores, reference):
    """Standard: all ID samples. Reference (spec §8.11): correctly classified ID samples and the
    p5 threshold, except KNN, whose script used every ID sample and the Hendrycks FPR (§2.10)."""
    if not reference:
        return ood_metrics(id_scores, ood_scores)
    if score == "knn":
        metrics = ood_metrics(id_scores, ood_scores)
        metrics["fpr95"] = hendrycks_fpr_at_recall(id_scores, ood_scores)
        return metrics
    return reference_metrics(id_scores, id_correct, ood_scores)


def open_set_evaluation(trainer, id_out, val_out):
    """Detection metrics for every open-set set and score; returns (open_set dict, score arrays)."""
    cfg = trainer.cfg
    logger = get_logger()
    ood_sets = trainer.dataset.ood
    if not ood_sets:
        return {}, {}
    reference = cfg.TEST.OOD_PROTOCOL == "reference"
    if reference:
        if trainer.dataset.reference_detection_split == "val" and val_out is not None:
            id_out = val_out  # Setup-I: the val images are the ID side (spec §2.7)
        else:
            id_out = id_out.subset(per_class_indices(id_out.labels.tolist(), REFERENCE_PER_CLASS, cfg.SEED))
    names = list(cfg.TEST.OOD_SCORES)
    bank, knn_k = None, cfg.TEST.KNN_K
    if "knn" in names:
        bank = _knn_bank(trainer, val_out, reference)
        if knn_k > len(bank):
            logger.info(f"KNN: TEST.KNN_K={knn_k} exceeds the bank size {len(bank)}; using k={len(bank)}")
            knn_k = len(bank)
    kwargs = dict(knn_bank=bank, knn_k=knn_k, mcm_temperature=cfg.TEST.MCM_TEMPERATURE)
    id_scores = compute_scores(id_out, names, **kwargs)
    id_correct = id_out.correct.numpy()
    arrays = {f"{s}/id": v for s, v in id_scores.items()}
    arrays["correct/id"] = id_correct
    results = {}
    for set_name, items in ood_sets.items():
        loader = trainer.dm.eval_loader(items, train_transform=reference, name=set_name)
        ood_scores = compute_scores(run_inference(trainer, loader, set_name), names, **kwargs)
        results[set_name] = {}
        for score in names:
            metrics = detection_metrics(score, id_scores[score], id_correct, ood_scores[score], reference)
            results[set_name][score] = {k: float(v) for k, v in metrics.items()}
            if score == "knn":
                results[set_name][score]["k"] = knn_k
            arrays[f"{score}/ood/{set_name}"] = ood_scores[score]
        summary = ", ".join(f"{s} AUROC {results[set_name][s]['auroc']:.2f} FPR95 {results[set_name][s]['fpr95']:.2f}"
                            for s in names)
        logger.info(f"open-set {set_name} ({cfg.TEST.OOD_PROTOCOL}): {summary}")
    return results, arrays


def run_metadata(trainer):
    cfg = trainer.cfg
    ds = trainer.dataset
    return {
        "trainer": cfg.TRAINER.NAME, "dataset": cfg.DATASET.NAME, "backbone": cfg.MODEL.BACKBONE.NAME,
        "pretrained": cfg.MODEL.BACKBONE.PRETRAINED, "seed": cfg.SEED, "shots": cfg.DATASET.NUM_SHOTS,
        "protocol": cfg.TEST.OOD_PROTOCOL, "test_env": cfg.TEST_ENV,
        "source_domains": list(ds.source_domains), "target_domains": list(ds.target_domains),
        "ood_sets": list(ds.ood), "hparams": trainer.hparams(),
    }


def evaluate_run(trainer, eval_started=None):
    """Evaluate the deployed model, write scores.npz, the plot and (last) results.json."""
    eval_started = eval_started or time.time()
    logger = get_logger()
    trainer.final_evaluation = True
    ds, dm = trainer.dataset, trainer.dm
    val_out = run_inference(trainer, dm.val_loader, "val") if dm.val_loader is not None else None
    logger.info("Do evaluation on test set")
    test_out = run_inference(trainer, dm.test_loader, "test")
    per_domain, shift_energy = {}, {}
    subsets = ds.class_subsets
    for name, items in ds.test_sets.items():
        out = test_out if items is ds.test else run_inference(trainer, dm.eval_loader(items, name=name), name)
        per_domain[name] = subset_accuracy(out, subsets[name]) if name in subsets else out.accuracy
        shift_energy[name] = energy_score(out.logits).double().numpy()
    closed = {"val_accuracy": val_out.accuracy if val_out is not None else None,
              "test_accuracy": test_out.accuracy, "per_domain": per_domain}
    if len(per_domain) > 1:
        closed["average_accuracy"] = float(np.mean(list(per_domain.values())))
    logger.info(f"=> result\n* total: {len(test_out.labels)}\n* correct: {int(test_out.correct.sum())}\n"
                f"* accuracy: {test_out.accuracy:.2f}%")
    open_set, arrays = open_set_evaluation(trainer, test_out, val_out)
    if val_out is not None:
        arrays["energy/val"] = energy_score(val_out.logits).double().numpy()
    for name, values in shift_energy.items():
        arrays[f"energy/shift/{name}"] = values
    output_dir = trainer.output_dir
    save_scores(output_dir, arrays)
    if trainer.cfg.TEST.PLOT:
        from ..results.plots import plot_run

        plot_run(arrays, os.path.join(output_dir, "energy.png"),
                 title=f"{trainer.cfg.TRAINER.NAME} {trainer.cfg.DATASET.NAME} {trainer.cfg.TEST_ENV}")
    trainer.timing["eval_s"] += time.time() - eval_started
    results = run_metadata(trainer)
    results.update({
        "best_epoch": trainer.best_epoch,
        "best_val_accuracy": trainer.best_val_accuracy,
        "closed_set": closed,
        "open_set": open_set,
        "timing": {k: round(v, 3) if isinstance(v, float) else v for k, v in trainer.timing.items()},
    })
    write_results_json(output_dir, results)
    logger.info(f"Results written to {os.path.join(output_dir, 'results.json')}")
    return results
