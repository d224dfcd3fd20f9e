"""Open-set detection: scores (higher = more ID) and metrics (percent, ID = positive)."""
from .metrics import (
    fpr_at_tpr,
    hendrycks_fpr_at_recall,
    ood_metrics,
    reference_energy_fpr,
    reference_metrics,
)
from .scores import energy_score, knn_score, max_logit_score, mcm_score

__all__ = [
    "energy_score",
    "max_logit_score",
    "mcm_score",
    "knn_score",
    "fpr_at_tpr",
    "ood_metrics",
    "reference_energy_fpr",
    "hendrycks_fpr_at_recall",
    "reference_metrics",
]
