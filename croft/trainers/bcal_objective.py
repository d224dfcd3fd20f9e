"""Bayes-CAL's objective as pure functions (docs/method.md §6.8).

Two variational prompt contexts (class names and domain names), each a mean ``mu`` and a scale
``sigma`` with the sample ``ctx = mu + sigma**2 * eps``. For a batch of raw frozen image features
``X`` with class labels ``y`` and domain labels ``d``::

    X^ = norm(X)                          norm(v) = v / (1e-6 + ||v||), row-wise
    Z_cls = s X^ norm(T_cls)^T            Z_dom = s X^ norm(T_dom)^T
    l1 = CE(Z_cls, y)                     l2 = CE(Z_dom, d)
    l_orth = sum_b <norm(dl1/dX)_b, norm(dl2/dX)_b>^2     (gradients taken without a graph)
    l_IRM = sum over the domains present of (d/dw CE(w Z_cls[domain], y[domain]) at w = 1)^2
    KL = max(0, 1e-8 sum(ln(s1/s2 + 1e-3) + (s2^2 + (mu0 - mu)^2) / (2 s1^2 + 1e-3))),
         s1 = sigma0^2, s2 = sigma^2 (per learner, each clamped on its own)
    loss = l1 + alpha1 l2 + alpha2 l_IRM + alpha3 l_orth + KL_cls + KL_dom

``l_orth`` is built from gradients that carry no graph, so it changes the reported loss but no
parameter, as in the reference. Every function works in the dtype of its inputs (the exactness
tests run in float64).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import l2norm

#: The reference's KL: epsilons inside the log and the denominator, and an overall scale.
KL_LOG_EPS = 1e-3
KL_DENOM_EPS = 1e-3
KL_SCALE = 1e-8


@dataclass(frozen=True)
class BCALHyper:
    """Weights of the domain CE (alpha1), the IRM penalty (alpha2) and the orthogonality term (alpha3)."""

    alpha1: float
    alpha2: float
    alpha3: float


class VariationalContext(nn.Module):
    """One learner's context: ``ctx`` (mu) and ``ctx_sigma`` (sigma), both learnt, and the frozen
    initial values ``ctx_init`` (mu0) and ``ctx_sigma_init`` (sigma0) that the KL pulls toward.

    mu0 and sigma0 are saved with the checkpoint so that a resumed run keeps the same KL anchor
    (the reference kept them as plain attributes, rebuilt at start-up).
    """

    def __init__(self, init_ctx, sigma_init):
        super().__init__()
        init_ctx = init_ctx.detach().clone()
        sigma = torch.full_like(init_ctx, float(sigma_init))
        self.ctx = nn.Parameter(init_ctx.clone())
        self.ctx_sigma = nn.Parameter(sigma.clone())
        self.register_buffer("ctx_init", init_ctx)
        self.register_buffer("ctx_sigma_init", sigma)

    def sample(self, noise=None):
        """``mu + sigma**2 * noise`` (the reference's noise scale is sigma squared); ``mu`` without noise."""
        if noise is None:
            return self.ctx
        return self.ctx + self.ctx_sigma ** 2 * noise.to(self.ctx)

    def kl(self):
        return variational_kl(self.ctx, self.ctx_sigma, self.ctx_init, self.ctx_sigma_init)


def variational_kl(mu, sigma, mu0, sigma0):
    s1, s2 = sigma0 ** 2, sigma ** 2
    k = torch.log(s1 / s2 + KL_LOG_EPS) + (s2 ** 2 + (mu0 - mu) ** 2) / (2 * s1 ** 2 + KL_DENOM_EPS)
    return torch.clamp(KL_SCALE * k.sum(), min=0)


def irm_penalty(logits, labels, domains):
    """Sum over the domains present (sorted) of the squared derivative of the domain's mean CE with
    respect to a scalar multiplier of the logits, at 1: ``mean_b(sum_c p_bc z_bc - z_{b,y_b})``."""
    total = logits.new_zeros(())
    for domain in torch.unique(domains):
        rows = domains == domain
        z, y = logits[rows], labels[rows]
        slope = ((F.softmax(z, dim=1) * z).sum(dim=1) - z.gather(1, y[:, None]).squeeze(1)).mean()
        total = total + slope ** 2
    return total


def gradient_orthogonality(loss_cls, loss_dom, features):
    """``sum_b <g1_b, g2_b>^2`` of the row-normalised gradients of both losses w.r.t. ``features``.

    The gradients are taken without ``create_graph``: the value is a constant of the step.
    """
    g_cls, = torch.autograd.grad(loss_cls, features, retain_graph=True)
    g_dom, = torch.autograd.grad(loss_dom, features, retain_graph=True)
    return ((l2norm(g_cls) * l2norm(g_dom)).sum(dim=1) ** 2).sum()


@dataclass
class BCALTerms:
    logits: torch.Tensor
    domain_logits: torch.Tensor
    ce: torch.Tensor
    domain_ce: torch.Tensor
    irm: torch.Tensor
    orth: torch.Tensor
    kl: torch.Tensor
    loss: torch.Tensor

    def stats(self):
        return {"ce": self.ce.item(), "domain_ce": self.domain_ce.item(), "irm": self.irm.item(),
                "orth": self.orth.item(), "kl": self.kl.item()}


def bcal_terms(x_raw, text_cls, text_dom, labels, domains, scale, hyper, kl):
    """Every term of the loss for raw image features ``x_raw`` (B x D) and raw text features of the
    sampled contexts, ``text_cls`` (C x D) and ``text_dom`` (Nd x D); ``kl`` = KL_cls + KL_dom."""
    # The raw features become a leaf that requires grad: the orthogonality term differentiates w.r.t. them.
    x = x_raw.detach().clone().requires_grad_(True)
    img = l2norm(x)
    logits = scale * img @ l2norm(text_cls).t()
    domain_logits = scale * img @ l2norm(text_dom).t()
    ce = F.cross_entropy(logits, labels)
    domain_ce = F.cross_entropy(domain_logits, domains)
    orth = gradient_orthogonality(ce, domain_ce, x)
    irm = irm_penalty(logits, labels, domains)
    loss = ce + hyper.alpha1 * domain_ce + hyper.alpha2 * irm + hyper.alpha3 * orth + kl
    return BCALTerms(logits, domain_logits, ce, domain_ce, irm, orth, kl, loss)


def bcal_batch_update(x_raw, labels, domains, class_ctx, domain_ctx, text_of, scale, hyper, noise,
                      backward_and_update):
    """One training step: sample both contexts with ``noise = (eps_cls, eps_dom)``, encode them with
    ``text_of(learner, ctx) -> raw text features``, build the loss and hand it to
    ``backward_and_update`` (which steps both learners' optimizers). Returns the :class:`BCALTerms`."""
    text_cls = text_of(class_ctx, class_ctx.sample(noise[0]))
    text_dom = text_of(domain_ctx, domain_ctx.sample(noise[1]))
    terms = bcal_terms(x_raw, text_cls, text_dom, labels, domains, scale, hyper, class_ctx.kl() + domain_ctx.kl())
    backward_and_update(terms.loss)
    return terms
