"""VLAD's objective as pure functions (docs/method.md §6.9).

Forward: ``X' = r fc(X) + (1 - r) X`` on the raw image features, ``I^ = X' / ||X'||``,
``T^ = T / ||T||`` (with ``TEXT_ENHANCED``: ``T' = r_t fc_t(T) + (1 - r_t) T`` first), logits
``s I^ T^^T``. Loss ``CE + lambda2 L_d + lambda1 L_a`` with, at temperature 1 (raw cosines):

    S = I^ I^^T,  M_ij = 1[y_i = y_j]
    P+ / P-: the pairs (i, j) chosen in row i among the same-class / other-class samples
    pos  = sum_{P+} exp<I^_j, T^_{y_i}> / |P+|
    neg  = sum_{P-} exp<I^_j, T^_{y_i}> / |P+|          (the reference divides by |P+| here too)
    neg1 = sum_{P+} sum_c exp<I^_j, T^_c> / |P+|
    L_d = -ln(pos / neg),  L_a = -ln(pos / neg1)

Pair selection (``NEIGHBOURS``): ``"reference"`` is the reference's rule, which compares the
*sample index* found at each rank position of ``argsort(S (.) M)`` with k and keeps those
positions (so row i keeps exactly the positions where samples 0..k-1 sit); ``"knn"`` keeps the k
most similar same-class (other-class) samples of each row, self included. A term whose pair set
is empty is 0 (the reference's division by zero made such a batch's loss NaN).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import normalize

NEIGHBOUR_RULES = ("reference", "knn")


def adapter_layer(dim, non_linear=False):
    """``Linear(D, D)`` (no bias), or ``Linear(D, D/4) -> ReLU -> Linear(D/4, D) -> ReLU`` (no biases)."""
    if not non_linear:
        return nn.Linear(dim, dim, bias=False)
    hidden = max(1, dim // 4)
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(),
                         nn.Linear(hidden, dim, bias=False), nn.ReLU())


class VLADAdapter(nn.Module):
    """``fc`` on image features and, with ``text``, ``fc_t`` of the same form on text features.
    PyTorch's default ``nn.Linear`` initialisation, as the reference (not the identity)."""

    def __init__(self, dim, non_linear=False, text=False):
        super().__init__()
        self.fc = adapter_layer(dim, non_linear)
        self.fc_t = adapter_layer(dim, non_linear) if text else None


@dataclass(frozen=True)
class VLADHyper:
    ratio: float
    ratio_text: float
    lambda1: float
    lambda2: float
    knn: int
    neighbours: str = "reference"


@dataclass
class VLADOutput:
    logits: torch.Tensor
    img: torch.Tensor
    txt: torch.Tensor


def vlad_forward(x_raw, text_raw, adapter, scale, ratio, ratio_text):
    x_mix = ratio * adapter.fc(x_raw) + (1.0 - ratio) * x_raw
    text = text_raw
    if adapter.fc_t is not None:
        text = ratio_text * adapter.fc_t(text_raw) + (1.0 - ratio_text) * text_raw
    img, txt = normalize(x_mix), normalize(text)
    return VLADOutput(scale * img @ txt.t(), img, txt)


def neighbour_pairs(img, labels, k, rule="reference"):
    """Boolean B x B masks ``(P+, P-)``: entry (i, j) is a pair of anchor i and sample j."""
    if rule not in NEIGHBOUR_RULES:
        raise ValueError(f"unknown neighbour rule {rule!r}; expected one of {list(NEIGHBOUR_RULES)}")
    sim = (img @ img.t()).detach()
    same = labels[:, None] == labels[None, :]
    mask = same.to(sim.dtype)
    if rule == "reference":
        order_pos = torch.argsort(sim * mask, dim=1, descending=True)
        order_neg = torch.argsort(sim * (1 - mask), dim=1, descending=True)
        return (order_pos < k) & same, (order_neg < k) & ~same

    def nearest(keep):
        ranked = torch.argsort(sim.masked_fill(~keep, float("-inf")), dim=1, descending=True)
        rank = torch.argsort(ranked, dim=1)  # rank[i, j]: position of sample j in row i
        return (rank < k) & keep

    return nearest(same), nearest(~same)


@dataclass
class VLADTerms:
    ce: torch.Tensor
    l_d: torch.Tensor
    l_a: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    neg1: torch.Tensor
    loss: torch.Tensor

    def stats(self):
        return {"ce": self.ce.item(), "l_d": self.l_d.item(), "l_a": self.l_a.item()}


def vlad_regulariser(img, txt, labels, k, rule="reference"):
    """``(L_d, L_a, pos, neg, neg1)`` of normalised image features ``img`` and text features ``txt``."""
    pos_mask, neg_mask = neighbour_pairs(img, labels, k, rule)
    zero = img.new_zeros(())
    n_pos = int(pos_mask.sum())
    if n_pos == 0:
        return zero, zero, zero, zero, zero
    i, j = pos_mask.nonzero(as_tuple=True)
    own = torch.exp((img[j] * txt[labels[i]]).sum(dim=1))
    pos = own.sum() / n_pos
    neg1 = torch.exp(img[j] @ txt.t()).sum() / n_pos
    l_a = -torch.log(pos / neg1)
    if not bool(neg_mask.any()):
        return zero, l_a, pos, zero, neg1
    i, j = neg_mask.nonzero(as_tuple=True)
    neg = torch.exp((img[j] * txt[labels[i]]).sum(dim=1)).sum() / n_pos
    return -torch.log(pos / neg), l_a, pos, neg, neg1


def vlad_loss(out, labels, hyper):
    ce = F.cross_entropy(out.logits, labels)
    l_d, l_a, pos, neg, neg1 = vlad_regulariser(out.img, out.txt, labels, hyper.knn, hyper.neighbours)
    loss = ce + hyper.lambda2 * l_d + hyper.lambda1 * l_a
    return VLADTerms(ce, l_d, l_a, pos, neg, neg1, loss)
