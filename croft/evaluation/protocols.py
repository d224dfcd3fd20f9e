"""Open-set protocols: who is "in-distribution", which transform the open-set images get, the KNN
bank, and the FPR95 rule. ``docs/protocols.md`` explains both and why they differ.

- ``standard`` (default): every ID test sample is a positive; open-set images use the test
  transform; metrics on all samples.
- ``reference``: as the original code: the ID side is capped at 500 images per class (Setup-II:
  the held-out test domain; Setup-I: the val split), only correctly classified ID samples are
  positives and FPR95 uses the 5th percentile of their scores with a strict ``>``; KNN uses every
  ID sample, the Hendrycks FPR and a bank of at most 500 per class of the whole source training
  split; open-set images get the training augmentation (view 0).
"""
import random

from ..ood.metrics import hendrycks_fpr_at_recall, ood_metrics, reference_metrics

# The reference's open-set evaluation caps ID sets at 500 images per class.
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


class OpenSetProtocol:
    """What differs between protocols. ``infer(items, name)`` runs the model on a list of items."""

    name = ""
    #: Whether open-set images go through the training transform (view 0) instead of the test one.
    ood_train_transform = False

    def __init__(self, cfg):
        self.cfg = cfg

    def id_side(self, dataset, test_out, val_out):
        """The ID (positive) samples of detection."""
        raise NotImplementedError

    def knn_bank(self, dataset, val_out, infer):
        """Features of the KNN bank."""
        raise NotImplementedError

    def metrics(self, score, id_scores, id_correct, ood_scores):
        """``{auroc, fpr95, aupr_in, aupr_out}`` (percentages) of one score on one open-set set."""
        raise NotImplementedError


class StandardProtocol(OpenSetProtocol):
    name = "standard"

    def id_side(self, dataset, test_out, val_out):
        return test_out

    def knn_bank(self, dataset, val_out, infer):
        if self.cfg.TEST.KNN_BANK == "val" and val_out is not None and len(val_out.labels):
            return val_out.features
        return infer(dataset.train_x, "train (KNN bank)").features

    def metrics(self, score, id_scores, id_correct, ood_scores):
        return ood_metrics(id_scores, ood_scores)


class ReferenceProtocol(OpenSetProtocol):
    name = "reference"
    ood_train_transform = True

    def id_side(self, dataset, test_out, val_out):
        if dataset.reference_detection_split == "val" and val_out is not None:
            return val_out  # Setup-I: the val images are the ID side
        return test_out.subset(per_class_indices(test_out.labels.tolist(), REFERENCE_PER_CLASS, self.cfg.SEED))

    def knn_bank(self, dataset, val_out, infer):
        items = dataset.train_full
        items = [items[i] for i in per_class_indices([d.label for d in items], REFERENCE_PER_CLASS, self.cfg.SEED)]
        return infer(items, "KNN bank").features

    def metrics(self, score, id_scores, id_correct, ood_scores):
        if score == "knn":  # the reference's KNN script: every ID sample, Hendrycks FPR
            metrics = ood_metrics(id_scores, ood_scores)
            metrics["fpr95"] = hendrycks_fpr_at_recall(id_scores, ood_scores)
            return metrics
        return reference_metrics(id_scores, id_correct, ood_scores)


PROTOCOLS = {"standard": StandardProtocol, "reference": ReferenceProtocol}


def build_protocol(cfg):
    return PROTOCOLS[cfg.TEST.OOD_PROTOCOL](cfg)
