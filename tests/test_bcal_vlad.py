"""Bayes-CAL (BCAL) and VLAD: their objectives against independent formulas (float64, CPU), their
runs on synthetic PACS, VLCS and ImageNet46 with the tiny backbone, configs, grids and config errors.

Every expected value of the objective tests is re-derived here from docs/method.md §6.8–§6.9:
row normalisation, cross-entropy, the IRM slope through a scalar multiplier (autograd, as the
reference computes it), the CE gradients w.r.t. the raw image features in closed form, the KL
formula, VLAD's pair selection by loops over rank positions, and SGD with momentum and weight
decay by hand. The implementation is only called as the system under test.
"""
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from croft import trainers  # noqa: F401  (registers the trainers)
from croft.config import setup_cfg
from croft.sweep.grid import load_grid
from croft.sweep.identity import plan
from croft.train import build_parser, main
from croft.trainers.bcal import BCALMethod, domain_names
from croft.trainers.bcal_objective import BCALHyper, VariationalContext, bcal_batch_update, bcal_terms, variational_kl
from croft.trainers.vlad_objective import VLADAdapter, VLADHyper, neighbour_pairs, vlad_forward, vlad_loss

REPO = Path(__file__).resolve().parents[1]
F64 = torch.float64
EPS = 1e-6
WD, MOM = 0.1, 0.9
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


# --------------------------------------------------------------------------- shared reference math
def ref_norm(x):
    return x / (EPS + torch.sqrt((x * x).sum(dim=-1, keepdim=True)))


def ref_unit(x):
    return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True))


def ref_ce(logits, y):
    m = logits.max(dim=1, keepdim=True).values
    lse = (m + torch.log(torch.exp(logits - m).sum(dim=1, keepdim=True))).squeeze(1)
    return (lse - logits[torch.arange(len(y)), y]).mean()


def ref_softmax(z):
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


class HandSGD:
    """d = g + wd*theta; buf = d at the first step, else 0.9*buf + d; theta -= lr*buf."""

    def __init__(self, lr):
        self.lr, self.buf = lr, {}

    def step(self, params, grads):
        for name, g in grads.items():
            d = g + WD * params[name]
            self.buf[name] = d.clone() if name not in self.buf else MOM * self.buf[name] + d
            params[name] = params[name] - self.lr * self.buf[name]


# --------------------------------------------------------------------------- BCAL reference
B, C, ND, D, NCTX, W = 10, 4, 3, 6, 3, 5
SCALE = 7.0


def bcal_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.randn(B, D, generator=g, dtype=F64)
    y = torch.tensor([0, 1, 2, 3, 1, 0, 2, 3, 1, 0])
    d = torch.tensor([0, 2, 0, 1, 2, 2, 0, 1, 0, 2])  # domain 1 appears twice, every domain present
    return x, y, d


class StandInText:
    """A smooth stand-in for the frozen text tower: name-specific embeddings, the context spliced in
    front, then ``tanh(flat @ A) + b``. Float64, so the whole objective runs in float64."""

    def __init__(self, n_names, seed):
        g = torch.Generator().manual_seed(seed)
        self.names = torch.randn(n_names, 2, W, generator=g, dtype=F64)
        self.a = 0.3 * torch.randn((NCTX + 2) * W, D, generator=g, dtype=F64)
        self.b = torch.randn(n_names, D, generator=g, dtype=F64)

    def __call__(self, ctx):
        ctx = ctx if ctx.dim() == 3 else ctx.unsqueeze(0).expand(len(self.names), -1, -1)
        return torch.tanh(torch.cat([ctx, self.names], dim=1).flatten(1) @ self.a) + self.b


def bcal_params(seed, sigma_scale=0.2):
    """mu, sigma, mu0, sigma0 for both learners: sigma large enough for the noise path to matter."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for who in ("cls", "dom"):
        out[f"mu0_{who}"] = 0.5 * torch.randn(NCTX, W, generator=g, dtype=F64)
        out[f"mu_{who}"] = out[f"mu0_{who}"] + 0.3 * torch.randn(NCTX, W, generator=g, dtype=F64)
        out[f"sigma0_{who}"] = sigma_scale * (1 + torch.rand(NCTX, W, generator=g, dtype=F64))
        out[f"sigma_{who}"] = out[f"sigma0_{who}"] * (0.8 + 0.4 * torch.rand(NCTX, W, generator=g, dtype=F64))
        out[f"eps_{who}"] = torch.randn(NCTX, W, generator=g, dtype=F64)
    return out


def ref_kl(mu, sigma, mu0, sigma0):
    s1, s2 = sigma0 ** 2, sigma ** 2
    k = torch.log(s1 / s2 + 1e-3) + (s2 ** 2 + (mu0 - mu) ** 2) / (2 * s1 ** 2 + 1e-3)
    total = 1e-8 * k.sum()
    return total if total > 0 else total * 0


def ref_irm(logits, y, d):
    """The reference's IRM: per domain present, the derivative of the mean CE w.r.t. a scalar
    multiplier of the logits (autograd with create_graph), squared; summed over domains."""
    total = logits.new_zeros(())
    for dom in sorted(set(d.tolist())):
        rows = d == dom
        w = torch.tensor(1.0, dtype=logits.dtype, requires_grad=True)
        grad, = torch.autograd.grad(ref_ce(w * logits[rows], y[rows]), w, create_graph=True)
        total = total + grad ** 2
    return total


def ref_jacobian_apply(u, g):
    """Rows of J(u) g for norm(u) = u / (eps + |u|)."""
    n = torch.sqrt((u * u).sum(dim=1, keepdim=True))
    return g / (EPS + n) - u * (u * g).sum(dim=1, keepdim=True) / (n * (EPS + n) ** 2)


def ref_ce_grad_wrt_raw(x, t_hat, y, scale):
    """d CE(scale norm(x) t_hat^T, y) / dx in closed form."""
    p = ref_softmax(scale * ref_norm(x) @ t_hat.t())
    onehot = torch.nn.functional.one_hot(y, t_hat.shape[0]).to(x.dtype)
    return ref_jacobian_apply(x, scale * (p - onehot) @ t_hat / x.shape[0])


def ref_orth(x, t_cls_hat, t_dom_hat, y, d, scale):
    g1 = ref_norm(ref_ce_grad_wrt_raw(x, t_cls_hat, y, scale))
    g2 = ref_norm(ref_ce_grad_wrt_raw(x, t_dom_hat, d, scale))
    return ((g1 * g2).sum(dim=1) ** 2).sum()


def ref_bcal_loss(x, y, d, p, enc_cls, enc_dom, hyper, noise=True):
    """(loss, terms); l_orth enters as a constant (its gradients carry no graph in the reference)."""
    ctx_c = p["mu_cls"] + p["sigma_cls"] ** 2 * p["eps_cls"] if noise else p["mu_cls"]
    ctx_d = p["mu_dom"] + p["sigma_dom"] ** 2 * p["eps_dom"] if noise else p["mu_dom"]
    t_cls, t_dom = ref_norm(enc_cls(ctx_c)), ref_norm(enc_dom(ctx_d))
    img = ref_norm(x)
    z_cls, z_dom = SCALE * img @ t_cls.t(), SCALE * img @ t_dom.t()
    l1, l2 = ref_ce(z_cls, y), ref_ce(z_dom, d)
    irm = ref_irm(z_cls, y, d)
    orth = ref_orth(x, t_cls.detach(), t_dom.detach(), y, d, SCALE)
    kl = ref_kl(p["mu_cls"], p["sigma_cls"], p["mu0_cls"], p["sigma0_cls"]) + \
        ref_kl(p["mu_dom"], p["sigma_dom"], p["mu0_dom"], p["sigma0_dom"])
    loss = l1 + hyper.alpha1 * l2 + hyper.alpha2 * irm + hyper.alpha3 * orth + kl
    return loss, dict(logits=z_cls, ce=l1, domain_ce=l2, irm=irm, orth=orth, kl=kl)


def impl_contexts(p):
    ctx = {}
    for who in ("cls", "dom"):
        v = VariationalContext(p[f"mu0_{who}"], 1.0).double()
        with torch.no_grad():
            v.ctx.copy_(p[f"mu_{who}"])
            v.ctx_sigma.copy_(p[f"sigma_{who}"])
            v.ctx_sigma_init.copy_(p[f"sigma0_{who}"])
        ctx[who] = v
    return ctx


def impl_step(x, y, d, ctx, encoders, hyper, noise, optimizers):
    def text_of(learner, c):
        return encoders["cls" if learner is ctx["cls"] else "dom"](c)

    def backward_and_update(loss):
        if optimizers is None:  # the caller inspects the loss and its gradients itself
            return
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()

    return bcal_batch_update(x, y, d, ctx["cls"], ctx["dom"], text_of, SCALE, hyper, noise, backward_and_update)


HYPER = BCALHyper(alpha1=0.7, alpha2=0.5, alpha3=0.3)


def test_bcal_terms_match_the_formulas():
    x, y, d = bcal_inputs(0)
    p = bcal_params(1)
    enc = {"cls": StandInText(C, 2), "dom": StandInText(ND, 3)}
    ctx = impl_contexts(p)
    terms = impl_step(x, y, d, ctx, enc, HYPER, (p["eps_cls"], p["eps_dom"]), None)
    loss, ref = ref_bcal_loss(x, y, d, p, enc["cls"], enc["dom"], HYPER)
    for name in ("ce", "domain_ce", "irm", "orth", "kl"):
        assert torch.allclose(getattr(terms, name), ref[name], rtol=1e-12, atol=1e-15), name
    assert torch.allclose(terms.logits, ref["logits"], rtol=1e-12, atol=1e-12)
    assert torch.allclose(terms.loss, loss, rtol=1e-12, atol=1e-15)
    assert ref["irm"] > 1e-4 and ref["orth"] > 1e-3 and ref["kl"] > 0  # every term is live in this case
    # the IRM closed form is the derivative at w = 1: a central difference agrees
    z = ref["logits"].detach()
    h = 1e-6
    slope = sum(((ref_ce((1 + h) * z[d == k], y[d == k]) - ref_ce((1 - h) * z[d == k], y[d == k])) / (2 * h)) ** 2
                for k in range(ND))
    assert torch.allclose(terms.irm, slope, rtol=1e-7)


def test_bcal_gradients_are_those_of_the_loss_without_the_orthogonality_term():
    """Every learnt tensor's gradient equals central differences of the loss minus alpha3*l_orth
    (l_orth depends on the contexts but carries no gradient); alpha3 changes the loss, not the grads."""
    x, y, d = bcal_inputs(4)
    p = bcal_params(5)
    enc = {"cls": StandInText(C, 6), "dom": StandInText(ND, 7)}

    def grads(hyper):
        ctx = impl_contexts(p)
        terms = impl_step(x, y, d, ctx, enc, hyper, (p["eps_cls"], p["eps_dom"]), None)
        terms.loss.backward()
        return terms, {f"{k}_{who}": getattr(ctx[who], attr).grad.clone()
                       for who in ("cls", "dom") for k, attr in (("mu", "ctx"), ("sigma", "ctx_sigma"))}

    terms, g = grads(HYPER)
    terms0, g0 = grads(BCALHyper(HYPER.alpha1, HYPER.alpha2, 0.0))
    for key in g:
        assert torch.equal(g[key], g0[key]), key
    assert torch.allclose(terms.loss - terms0.loss, HYPER.alpha3 * terms.orth, rtol=1e-12)

    def smooth_loss(q):
        loss, ref = ref_bcal_loss(x, y, d, q, enc["cls"], enc["dom"], HYPER)
        return loss - HYPER.alpha3 * ref["orth"]

    h = 1e-6
    gen = torch.Generator().manual_seed(8)
    for key in g:
        flat = g[key].flatten()
        for idx in torch.randint(0, flat.numel(), (4,), generator=gen).tolist():
            plus, minus = dict(p), dict(p)
            plus[key] = p[key].flatten().clone()
            minus[key] = p[key].flatten().clone()
            plus[key][idx] += h
            minus[key][idx] -= h
            plus[key], minus[key] = plus[key].view_as(p[key]), minus[key].view_as(p[key])
            numeric = (smooth_loss(plus) - smooth_loss(minus)) / (2 * h)
            assert abs(flat[idx].item() - numeric.item()) <= 1e-6 * max(1.0, abs(numeric.item())), (key, idx)


def test_bcal_kl_formula_clamp_and_init_value():
    p = bcal_params(9)
    kl = variational_kl(p["mu_cls"], p["sigma_cls"], p["mu0_cls"], p["sigma0_cls"])
    assert kl > 0 and torch.allclose(kl, ref_kl(p["mu_cls"], p["sigma_cls"], p["mu0_cls"], p["sigma0_cls"]),
                                     rtol=1e-12)
    # at initialisation (mu = mu0, sigma = sigma0 = 1e-5): 1e-8 * n * ln(1.001), as in the reference's log
    ctx = VariationalContext(torch.zeros(16, 512, dtype=F64), 1e-5)
    assert torch.allclose(ctx.kl(), torch.tensor(1e-8 * 16 * 512 * np.log(1.001), dtype=F64), rtol=1e-9)
    # a sigma above sigma0 with mu = mu0 makes the sum negative: clamped to 0, and no gradient
    with torch.no_grad():
        ctx.ctx_sigma.mul_(2.0)
    kl = ctx.kl()
    kl.backward()
    assert kl.item() == 0.0 and torch.count_nonzero(ctx.ctx_sigma.grad) == 0


def test_bcal_sample_is_mean_plus_sigma_squared_times_noise_and_the_mean_without():
    p = bcal_params(10)
    ctx = impl_contexts(p)["cls"]
    assert torch.equal(ctx.sample(None), ctx.ctx)
    assert torch.allclose(ctx.sample(p["eps_cls"]), p["mu_cls"] + p["sigma_cls"] ** 2 * p["eps_cls"], rtol=1e-15)
    assert set(ctx.state_dict()) == {"ctx", "ctx_sigma", "ctx_init", "ctx_sigma_init"}


def test_bcal_two_optimizer_steps_match_hand_sgd():
    """Two batches: both learners' SGD (momentum 0.9, weight decay 0.1) on the gradients of one
    forward pass each, written out by hand."""
    lr = 0.05
    p = bcal_params(11)
    enc = {"cls": StandInText(C, 12), "dom": StandInText(ND, 13)}
    batches = [bcal_inputs(14), bcal_inputs(15)]
    noises = [bcal_params(16), bcal_params(17)]

    ctx = impl_contexts(p)
    opts = [torch.optim.SGD(ctx[w].parameters(), lr=lr, momentum=MOM, weight_decay=WD) for w in ("cls", "dom")]
    for (x, y, d), n in zip(batches, noises):
        impl_step(x, y, d, ctx, enc, HYPER, (n["eps_cls"], n["eps_dom"]), opts)

    params = {k: v.clone() for k, v in p.items()}
    learnt = ("mu_cls", "sigma_cls", "mu_dom", "sigma_dom")
    hand = HandSGD(lr)
    for (x, y, d), n in zip(batches, noises):
        leaves = {k: params[k].clone().requires_grad_(True) for k in learnt}
        q = dict(params, **leaves, eps_cls=n["eps_cls"], eps_dom=n["eps_dom"])
        loss, _ = ref_bcal_loss(x, y, d, q, enc["cls"], enc["dom"], HYPER)
        g = torch.autograd.grad(loss, [leaves[k] for k in learnt])
        hand.step(params, dict(zip(learnt, g)))
    for who in ("cls", "dom"):
        assert torch.allclose(ctx[who].ctx, params[f"mu_{who}"], rtol=1e-10, atol=1e-13)
        assert torch.allclose(ctx[who].ctx_sigma, params[f"sigma_{who}"], rtol=1e-10, atol=1e-13)
        assert not torch.allclose(ctx[who].ctx, p[f"mu_{who}"])
        assert torch.equal(ctx[who].ctx_init, p[f"mu0_{who}"])  # the KL anchor never moves


def test_bcal_one_domain_has_no_domain_or_orthogonality_term():
    """ImageNet46 has one domain: the domain CE, its gradient and l_orth are 0; IRM is over one group."""
    x, y, _ = bcal_inputs(18)
    d = torch.zeros(B, dtype=torch.long)
    p = bcal_params(19)
    enc = StandInText(C, 20)
    terms = bcal_terms(x, enc(p["mu_cls"]), StandInText(1, 21)(p["mu_dom"]), y, d, SCALE, HYPER, torch.zeros((), dtype=F64))
    assert terms.domain_ce.item() == 0.0 and terms.orth.item() == 0.0
    assert torch.allclose(terms.irm, ref_irm(terms.logits.detach(), y, d), rtol=1e-12)


def test_bcal_step_noise_depends_only_on_seed_epoch_and_step():
    """The noise of (SEED, epoch, step) is the same whenever it is drawn (a resumed run, another
    engine), differs between steps, epochs and seeds, and has each learner's shape."""
    def fake(seed, epoch):
        learner = types.SimpleNamespace(ctx=torch.zeros(4, 8))
        return types.SimpleNamespace(noise_base=str(seed), epoch=epoch, _noise_at=(None, 0),
                                     prompt_learner=learner,
                                     prompt_learner_context=types.SimpleNamespace(ctx=torch.zeros(3, 4, 8)))

    run = fake(1, 0)
    first = [BCALMethod.step_noise(run) for _ in range(3)]
    run.epoch = 1
    second_epoch = BCALMethod.step_noise(run)
    resumed = fake(1, 1)  # a run resumed at epoch 2 starts counting its steps afresh
    assert all(torch.equal(a, b) for a, b in zip(second_epoch, BCALMethod.step_noise(resumed)))
    again = fake(1, 0)
    assert all(torch.equal(a, b) for a, b in zip(first[1], [BCALMethod.step_noise(again) for _ in range(2)][1]))
    assert not torch.equal(first[0][0], first[1][0]) and not torch.equal(first[0][0], second_epoch[0])
    assert not torch.equal(first[0][0], BCALMethod.step_noise(fake(2, 0))[0])
    assert first[0][0].shape == (4, 8) and first[0][1].shape == (3, 4, 8)
    assert not torch.equal(first[0][0], first[0][1][0])  # the two learners draw different noise


def test_bcal_domain_names():
    multi = types.SimpleNamespace(domains=["art_painting", "cartoon", "photo", "sketch"], source_domains=["photo"],
                                  target_domains=["sketch"])
    assert domain_names(multi) == ["art_painting", "cartoon", "photo", "sketch"]  # held-out domain included
    assert domain_names(types.SimpleNamespace(source_domains=["imagenet"], target_domains=[])) == ["imagenet"]
    with pytest.raises(ValueError, match="domain names"):
        domain_names(types.SimpleNamespace(source_domains=[], target_domains=[]))


# --------------------------------------------------------------------------- VLAD reference
def vlad_case(seed, n=9, dim=8, classes=3, non_linear=False, text=False):
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, dim, generator=g, dtype=F64) + 0.5
    t = torch.randn(classes, dim, generator=g, dtype=F64)
    y = torch.arange(n) % classes
    torch.manual_seed(seed)
    adapter = VLADAdapter(dim, non_linear=non_linear, text=text).double()
    return x, t, y, adapter


def ref_adapter(layer, x):
    """Linear: x W^T; non-linear: ReLU(ReLU(x W1^T) W2^T)."""
    if isinstance(layer, torch.nn.Linear):
        return x @ layer.weight.t()
    return torch.relu(torch.relu(x @ layer[0].weight.t()) @ layer[2].weight.t())


def ref_vlad_forward(x, t, adapter, r, rt):
    img = ref_unit(r * ref_adapter(adapter.fc, x) + (1 - r) * x)
    t_mix = t if adapter.fc_t is None else rt * ref_adapter(adapter.fc_t, t) + (1 - rt) * t
    txt = ref_unit(t_mix)
    return SCALE * img @ txt.t(), img, txt


def ref_pairs_reference(img, y, k):
    """The reference's rule, by loops: in row i, rank position j passes when the sample index found
    there is < k, and the pair is (i, j) with j read as a sample index."""
    sim = (img @ img.t()).detach()
    n = len(y)
    same = torch.tensor([[int(y[i]) == int(y[j]) for j in range(n)] for i in range(n)])
    order_p = torch.argsort(sim * same, dim=1, descending=True)
    order_n = torch.argsort(sim * ~same, dim=1, descending=True)
    pos = {(i, j) for i in range(n) for j in range(n) if order_p[i, j] < k and same[i, j]}
    neg = {(i, j) for i in range(n) for j in range(n) if order_n[i, j] < k and not same[i, j]}
    return pos, neg


def ref_regulariser(img, txt, y, pos, neg):
    n_pos = len(pos)
    pos_v = sum(torch.exp(img[j] @ txt[y[i]]) for i, j in pos) / n_pos
    neg_v = sum(torch.exp(img[j] @ txt[y[i]]) for i, j in neg) / n_pos
    neg1 = sum(torch.exp(img[j] @ txt[c]) for i, j in pos for c in range(len(txt))) / n_pos
    return -torch.log(pos_v / neg_v), -torch.log(pos_v / neg1), pos_v, neg_v, neg1


def as_set(mask):
    return {tuple(ij) for ij in mask.nonzero().tolist()}


def test_vlad_pair_rules_on_a_hand_case():
    """Four same-class samples whose row-0 order is 0, 2, 3, 1: with k = 2 the reference keeps the
    positions where samples 0 and 1 sit (0 and 3), i.e. pairs (0, 0) and (0, 3); knn keeps 0 and 2."""
    img = torch.tensor([[1.0, 0.0], [0.2, 0.98], [0.9, 0.436], [0.6, 0.8]], dtype=F64)
    img = img / img.norm(dim=1, keepdim=True)
    y = torch.zeros(4, dtype=torch.long)
    pos, neg = neighbour_pairs(img, y, 2, "reference")
    assert {j for i, j in as_set(pos) if i == 0} == {0, 3} and not neg.any()
    pos, _ = neighbour_pairs(img, y, 2, "knn")
    assert {j for i, j in as_set(pos) if i == 0} == {0, 2}
    # two classes: the other-class pairs of a row do not depend on how the zeros tie
    y = torch.tensor([0, 0, 1, 1])
    img = torch.tensor([[1.0, 0.1], [0.9, 0.3], [0.8, 0.5], [0.7, 0.6]], dtype=F64)
    _, neg = neighbour_pairs(img, y, 2, "reference")
    assert {j for i, j in as_set(neg) if i == 0} == {2, 3}
    _, neg = neighbour_pairs(img, y, 1, "knn")
    assert as_set(neg) == {(0, 2), (1, 2), (2, 1), (3, 1)}


@pytest.mark.parametrize("non_linear, text", [(False, False), (True, False), (False, True)])
def test_vlad_forward_and_loss_terms(non_linear, text):
    x, t, y, adapter = vlad_case(1, non_linear=non_linear, text=text)
    hyper = VLADHyper(ratio=0.3, ratio_text=0.6, lambda1=0.4, lambda2=0.7, knn=4)
    out = vlad_forward(x, t, adapter, SCALE, hyper.ratio, hyper.ratio_text)
    logits, img, txt = ref_vlad_forward(x, t, adapter, hyper.ratio, hyper.ratio_text)
    for a, b in ((out.logits, logits), (out.img, img), (out.txt, txt)):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-13)
    terms = vlad_loss(out, y, hyper)
    pos, neg = ref_pairs_reference(img, y, hyper.knn)
    assert pos and neg
    l_d, l_a, pos_v, neg_v, neg1 = ref_regulariser(img, txt, y, pos, neg)
    for a, b in ((terms.l_d, l_d), (terms.l_a, l_a), (terms.pos, pos_v), (terms.neg, neg_v), (terms.neg1, neg1)):
        assert torch.allclose(a, b, rtol=1e-12), (a, b)
    assert torch.allclose(terms.ce, ref_ce(logits, y), rtol=1e-12)
    assert torch.allclose(terms.loss, ref_ce(logits, y) + 0.7 * l_d + 0.4 * l_a, rtol=1e-12)
    # the adapter's gradients are the derivative of the loss with the pairs held fixed
    terms.loss.backward()
    for name, param in adapter.named_parameters():
        def loss_at(value):
            with torch.no_grad():
                saved = param.clone()
                param.copy_(value)
                lo, im, tx = ref_vlad_forward(x, t, adapter, hyper.ratio, hyper.ratio_text)
                ld, la, *_ = ref_regulariser(im, tx, y, pos, neg)
                param.copy_(saved)
            return ref_ce(lo, y) + 0.7 * ld + 0.4 * la

        for idx in [(0, 0), (1, 1), (-1, -1)]:
            h = 1e-6
            plus, minus = param.detach().clone(), param.detach().clone()
            plus[idx] += h
            minus[idx] -= h
            numeric = (loss_at(plus) - loss_at(minus)) / (2 * h)
            assert abs(param.grad[idx].item() - numeric.item()) < 1e-7 * max(1.0, abs(numeric.item())), (name, idx)
    if text:
        assert adapter.fc_t.weight.grad.abs().sum() > 0  # the text adapter is trained (not the reference's dead fc_t)


def test_vlad_empty_pair_sets_give_a_finite_loss():
    """A one-class batch has no other-class pair: L_d is 0 (the reference's loss was NaN and the run aborted)."""
    x, t, _, adapter = vlad_case(2)
    y = torch.zeros(len(x), dtype=torch.long)
    terms = vlad_loss(vlad_forward(x, t, adapter, SCALE, 0.2, 0.2), y, VLADHyper(0.2, 0.2, 1.0, 1.0, 3))
    assert terms.l_d.item() == 0.0 and torch.isfinite(terms.loss) and terms.l_a.item() > 0


def test_vlad_two_optimizer_steps_match_hand_sgd():
    lr = 0.1
    hyper = VLADHyper(ratio=0.2, ratio_text=0.2, lambda1=0.5, lambda2=0.3, knn=3)
    x, t, y, adapter = vlad_case(3)
    w = adapter.fc.weight.detach().clone()
    opt = torch.optim.SGD(adapter.parameters(), lr=lr, momentum=MOM, weight_decay=WD)
    batches = [(x, y), (vlad_case(4)[0], y.flip(0))]
    for xb, yb in batches:
        terms = vlad_loss(vlad_forward(xb, t, adapter, SCALE, hyper.ratio, hyper.ratio_text), yb, hyper)
        opt.zero_grad()
        terms.loss.backward()
        opt.step()
    params, hand = {"w": w}, HandSGD(lr)
    for xb, yb in batches:
        leaf = params["w"].clone().requires_grad_(True)
        x_mix = hyper.ratio * xb @ leaf.t() + (1 - hyper.ratio) * xb
        img, txt = ref_unit(x_mix), ref_unit(t)
        pos, neg = ref_pairs_reference(img, yb, hyper.knn)
        l_d, l_a, *_ = ref_regulariser(img, txt, yb, pos, neg)
        loss = ref_ce(SCALE * img @ txt.t(), yb) + hyper.lambda2 * l_d + hyper.lambda1 * l_a
        hand.step(params, {"w": torch.autograd.grad(loss, leaf)[0]})
    assert torch.allclose(adapter.fc.weight, params["w"], rtol=1e-10, atol=1e-13)
    assert not torch.allclose(adapter.fc.weight, w)


# --------------------------------------------------------------------------- runs (tiny backbone, synthetic data)
DATASETS = {  # name -> (flags, KEY VALUE overrides)
    "PACS": (["--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml")],
             ["TEST_ENV", "test_on_sketch.json", "DATASET.OOD_SETS", "['DTD']"]),
    "VLCS": (["--dataset-config-file", str(REPO / "configs/datasets/VLCS.yaml")],
             ["TEST_ENV", "test_on_sun.json", "DATASET.OOD_SETS", "['DTD']", "DATASET.VAL_SHOTS", "2"]),
    "ImageNet46": (["--dataset-config-file", str(REPO / "configs/datasets/imagenet46.yaml")], []),
}


def cli_args(trainer, dataset, root, out, *extra, config="rn50_ep30"):
    flags, opts = DATASETS[dataset]
    return ["--root", str(root), "--seed", "1", "--trainer", trainer, *flags,
            "--config-file", str(REPO / f"configs/trainers/{trainer}/{config}.yaml"), "--backbone", "tiny",
            "--output-dir", str(out), *opts, "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "32", *FAST, *extra]


@pytest.fixture(scope="module")
def cli_runs(synthetic_root, tmp_path_factory):
    made = {}
    root = tmp_path_factory.mktemp("bcal_vlad_runs")

    def get(trainer, dataset):
        if (trainer, dataset) not in made:
            out = root / f"{trainer}_{dataset}"
            assert main(cli_args(trainer, dataset, synthetic_root, out)) == 0
            made[trainer, dataset] = out
        return made[trainer, dataset]

    return get


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("trainer", ["BCAL", "VLAD"])
def test_one_run_per_dataset_from_the_command_line(cli_runs, trainer, dataset):
    out = cli_runs(trainer, dataset)
    results = json.loads((out / "results.json").read_text())
    assert results["trainer"] == trainer and results["dataset"] == dataset
    assert 0.0 <= results["closed_set"]["test_accuracy"] <= 100.0
    ood = "ImageNet-new" if dataset == "ImageNet46" else "DTD"
    for score in ("energy", "mcm", "knn"):
        assert set(results["open_set"][ood][score]) >= {"auroc", "fpr95", "aupr_in", "aupr_out"}
    folders = {"BCAL": ("prompt_learner", "prompt_learner_context"), "VLAD": ("clip_adapter",)}[trainer]
    for folder in folders:
        assert (out / folder / "model-best.pth.tar").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    terms = {"BCAL": {"ce", "domain_ce", "irm", "orth", "kl"}, "VLAD": {"ce", "l_d", "l_a"}}[trainer]
    assert terms <= set(rows[0]["train"]) and all(np.isfinite(v) for v in rows[0]["train"].values())
    if trainer == "BCAL" and dataset == "ImageNet46":  # one domain prompt: no domain CE, no orthogonality
        assert rows[0]["train"]["domain_ce"] == 0.0 and rows[0]["train"]["orth"] == 0.0
    if trainer == "BCAL" and dataset == "PACS":
        assert "domain prompts ['art_painting', 'cartoon', 'photo', 'sketch']" in (out / "log.txt").read_text()


@pytest.mark.parametrize("trainer", ["BCAL", "VLAD"])
def test_energy_is_the_logsumexp_of_the_logits(cli_runs, synthetic_root, tmp_path, trainer):
    """The open-set energy is computed from the logits (the reference's VLAD returned no energy, so
    its energy paths read the text features instead)."""
    from croft.engine.trainer import build_trainer, set_random_seed
    from croft.evaluation.inference import FINAL
    from croft.results.io import load_scores

    out = cli_runs(trainer, "PACS")
    cfg = setup_cfg(build_parser().parse_args(cli_args(trainer, "PACS", synthetic_root, tmp_path / "rebuilt")))
    set_random_seed(cfg.SEED)
    rebuilt = build_trainer(cfg)
    rebuilt.load_model(str(out))
    rebuilt.set_model_mode("eval")
    energies = [torch.logsumexp(rebuilt.inference(batch.features, FINAL).logits.double(), dim=1)
                for batch in rebuilt.test_loader]
    np.testing.assert_allclose(load_scores(str(out))["energy/shift/sketch"], torch.cat(energies).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_bcal_run_repeats_bit_for_bit(cli_runs, synthetic_root, tmp_path):
    """The same seed gives the same noise, hence the same training and scores."""
    first = cli_runs("BCAL", "PACS")
    again = tmp_path / "again"
    assert main(cli_args("BCAL", "PACS", synthetic_root, again)) == 0
    assert (first / "metrics.jsonl").read_text().replace(" ", "").split("epoch_s")[0] == \
        (again / "metrics.jsonl").read_text().replace(" ", "").split("epoch_s")[0]
    a, b = np.load(first / "scores.npz"), np.load(again / "scores.npz")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_results_table_has_a_row_per_method(cli_runs):
    from croft.results.collect import collect, format_table

    for trainer in ("BCAL", "VLAD"):
        cli_runs(trainer, "PACS")
    rows = collect(str(cli_runs("BCAL", "PACS").parent))
    pacs = [r for r in rows if r["dataset"] == "PACS"]
    assert sorted(r["trainer"] for r in pacs) == ["BCAL", "VLAD"]
    table = format_table(pacs, "md")
    assert "| BCAL " in table and "| VLAD " in table
    wide = format_table(pacs, "md", wide=True).splitlines()
    for trainer in ("BCAL", "VLAD"):
        auroc = json.loads((cli_runs(trainer, "PACS") / "results.json").read_text())["open_set"]["DTD"]["energy"]["auroc"]
        row = next(line for line in wide if line.startswith(f"| {trainer} |"))
        assert f"{auroc:.2f} ± 0.00" in row


# --------------------------------------------------------------------------- config errors, configs, grids
@pytest.mark.parametrize("key, value, expected", [
    ("TRAINER.BCAL.alpha2", "-0.5", "expected a weight >= 0"),
    ("TRAINER.BCAL.SIGMA_INIT", "0.0", "expected > 0"),
    ("TRAINER.BCAL.PREC", "fp8", "expected one of"),
    ("TRAINER.BCAL.CLASS_TOKEN_POSITION", "left", "expected one of"),
    ("TRAINER.VLAD.ratio", "1.5", "expected a ratio in [0, 1]"),
    ("TRAINER.VLAD.knn", "0", "expected >= 1"),
    ("TRAINER.VLAD.lambda1", "-1.0", "expected a weight >= 0"),
    ("TRAINER.VLAD.NEIGHBOURS", "nearest", "expected one of"),
    ("TRAINER.VLAD.PROMPTS", "words", "expected one of"),
])
def test_bad_values_exit_2_with_one_line_before_any_work(key, value, expected, tmp_path, capfd):
    trainer = key.split(".")[1]
    out = tmp_path / "out"
    args = cli_args(trainer, "PACS", tmp_path / "no_data_here", out, key, value)
    assert main(args) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"'{key}'" in err[0] and expected in err[0], err
    assert not out.exists() or not any(out.iterdir())


def _cfg(trainer, config):
    return setup_cfg(build_parser().parse_args(
        ["--trainer", trainer, "--config-file", str(REPO / f"configs/trainers/{trainer}/{config}.yaml")]))


def test_reference_configs():
    for config, backbone in (("rn50_ep30", "RN50"), ("ViT_ep30", "ViT-B/16")):
        cfg = _cfg("BCAL", config)
        c = cfg.TRAINER.BCAL
        assert (cfg.MODEL.BACKBONE.NAME, cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.DATALOADER.TEST.BATCH_SIZE,
                cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.WEIGHT_DECAY, cfg.OPTIM.MAX_EPOCH, cfg.OPTIM.WARMUP_EPOCH,
                cfg.OPTIM.LR_SCHEDULER) == (backbone, 32, 100, "sgd", 0.002, 0.1, 30, 1, "cosine")
        assert (c.alpha1, c.alpha2, c.alpha3, c.N_CTX, c.CSC, c.PREC, c.SIGMA_INIT) == (0.01, 0.5, 0.01, 16, False,
                                                                                        "fp16", 1e-5)
    expected = {"rn50_ep30": ("RN50", 32, 100, 30, False), "ViT_ep30": ("ViT-B/16", 64, 100, 30, True),
                "rn50_ep50": ("RN50", 128, 100, 50, False), "ViT_ep50": ("ViT-B/16", 256, 100, 50, True)}
    for config, values in expected.items():
        cfg = _cfg("VLAD", config)
        assert (cfg.MODEL.BACKBONE.NAME, cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.DATALOADER.TEST.BATCH_SIZE,
                cfg.OPTIM.MAX_EPOCH, cfg.TRAINER.VLAD.non_linear_adapter) == values, config
        assert (cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.WEIGHT_DECAY, cfg.TRAINER.VLAD.ratio) == ("sgd", 0.002, 0.1, 0.2)


def test_grids_expand_like_the_baselines():
    counts = {}
    for method in ("bcal", "vlad"):
        for grid in ("setup1", "setup2_pacs", "setup2_vlcs"):
            p = plan([load_grid(str(REPO / "configs" / "sweeps" / f"{method}_{grid}.yaml"))], "/tmp/out")
            counts[f"{method}_{grid}"] = len(p.runs)
            assert {r.trainer for r in p.runs} == {method.upper()}
    assert counts == {"bcal_setup1": 9, "bcal_setup2_pacs": 24, "bcal_setup2_vlcs": 24,
                      "vlad_setup1": 9, "vlad_setup2_pacs": 24, "vlad_setup2_vlcs": 24}


# --------------------------------------------------------------------------- the Dassl bridge
@pytest.mark.parametrize("trainer", ["BCAL", "VLAD"])
def test_coop_train_py_through_the_bridge_gives_croft_engine_numbers(trainer, pinned_dassl, cli_runs, synthetic_root,
                                                                     tmp_path):
    """``croft-dassl CoOp/train.py`` (Dassl's loop, CoOp's unchanged train.py) trains the method with the
    numbers of croft's own engine: the same noise draws (BCAL), results.json and scores.npz."""
    from croft.testing.third_party import COOP as coop, subprocess_env
    env = subprocess_env()
    reference = cli_runs(trainer, "PACS")
    out = tmp_path / "dassl"
    proc = subprocess.run([sys.executable, "-m", "croft.dassl_bridge", str(coop / "train.py"),
                           *cli_args(trainer, "PACS", synthetic_root, out)],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (json.loads((d / "results.json").read_text()) for d in (reference, out))
    a.pop("timing"), b.pop("timing")
    assert a == b
    x, y = np.load(reference / "scores.npz"), np.load(out / "scores.npz")
    assert sorted(x) == sorted(y) and all(np.array_equal(x[k], y[k]) for k in x)
