"""The CRoFT objective as pure tensor functions (docs/method.md §1.3–§4.2).

Notation follows docs/method.md §0: ``norm(v) = v / (1e-6 + ||v||)``, ``W_i``/``W_t`` the adapter
matrices (``fc_i``/``fc_t``), ``M`` the generator matrix (``img2img_cov``), ``s`` CLIP's
frozen logit scale. The transposes, the swapped ratio in ``C~``, the shared ``Delta`` and the
two reductions are reproduced on purpose (docs/method.md §3 and §5.1; the reductions: §3.2, §5.2).
"""
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..clip.feature_math import NORM_EPS, l2norm  # noqa: F401  (NORM_EPS: re-exported)
from ..utils.errors import NonFiniteLossError

EDR_DELTA = 1e-4
EDR_REDUCTIONS = ("mean_sumsq", "sum_meansq")




class Adapter(nn.Module):
    """``(x, t) -> (x W_i^T, t W_t^T)``, both D x D and identity-initialised (docs/method.md §1.3)."""

    def __init__(self, dim):
        super().__init__()
        self.fc_i = nn.Parameter(torch.eye(dim))
        self.fc_t = nn.Parameter(torch.eye(dim))


class OODImgGen(nn.Module):
    """The feature generator ``z -> z M`` (no transpose), identity-initialised (docs/method.md §1.3)."""

    def __init__(self, dim):
        super().__init__()
        self.img2img_cov = nn.Parameter(torch.eye(dim))


class CRoFTOutput(NamedTuple):
    logits: torch.Tensor      # s * I^ T^^T
    img: torch.Tensor         # I^: normalised adapted image features
    txt: torch.Tensor         # T^: normalised adapted text features
    img_zs: torch.Tensor      # X_zs: normalised zero-shot image features
    txt_zs: torch.Tensor      # T_zs: normalised zero-shot text features
    energy: torch.Tensor      # logsumexp(logits)


def croft_forward(x_raw, t_raw, adapter, logit_scale, ratio, ratio_text):
    """Forward pass of docs/method.md §1.4 on raw (unnormalised) image and text features."""
    img_zs = l2norm(x_raw)
    txt_zs = l2norm(t_raw)
    x_mix = ratio * (x_raw @ adapter.fc_i.t()) + (1 - ratio) * x_raw
    t_mix = ratio_text * (t_raw @ adapter.fc_t.t()) + (1 - ratio_text) * t_raw
    img = l2norm(x_mix)
    txt = l2norm(t_mix)
    logits = logit_scale * img @ txt.t()
    return CRoFTOutput(logits, img, txt, img_zs, txt_zs, torch.logsumexp(logits, dim=1))


def same_label_mask(labels):
    return (labels[:, None] == labels[None, :]).to(torch.float32)


def perturb_features(img, gen_matrix):
    """``C^ = norm(I^ M + I^)`` (docs/method.md §2)."""
    return l2norm(img @ gen_matrix + img)


def perturbation_loss(img, txt, labels, gen_matrix, logit_scale, lambda1):
    """Generator loss of docs/method.md §2: ``CE(s C^ T^^T, y) + lambda1 * mean(mask * C^ I^^T)``.

    Returns ``(loss, C^)``.
    """
    c_hat = perturb_features(img, gen_matrix)
    ce = F.cross_entropy(logit_scale * c_hat @ txt.t(), labels)
    same_class_similarity = (same_label_mask(labels) * (c_hat @ img.t())).mean()
    return ce + lambda1 * same_class_similarity, c_hat


def edr_gradient(z, txt_zs, fc_i, fc_t, ratio, ratio_text, reduction):
    """The energy gradient ``G`` of docs/method.md §3.2 (closed form: §3.3), with ``create_graph=True``.

    One shared ``Delta = 1e-4 * 1`` perturbs both adapters (no transposes here), and the
    "energy" is the per-entry ``exp(cos)`` at temperature 1.
    """
    if reduction not in EDR_REDUCTIONS:
        raise ValueError(f"EDR reduction must be one of {EDR_REDUCTIONS}, got {reduction!r}")
    dim = fc_i.shape[0]
    delta = torch.full((dim, dim), EDR_DELTA, device=fc_i.device, dtype=fc_i.dtype, requires_grad=True)
    a_hat = l2norm(ratio * z @ (fc_i + delta) + (1 - ratio) * z)
    t_tilde = l2norm(ratio_text * txt_zs @ (fc_t + delta) + (1 - ratio_text) * txt_zs)
    partition = torch.exp(a_hat @ t_tilde.t())
    total = partition.sum() if reduction == "sum_meansq" else partition.mean()
    (grad,) = torch.autograd.grad(total, delta, create_graph=True)
    return grad


@dataclass
class EDRTerms:
    edr: torch.Tensor
    l1: torch.Tensor
    l2: torch.Tensor
    wccf_branch: bool


def edr_loss(img, c_hat, txt, labels, fc_i, fc_t, img_zs, txt_zs, *, logit_scale, ratio, ratio_text,
             lambda1, lambda2, wccf, wccf_branch, reduction):
    """EDR of docs/method.md §3 (§3.1–§3.4). ``wccf_branch`` is the already-resolved branch condition
    (``WCCF and EDR_WCCF_BRANCH and gen_step > 0``)."""
    mask = same_label_mask(labels)
    align = (mask * (c_hat @ img_zs.t())).mean()
    # Ratio swapped and no transpose on W_i, C~ left unnormalised (docs/method.md §3.1, §5.1).
    c_tilde = ratio * c_hat + (1 - ratio) * (c_hat @ fc_i)
    if wccf_branch:
        l1 = F.cross_entropy(logit_scale * c_tilde @ txt.t(), labels) - lambda1 * align
        z = torch.cat([img_zs, c_hat], dim=0)
    else:
        l1 = F.cross_entropy(logit_scale * c_hat @ txt.t(), labels)
        z = img_zs
    grad = edr_gradient(z, txt_zs, fc_i, fc_t, ratio, ratio_text, reduction)
    l2 = (grad ** 2).mean() if reduction == "sum_meansq" else (grad ** 2).sum()
    edr = l1 + lambda2 * l2 if wccf else lambda2 * l2
    return EDRTerms(edr=edr, l1=l1, l2=l2, wccf_branch=wccf_branch)


@dataclass
class CRoFTHyper:
    ratio: float = 0.2
    ratio_text: float = 0.5
    lambda1: float = 1.0
    lambda2: float = 5.0
    wccf: bool = True
    gen_step: int = 1
    reduction: str = "mean_sumsq"
    edr_wccf_branch: bool = True

    @property
    def wccf_branch(self):
        return self.wccf and self.edr_wccf_branch and self.gen_step > 0


def _check_finite(name, value):
    if not torch.isfinite(value).all():
        raise NonFiniteLossError(f"loss term '{name}' is non-finite ({value.item()})")


def croft_batch_update(x_raw, t_raw, labels, adapter, generator, logit_scale, hp: CRoFTHyper,
                       backward_and_update: Callable[[torch.Tensor], None]):
    """One training batch, docs/method.md §4.2.

    ``backward_and_update(loss)`` must zero the gradients of *both* optimizers, back-propagate
    with ``retain_graph=True`` and step *both* optimizers (docs/method.md §4.1–§4.2). All gradients of the
    generator loop and of the final CE are taken from the single forward pass at the start of
    the batch (the stale graph, docs/method.md §4.2 and §5.1). Returns the logged values.
    """
    out = croft_forward(x_raw, t_raw, adapter, logit_scale, hp.ratio, hp.ratio_text)
    if hp.wccf:
        for _ in range(hp.gen_step):
            gen_loss, _ = perturbation_loss(out.img, out.txt, labels, generator.img2img_cov,
                                            logit_scale, hp.lambda1)
            _check_finite("generator (perturbation) loss", gen_loss)
            backward_and_update(gen_loss)
    c_hat = perturb_features(out.img, generator.img2img_cov)
    terms = edr_loss(out.img, c_hat, out.txt, labels, adapter.fc_i, adapter.fc_t, out.img_zs, out.txt_zs,
                     logit_scale=logit_scale, ratio=hp.ratio, ratio_text=hp.ratio_text, lambda1=hp.lambda1,
                     lambda2=hp.lambda2, wccf=hp.wccf, wccf_branch=hp.wccf_branch, reduction=hp.reduction)
    ce = F.cross_entropy(out.logits, labels)
    _check_finite("cross-entropy", ce)
    _check_finite("EDR L1", terms.l1)
    _check_finite("EDR L2 (energy-gradient regulariser)", terms.l2)
    loss = ce + terms.edr
    _check_finite("total loss", loss)
    backward_and_update(loss)
    accuracy = (out.logits.argmax(dim=1) == labels).float().mean().item() * 100.0
    return {"loss": loss.item(), "ce": ce.item(), "edr_l1": terms.l1.item(), "edr_l2": terms.l2.item(),
            "acc": accuracy}
