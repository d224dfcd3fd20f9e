"""The open-set score registry.

A score is a function ``(outputs, context) -> 1-D float64 numpy array`` with one value per
sample, higher = more in-distribution, registered under a name with :func:`register_score`.
``outputs`` is an :class:`~croft.evaluation.inference.Outputs` (``logits``, ``features``,
``text_features``, ``labels``); ``context`` a :class:`ScoreContext`. ``TEST.OOD_SCORES`` accepts
every registered name. The math lives in :mod:`croft.ood.scores` (pure tensor functions);
``docs/protocols.md`` describes each score and how to add one.
"""
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..utils.registry import Registry

SCORE_REGISTRY = Registry("score")


def register_score(name):
    return SCORE_REGISTRY.register(name)


@dataclass
class ScoreContext:
    knn_bank: Optional[Any] = None     # N x D features of the KNN bank (KNN only)
    knn_k: int = 50
    mcm_temperature: float = 1.0


@register_score("energy")
def energy(outputs, context):
    from ..ood.scores import energy_score
    return energy_score(outputs.logits)


@register_score("mcm")
def mcm(outputs, context):
    from ..ood.scores import mcm_score
    text = outputs.text_features
    if outputs.text_index is None and (text is None or text.dim() == 2):
        return mcm_score(outputs.features, outputs.text_features, temperature=context.mcm_temperature)
    import torch

    # text features that vary by batch (DPLCLIP): each sample against its own batch's
    scores = torch.empty(len(outputs.features), dtype=torch.float64)
    for index, group_text in outputs.text_groups():
        scores[index] = mcm_score(outputs.features[index], group_text, temperature=context.mcm_temperature)
    return scores


@register_score("max_logit")
def max_logit(outputs, context):
    from ..ood.scores import max_logit_score
    return max_logit_score(outputs.logits)


@register_score("knn")
def knn(outputs, context):
    from ..ood.scores import knn_score
    return knn_score(outputs.features, context.knn_bank, context.knn_k)


def score_names():
    """Registered names, in registration order (energy, mcm, max_logit, knn, then added ones)."""
    return SCORE_REGISTRY.keys()


def compute_scores(outputs, names, context):
    """``{name: float64 numpy array}`` of each score in ``names``."""
    out = {}
    for name in names:
        value = SCORE_REGISTRY.get(name)(outputs, context)
        out[name] = value.double().numpy() if hasattr(value, "double") else np.asarray(value, dtype=np.float64)
    return out
