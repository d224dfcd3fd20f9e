"""Open-set detection metrics.

Conventions (docs/protocols.md, opening paragraph and §5): ID is the positive class, higher score =
more ID, and every value is a percentage in [0, 100]. Inputs are 1-D array-likes (lists, NumPy arrays,
CPU or CUDA torch tensors; an (N, 1) column is accepted as well).

Two protocols are provided:

* the **standard** one (:func:`ood_metrics`): all ID samples vs all OOD samples, FPR at 95% TPR with
  the exact empirical threshold of :func:`fpr_at_tpr`;
* the **reference** one of the CRoFT code (:func:`reference_metrics`, docs/protocols.md §4.3 and §5.4):
  ID = only the correctly classified ID samples, FPR95 = share of OOD scores strictly above the
  linearly interpolated 5th percentile of those ID scores (:func:`reference_energy_fpr`).

:func:`hendrycks_fpr_at_recall` re-implements the ``fpr_and_fdr_at_recall`` used by the reference KNN
script (docs/protocols.md §5.5).
"""
import math
from fractions import Fraction

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "fpr_at_tpr",
    "ood_metrics",
    "reference_energy_fpr",
    "hendrycks_fpr_at_recall",
    "reference_metrics",
]


def _as_scores(x, side):
    """1-D float64 array of finite scores; ``side`` ("ID"/"OOD") names the input in errors."""
    if hasattr(x, "detach"):  # torch tensor (any device)
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{side} scores must be 1-D (or an (N, 1) column), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{side} scores are empty")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{side} scores contain {bad} non-finite value(s) (NaN/inf) out of {arr.size}")
    return arr


def _check_rate(value, name):
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


def fpr_at_tpr(id_scores, ood_scores, tpr=0.95):
    """FPR (%) at the threshold that keeps at least ``tpr`` of the ID samples.

    Definition: the threshold ``t`` is the **largest** value such that at least ``tpr`` of the ID
    scores are ``>= t``; a sample is accepted as ID when its score is ``>= t``, and the FPR is the
    share of OOD scores ``>= t``. With ``n`` ID scores sorted in descending order and
    ``m = ceil(tpr * n)``, ``t`` is the ``m``-th of them. Ties are handled exactly: every OOD score
    equal to ``t`` counts as a false positive, and ID scores tied with ``t`` may push the actual TPR
    above ``tpr``. ``tpr`` is read as the decimal it prints as (0.95 means exactly 19/20), so
    ``ceil`` is not fooled by binary rounding.

    Example: ID = 1..20, ``tpr = 0.95`` gives ``m = 19`` and ``t = 2``; OOD = [0, 1.5, 2, 3] gives 50%.
    """
    id_s = _as_scores(id_scores, "ID")
    ood_s = _as_scores(ood_scores, "OOD")
    tpr = _check_rate(tpr, "tpr")
    n = id_s.size
    m = math.ceil(Fraction(repr(tpr)) * n)  # exact: Fraction("0.95") == 19/20
    m = min(max(m, 1), n)
    threshold = np.sort(id_s)[::-1][m - 1]
    return 100.0 * np.count_nonzero(ood_s >= threshold) / ood_s.size


def _labels_scores(id_s, ood_s):
    labels = np.concatenate([np.ones(id_s.size, dtype=np.int64), np.zeros(ood_s.size, dtype=np.int64)])
    scores = np.concatenate([id_s, ood_s])
    return labels, scores


def _ranking_metrics(id_s, ood_s):
    labels, scores = _labels_scores(id_s, ood_s)
    return {
        "auroc": 100.0 * float(roc_auc_score(labels, scores)),
        "aupr_in": 100.0 * float(average_precision_score(labels, scores)),
        "aupr_out": 100.0 * float(average_precision_score(1 - labels, -scores)),
    }


def ood_metrics(id_scores, ood_scores):
    """Standard protocol: ``{"auroc", "fpr95", "aupr_in", "aupr_out"}`` in percent.

    AUROC and AUPR-In use scikit-learn with ID = 1 and the score as is; AUPR-Out uses OOD = 1 and
    the negated score. ``fpr95`` is :func:`fpr_at_tpr` at 95% TPR. Empty inputs and NaN/inf scores
    raise ``ValueError`` naming the side (ID/OOD).
    """
    id_s = _as_scores(id_scores, "ID")
    ood_s = _as_scores(ood_scores, "OOD")
    out = _ranking_metrics(id_s, ood_s)
    out["fpr95"] = fpr_at_tpr(id_s, ood_s, 0.95)
    return {key: out[key] for key in ("auroc", "fpr95", "aupr_in", "aupr_out")}


def reference_energy_fpr(id_correct_scores, ood_scores):
    """The reference FPR95 (docs/protocols.md §5.4, §4.3): returns ``(fpr_percent, threshold)``.

    ``threshold = np.percentile(id_correct_scores, 5)`` (linear interpolation), computed on the scores
    of the *correctly classified* ID samples, and the FPR is the share of OOD scores **strictly
    greater** than it. This differs from :func:`fpr_at_tpr`: the threshold is interpolated between
    ID scores, and OOD scores equal to it are not counted.
    """
    id_s = _as_scores(id_correct_scores, "ID")
    ood_s = _as_scores(ood_scores, "OOD")
    threshold = float(np.percentile(id_s, 5))
    return 100.0 * np.count_nonzero(ood_s > threshold) / ood_s.size, threshold


def hendrycks_fpr_at_recall(id_scores, ood_scores, recall=0.95):
    """FPR (%) at ``recall`` as computed by the Hendrycks-style ``fpr_and_fdr_at_recall`` (docs/protocols.md §5.5).

    ID = positive. The scores are sorted in descending order (stable mergesort, reversed); at each
    distinct score the cumulative true/false positive counts are taken, ``recall = TP / P``; the
    operating points are kept from the first one that reaches recall 1 back to the highest
    threshold, a sentinel (recall 1, FP 0) is appended, and the point with the smallest
    ``|recall - target|`` (first one on ties, i.e. the lowest threshold) gives ``FP / #OOD``.
    Unlike :func:`fpr_at_tpr`, the chosen point may have a recall *below* the target.
    """
    id_s = _as_scores(id_scores, "ID")
    ood_s = _as_scores(ood_scores, "OOD")
    recall = _check_rate(recall, "recall")
    labels, scores = _labels_scores(id_s, ood_s)

    order = np.argsort(scores, kind="mergesort")[::-1]
    scores = scores[order]
    labels = labels[order]
    # last index of each run of equal scores (the cumulative counts there do not depend on tie order)
    ends = np.concatenate([np.flatnonzero(scores[1:] != scores[:-1]), [scores.size - 1]])
    tp = np.cumsum(labels, dtype=np.float64)[ends]
    fp = (ends + 1) - tp
    rec = tp / tp[-1]
    first_full = int(np.searchsorted(tp, tp[-1]))  # first operating point where recall reaches 1
    rec = np.concatenate([rec[first_full::-1], [1.0]])
    fp = np.concatenate([fp[first_full::-1], [0.0]])
    cutoff = int(np.argmin(np.abs(rec - recall)))
    return 100.0 * fp[cutoff] / ood_s.size


def reference_metrics(id_scores, id_correct_mask, ood_scores):
    """The whole reference protocol (docs/protocols.md §4.1–§4.4, §5.4).

    Only the ID samples with ``id_correct_mask`` true (correctly classified) form the ID side; all OOD
    samples are used. Returns the keys of :func:`ood_metrics`: ``fpr95`` from
    :func:`reference_energy_fpr`, and AUROC / AUPR-In / AUPR-Out on correct ID vs all OOD.
    """
    id_s = _as_scores(id_scores, "ID")
    if hasattr(id_correct_mask, "detach"):
        id_correct_mask = id_correct_mask.detach().cpu().numpy()
    mask = np.asarray(id_correct_mask)
    if mask.ndim == 2 and 1 in mask.shape:
        mask = mask.reshape(-1)
    if mask.shape != id_s.shape:
        raise ValueError(f"id_correct_mask has shape {mask.shape} but the ID scores have shape {id_s.shape}")
    if mask.dtype != np.bool_:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("id_correct_mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    if not mask.any():
        raise ValueError(f"no correctly classified ID samples (id_correct_mask is all false, {mask.size} samples)")
    id_correct = id_s[mask]
    ood_s = _as_scores(ood_scores, "OOD")
    out = _ranking_metrics(id_correct, ood_s)
    out["fpr95"] = reference_energy_fpr(id_correct, ood_s)[0]
    return {key: out[key] for key in ("auroc", "fpr95", "aupr_in", "aupr_out")}
