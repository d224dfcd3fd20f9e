"""Independent numerical tests of the CRoFT objective (docs/method.md §1.3–§4.2, §5).

Every expected value below is re-derived in this file from the spec's prose: row
normalisation, cross-entropy, logsumexp, the EDR energy gradient (through the closed form of
§1.6, not through double backprop), and the SGD/momentum update of §1.7/§2.2 are written out
by hand. The implementation's helpers are only ever called as the system under test.
"""

import pytest
import torch

from croft.trainers.croft_objective import (
    Adapter,
    CRoFTHyper,
    OODImgGen,
    croft_batch_update,
    croft_forward,
    edr_gradient,
    edr_loss,
    l2norm,
    perturb_features,
    perturbation_loss,
)

EPS = 1e-6      # spec notation: norm(v) = v / (1e-6 + ||v||)
DELTA = 1e-4    # docs/method.md §3: Delta = 1e-4 * 1
F64 = torch.float64

B, C, D = 8, 4, 6
LABELS = torch.tensor([0, 1, 2, 3, 1, 0, 2, 1])


# --------------------------------------------------------------------------- reference math
def ref_norm(x):
    """Row-wise x / (1e-6 + ||x||_2), epsilon added to the norm, not the squared norm."""
    return x / (EPS + torch.sqrt((x * x).sum(dim=-1, keepdim=True)))


def ref_logsumexp(a):
    m = a.max(dim=1, keepdim=True).values
    return (m + torch.log(torch.exp(a - m).sum(dim=1, keepdim=True))).squeeze(1)


def ref_ce(logits, y):
    """Mean over rows of -log softmax(logits)[y]."""
    picked = logits[torch.arange(logits.shape[0]), y]
    return (ref_logsumexp(logits) - picked).mean()


def ref_mask(y, dtype):
    """Lmask_jk = 1[y_j == y_k], diagonal included."""
    n = y.shape[0]
    m = torch.zeros(n, n, dtype=dtype)
    for j in range(n):
        for k in range(n):
            if int(y[j]) == int(y[k]):
                m[j, k] = 1.0
    return m


def ref_forward(x_raw, t_raw, wi, wt, s, r, rt):
    """§1.4: adapters act on raw features with a transpose; residual mixing; then norm."""
    x_zs = ref_norm(x_raw)
    t_zs = ref_norm(t_raw)
    x_mix = r * (x_raw @ wi.transpose(0, 1)) + (1 - r) * x_raw
    t_mix = rt * (t_raw @ wt.transpose(0, 1)) + (1 - rt) * t_raw
    img = ref_norm(x_mix)
    txt = ref_norm(t_mix)
    logits = s * (img @ txt.transpose(0, 1))
    return logits, img, txt, x_zs, t_zs, ref_logsumexp(logits)


def ref_c_hat(img, m):
    """§1.5: C^ = norm(I^ M + I^), no transpose on M."""
    return ref_norm(img @ m + img)


def ref_gen_loss(img, txt, y, m, s, lam1):
    """§1.5: CE(s C^ T^^T, y) + lambda1 * mean_{j,k}(mask_jk <C^_j, I^_k>) over all N^2 entries."""
    c_hat = ref_c_hat(img, m)
    mask = ref_mask(y, img.dtype)
    return ref_ce(s * (c_hat @ txt.transpose(0, 1)), y) + lam1 * (mask * (c_hat @ img.transpose(0, 1))).mean(), c_hat


def ref_c_tilde(c_hat, wi, r):
    """§1.6: C~ = r C^ + (1-r) C^ W_i (swapped ratio, no transpose, not renormalised)."""
    return r * c_hat + (1 - r) * (c_hat @ wi)


def ref_jacobian_apply(u, g):
    """Rows of J(u_j) g_j with J(u) = I/(eps+|u|) - u u^T / (|u| (eps+|u|)^2) (symmetric)."""
    n = torch.sqrt((u * u).sum(dim=1, keepdim=True))
    ug = (u * g).sum(dim=1, keepdim=True)
    return g / (EPS + n) - u * ug / (n * (EPS + n) ** 2)


def ref_edr_grad(z, t_zs, wi, wt, r, rt, reduction):
    """Closed form of §1.6 for G = d/dDelta of sum (or mean) of P = exp(A^ T~^T)."""
    dim = wi.shape[0]
    eye = torch.eye(dim, dtype=z.dtype)
    delta = torch.full((dim, dim), DELTA, dtype=z.dtype)
    u = z @ (r * (wi + delta) + (1 - r) * eye)          # N x D
    v = t_zs @ (rt * (wt + delta) + (1 - rt) * eye)     # C x D
    a_hat = ref_norm(u)
    t_tilde = ref_norm(v)
    p = torch.exp(a_hat @ t_tilde.transpose(0, 1))      # N x C, exp(cos) at temperature 1
    big_u = ref_jacobian_apply(u, p @ t_tilde)          # U_j = J(u_j) sum_c P_jc t~_c
    big_v = ref_jacobian_apply(v, p.transpose(0, 1) @ a_hat)  # V_c = J(v_c) sum_j P_jc a^_j
    g = r * (z.transpose(0, 1) @ big_u) + rt * (t_zs.transpose(0, 1) @ big_v)
    if reduction == "mean_sumsq":       # Setup-II: G of the mean
        g = g / (z.shape[0] * t_zs.shape[0])
    else:
        assert reduction == "sum_meansq"
    return g


def ref_l2(g, reduction):
    return (g ** 2).sum() if reduction == "mean_sumsq" else (g ** 2).mean()


def ref_edr(img, c_hat, txt, y, wi, wt, x_zs, t_zs, *, s, r, rt, lam1, lam2, wccf, branch, reduction):
    """§1.6: returns (EDR, L1 or None, L2). L1 is not built at all when WCCF is off."""
    mask = ref_mask(y, img.dtype)
    l1 = None
    if wccf:
        if branch:
            c_tilde = ref_c_tilde(c_hat, wi, r)
            align = (mask * (c_hat @ x_zs.transpose(0, 1))).mean()
            l1 = ref_ce(s * (c_tilde @ txt.transpose(0, 1)), y) - lam1 * align
        else:
            l1 = ref_ce(s * (c_hat @ txt.transpose(0, 1)), y)
    z = torch.cat([x_zs, c_hat], dim=0) if branch else x_zs
    l2 = ref_l2(ref_edr_grad(z, t_zs, wi, wt, r, rt, reduction), reduction)
    edr = l1 + lam2 * l2 if wccf else lam2 * l2
    return edr, l1, l2


# --------------------------------------------------------------------------- fixtures / helpers
def make_inputs(seed, dtype=F64, x_scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x_raw = x_scale * torch.randn(B, D, generator=g, dtype=F64)
    t_raw = 2.0 * torch.randn(C, D, generator=g, dtype=F64)
    return x_raw.to(dtype), t_raw.to(dtype)


def random_matrices(seed, dtype=F64, scale=0.3):
    """Three random, clearly non-symmetric D x D matrices near the identity."""
    g = torch.Generator().manual_seed(seed)
    mats = []
    for _ in range(3):
        a = torch.eye(D, dtype=F64) + scale * torch.randn(D, D, generator=g, dtype=F64)
        assert (a - a.transpose(0, 1)).abs().max() > 0.1
        mats.append(a.to(dtype))
    return mats


def modules(wi, wt, m, dtype=F64):
    adapter = Adapter(D).to(dtype)
    generator = OODImgGen(D).to(dtype)
    with torch.no_grad():
        adapter.fc_i.copy_(wi)
        adapter.fc_t.copy_(wt)
        generator.img2img_cov.copy_(m)
    return adapter, generator


def assert_close(actual, expected, atol, what=""):
    actual = torch.as_tensor(actual).detach().to(F64)
    expected = torch.as_tensor(expected).detach().to(F64)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = (actual - expected).abs().max().item()
    assert err <= atol, f"{what}: max abs diff {err:.3e} > {atol:.1e}"


# --------------------------------------------------------------------------- 0. normaliser
def test_l2norm_adds_eps_to_the_norm():
    x = torch.tensor([[3e-6, 4e-6], [3.0, 4.0]], dtype=F64)
    # For ||x|| = 5e-6 the epsilon on the norm gives 1/6 scaling; eps on the squared norm would not.
    assert_close(l2norm(x), ref_norm(x), 1e-15, "l2norm")
    assert_close(l2norm(x)[0], torch.tensor([3e-6, 4e-6], dtype=F64) / 6e-6, 1e-12, "eps on norm")


# --------------------------------------------------------------------------- 1. at initialisation
@pytest.mark.parametrize("dtype,atol", [(F64, 1e-10), (torch.float32, 2e-5)])
def test_init_forward_is_zero_shot(dtype, atol):
    x_raw, t_raw = make_inputs(0, dtype)
    adapter = Adapter(D).to(dtype)
    assert torch.equal(adapter.fc_i.detach(), torch.eye(D, dtype=dtype))
    assert torch.equal(adapter.fc_t.detach(), torch.eye(D, dtype=dtype))
    s = 100.0
    out = croft_forward(x_raw, t_raw, adapter, s, 0.2, 0.5)
    assert out.logits.dtype == dtype
    x64, t64 = x_raw.to(F64), t_raw.to(F64)
    zero_shot = s * ref_norm(x64) @ ref_norm(t64).transpose(0, 1)
    # s=100 amplifies float32 rounding of the cosines, hence the scaled tolerance.
    assert_close(out.logits, zero_shot, atol * s, "init logits vs zero-shot")
    assert_close(out.img, ref_norm(x64), atol, "I^ at init")
    assert_close(out.txt, ref_norm(t64), atol, "T^ at init")
    assert_close(out.img_zs, ref_norm(x64), atol, "X_zs")
    assert_close(out.txt_zs, ref_norm(t64), atol, "T_zs")
    assert_close(out.energy, ref_logsumexp(zero_shot), atol * s, "energy = logsumexp(logits)")


@pytest.mark.parametrize("dtype,atol", [(F64, 1e-5), (torch.float32, 1e-4)])
def test_init_generator_and_c_tilde(dtype, atol):
    x_raw, t_raw = make_inputs(1, dtype)
    adapter, generator = Adapter(D).to(dtype), OODImgGen(D).to(dtype)
    assert torch.equal(generator.img2img_cov.detach(), torch.eye(D, dtype=dtype))
    s, lam1, r = 100.0, 1.5, 0.2
    out = croft_forward(x_raw, t_raw, adapter, s, r, 0.5)
    img, txt = out.img.detach().to(F64), out.txt.detach().to(F64)

    c_hat = perturb_features(out.img, generator.img2img_cov)
    # C^ = norm(2 I^) = I^ up to the 1e-6 epsilon.
    assert_close(c_hat, img, atol, "C^ = I^ at init")
    c_tilde = ref_c_tilde(c_hat.detach().to(F64), adapter.fc_i.detach().to(F64), r)
    assert_close(c_tilde, c_hat, atol, "C~ = C^ at init")

    loss, c_hat2 = perturbation_loss(out.img, out.txt, LABELS, generator.img2img_cov, s, lam1)
    mask = ref_mask(LABELS, F64)
    expected = ref_ce(s * img @ txt.transpose(0, 1), LABELS) + lam1 * (mask * (img @ img.transpose(0, 1))).mean()
    # s=100 times an O(1e-6) feature difference: allow a little more on the loss.
    assert_close(loss, expected, 10 * atol, "L_gen at init")
    assert_close(c_hat2, img, atol, "returned C^ at init")
    # the mask includes the diagonal: with it, the align term is >= (number of rows)/N^2 > 0
    assert mask.diagonal().eq(1).all()

    # L1 of the WCCF branch at init: C~ = C^, so CE(s C^ T^^T) - lambda1 * align.
    terms = edr_loss(out.img, c_hat, out.txt, LABELS, adapter.fc_i, adapter.fc_t, out.img_zs, out.txt_zs,
                     logit_scale=s, ratio=r, ratio_text=0.5, lambda1=lam1, lambda2=5.0, wccf=True,
                     wccf_branch=True, reduction="mean_sumsq")
    ch = c_hat.detach().to(F64)
    align = (mask * (ch @ out.img_zs.detach().to(F64).transpose(0, 1))).mean()
    assert_close(terms.l1, ref_ce(s * ch @ txt.transpose(0, 1), LABELS) - lam1 * align, 10 * atol, "L1 at init")


# --------------------------------------------------------------------------- 2. non-symmetric matrices
def test_forward_and_generator_with_nonsymmetric_matrices():
    x_raw, t_raw = make_inputs(2)
    wi, wt, m = random_matrices(3)
    adapter, generator = modules(wi, wt, m)
    s = torch.tensor(100.0, dtype=F64)
    r, rt = 0.3, 0.6
    out = croft_forward(x_raw, t_raw, adapter, s, r, rt)
    exp = ref_forward(x_raw, t_raw, wi, wt, s, r, rt)
    for name, a, e in zip(("logits", "img", "txt", "img_zs", "txt_zs", "energy"), out, exp):
        assert_close(a, e, 1e-10, name)

    # The transposes matter: the un-transposed adapters give clearly different logits.
    wrong = ref_forward(x_raw, t_raw, wi.transpose(0, 1), wt.transpose(0, 1), s, r, rt)[0]
    assert (wrong - exp[0]).abs().max() > 1e-2
    # Mixing happens on raw features: mixing normalised features would differ (for non-unit rows).
    img_on_zs = ref_norm(r * ref_norm(x_raw) @ wi.transpose(0, 1) + (1 - r) * ref_norm(x_raw))
    assert_close(img_on_zs, exp[1], 1e-5, "linearity: mixing commutes with norm up to eps")

    c_hat = perturb_features(out.img, generator.img2img_cov)
    assert_close(c_hat, ref_c_hat(exp[1], m), 1e-12, "C^ = norm(I^ M + I^)")
    assert (ref_c_hat(exp[1], m.transpose(0, 1)) - c_hat).abs().max() > 1e-2

    lam1 = 2.5
    loss, c_hat2 = perturbation_loss(out.img, out.txt, LABELS, generator.img2img_cov, s, lam1)
    exp_loss, exp_c = ref_gen_loss(exp[1], exp[2], LABELS, m, s, lam1)
    assert_close(loss, exp_loss, 1e-10, "L_gen")
    assert_close(c_hat2, exp_c, 1e-12, "returned C^")


# --------------------------------------------------------------------------- 3. EDR
def _edr_setup(seed):
    x_raw, t_raw = make_inputs(seed)
    wi, wt, m = random_matrices(seed + 100)
    logits, img, txt, x_zs, t_zs, _ = ref_forward(x_raw, t_raw, wi, wt, 100.0, 0.2, 0.5)
    c_hat = ref_c_hat(img, m)
    return wi, wt, m, img, txt, x_zs, t_zs, c_hat


def test_closed_form_matches_finite_differences():
    """Guards this file's own closed form: compare with a central difference of sum P."""
    wi, wt, m, img, txt, x_zs, t_zs, c_hat = _edr_setup(5)
    r, rt = 0.2, 0.5
    z = torch.cat([x_zs, c_hat])
    eye = torch.eye(D, dtype=F64)

    def f(delta):
        a = ref_norm(z @ (r * (wi + delta) + (1 - r) * eye))
        t = ref_norm(t_zs @ (rt * (wt + delta) + (1 - rt) * eye))
        return torch.exp(a @ t.transpose(0, 1)).sum()

    base = torch.full((D, D), DELTA, dtype=F64)
    fd = torch.zeros(D, D, dtype=F64)
    h = 1e-6
    for a in range(D):
        for b in range(D):
            e = torch.zeros(D, D, dtype=F64)
            e[a, b] = h
            fd[a, b] = (f(base + e) - f(base - e)) / (2 * h)
    assert_close(ref_edr_grad(z, t_zs, wi, wt, r, rt, "sum_meansq"), fd, 1e-6, "closed form vs FD")


@pytest.mark.parametrize("reduction", ["mean_sumsq", "sum_meansq"])
@pytest.mark.parametrize("branch", [True, False])
def test_edr_gradient_closed_form(reduction, branch):
    wi, wt, m, img, txt, x_zs, t_zs, c_hat = _edr_setup(6)
    r, rt = 0.3, 0.6
    z = torch.cat([x_zs, c_hat], dim=0) if branch else x_zs
    assert z.shape[0] == (2 * B if branch else B)
    g = edr_gradient(z, t_zs, wi, wt, r, rt, reduction)
    expected = ref_edr_grad(z, t_zs, wi, wt, r, rt, reduction)
    assert g.shape == (D, D)
    assert_close(g, expected, 1e-5, f"G ({reduction}, branch={branch})")
    assert_close(g, expected, 1e-10 * max(1.0, expected.abs().max().item()), "G (float64 precision)")
    # Power check: a transposed W in the EDR would give a different G.
    wrong = ref_edr_grad(z, t_zs, wi.transpose(0, 1), wt.transpose(0, 1), r, rt, reduction)
    assert (wrong - expected).abs().max() > 1e-4 * expected.abs().max()


def test_edr_gradient_reductions_relate_by_n_times_c():
    wi, wt, m, img, txt, x_zs, t_zs, c_hat = _edr_setup(7)
    z = torch.cat([x_zs, c_hat], dim=0)
    g_sum = edr_gradient(z, t_zs, wi, wt, 0.2, 0.5, "sum_meansq")
    g_mean = edr_gradient(z, t_zs, wi, wt, 0.2, 0.5, "mean_sumsq")
    assert_close(g_mean * (2 * B * C), g_sum, 1e-10, "G_sum = N C G_mean")


def test_edr_gradient_rejects_unknown_reduction():
    wi, wt, m, img, txt, x_zs, t_zs, c_hat = _edr_setup(8)
    with pytest.raises(ValueError):
        edr_gradient(x_zs, t_zs, wi, wt, 0.2, 0.5, "sum_sumsq")


EDR_CASES = [
    # (wccf, branch, reduction)
    (True, True, "mean_sumsq"),
    (True, True, "sum_meansq"),
    (True, False, "mean_sumsq"),
    (True, False, "sum_meansq"),
    (False, False, "mean_sumsq"),
    (False, False, "sum_meansq"),
]


@pytest.mark.parametrize("wccf,branch,reduction", EDR_CASES)
def test_edr_loss_terms(wccf, branch, reduction):
    wi, wt, m, img, txt, x_zs, t_zs, c_hat = _edr_setup(9)
    kw = dict(s=100.0, r=0.2, rt=0.5, lam1=3.0, lam2=7.0)
    terms = edr_loss(img, c_hat, txt, LABELS, wi, wt, x_zs, t_zs, logit_scale=kw["s"], ratio=kw["r"],
                     ratio_text=kw["rt"], lambda1=kw["lam1"], lambda2=kw["lam2"], wccf=wccf,
                     wccf_branch=branch, reduction=reduction)
    assert terms.wccf_branch == branch

    z = torch.cat([x_zs, c_hat]) if branch else x_zs
    g = ref_edr_grad(z, t_zs, wi, wt, kw["r"], kw["rt"], reduction)
    l2 = (g ** 2).sum() if reduction == "mean_sumsq" else (g ** 2).mean()
    assert_close(terms.l2, l2, 1e-10 * max(1.0, l2.item()), "L2")

    mask = ref_mask(LABELS, F64)
    if branch:
        c_tilde = 0.2 * c_hat + 0.8 * c_hat @ wi
        l1 = ref_ce(100.0 * c_tilde @ txt.T, LABELS) - 3.0 * (mask * (c_hat @ x_zs.T)).mean()
    else:
        l1 = ref_ce(100.0 * c_hat @ txt.T, LABELS)
    assert_close(terms.l1, l1, 1e-10, "L1")
    expected = l1 + 7.0 * l2 if wccf else 7.0 * l2
    assert_close(terms.edr, expected, 1e-9, "EDR")
    if wccf:
        # guard: the two L1 branches differ materially with non-identity W_i
        other = ref_edr(img, c_hat, txt, LABELS, wi, wt, x_zs, t_zs, wccf=True, branch=not branch,
                        reduction=reduction, **kw)[1]
        assert abs(other.item() - l1.item()) > 1e-3


@pytest.mark.parametrize("branch,reduction", [(True, "mean_sumsq"), (True, "sum_meansq"), (False, "sum_meansq")])
def test_edr_l2_second_order_gradients(branch, reduction):
    """The gradient of L2 (double backprop in the implementation) vs autograd through the closed form."""
    x_raw, t_raw = make_inputs(10)
    wi0, wt0, m0 = random_matrices(11)
    r, rt = 0.2, 0.5

    def grads(l2_fn):
        wi, wt, m = (t.clone().requires_grad_(True) for t in (wi0, wt0, m0))
        _, img, txt, x_zs, t_zs, _ = ref_forward(x_raw, t_raw, wi, wt, 100.0, r, rt)
        c_hat = ref_c_hat(img, m)
        z = torch.cat([x_zs, c_hat]) if branch else x_zs
        l2 = l2_fn(z, t_zs, wi, wt)
        got = torch.autograd.grad(l2, (wi, wt, m), allow_unused=True)
        return l2.detach(), got

    impl_l2, impl_g = grads(lambda z, t, wi, wt: ref_l2(edr_gradient(z, t, wi, wt, r, rt, reduction), reduction))
    ref_l2v, ref_g = grads(lambda z, t, wi, wt: ref_l2(ref_edr_grad(z, t, wi, wt, r, rt, reduction), reduction))
    assert_close(impl_l2, ref_l2v, 1e-10 * max(1.0, ref_l2v.item()), "L2 value")
    for name, a, e in zip(("W_i", "W_t", "M"), impl_g, ref_g):
        if e is None:
            assert a is None or a.abs().max() == 0, name
            continue
        scale = max(1.0, e.abs().max().item())
        assert_close(a, e, 1e-8 * scale, f"dL2/d{name}")
    assert (ref_g[2] is not None) == branch  # M reaches L2 only through the C^ rows of Z


# --------------------------------------------------------------------------- 4. batch update
WD, MOM = 0.1, 0.9


class HandSGD:
    """SGD of §2.2 written out: d = g + wd*theta; buf = d first, else 0.9*buf + d; theta -= lr*buf.
    A parameter whose gradient is None is skipped (no decay, no buffer update)."""

    def __init__(self, lr):
        self.lr = lr
        self.buf = {}

    def step(self, params, grads):
        for name, g in grads.items():
            if g is None:
                continue
            d = g + WD * params[name]
            self.buf[name] = d.clone() if name not in self.buf else MOM * self.buf[name] + d
            params[name] = params[name] - self.lr * self.buf[name]


def ref_batch(x_raw, t_raw, y, params, opt_a, opt_g, s, hp):
    """§1.7 re-derived. Gradients of stale-graph terms are taken w.r.t. separate leaves holding
    theta^(0) (the values at the start of the batch); the total gradient of W_i / W_t is the
    sum of the gradient through the stale leaves and through the current-value leaves."""
    theta0 = {k: v.clone() for k, v in params.items()}

    def step_both(loss_builder):
        wi0 = theta0["wi"].clone().requires_grad_(True)
        wt0 = theta0["wt"].clone().requires_grad_(True)
        cur = {k: params[k].clone().requires_grad_(True) for k in ("wi", "wt", "m")}
        loss = loss_builder(wi0, wt0, cur)
        leaves = (wi0, wt0, cur["wi"], cur["wt"], cur["m"])
        g = torch.autograd.grad(loss, leaves, allow_unused=True)

        def add(a, b):
            if a is None:
                return b
            return a if b is None else a + b

        grads = {"wi": add(g[0], g[2]), "wt": add(g[1], g[3]), "m": g[4]}
        # both optimizers step after every loss (§1.7), each on its own parameters
        opt_a.step(params, {k: grads[k] for k in ("wi", "wt")})
        opt_g.step(params, {"m": grads["m"]})
        return loss.detach()

    def gen_loss(wi0, wt0, cur):
        _, img, txt, _, _, _ = ref_forward(x_raw, t_raw, wi0, wt0, s, hp.ratio, hp.ratio_text)
        return ref_gen_loss(img, txt, y, cur["m"], s, hp.lambda1)[0]

    def final_loss(wi0, wt0, cur):
        logits, img, txt, x_zs, t_zs, _ = ref_forward(x_raw, t_raw, wi0, wt0, s, hp.ratio, hp.ratio_text)
        branch = hp.wccf and hp.edr_wccf_branch and hp.gen_step > 0
        if hp.wccf or branch:
            c_hat = ref_c_hat(img, cur["m"])
        else:
            c_hat = None  # C^ only feeds L1 and the WCCF rows of Z: absent here
        edr, _, _ = ref_edr(img, c_hat, txt, y, cur["wi"], cur["wt"], x_zs, t_zs, s=s, r=hp.ratio,
                            rt=hp.ratio_text, lam1=hp.lambda1, lam2=hp.lambda2, wccf=hp.wccf, branch=branch,
                            reduction=hp.reduction)
        return ref_ce(logits, y) + edr

    if hp.wccf:
        for _ in range(hp.gen_step):
            step_both(gen_loss)
    return step_both(final_loss)


def impl_setup(wi, wt, m, lr):
    adapter, generator = modules(wi, wt, m)
    opt_a = torch.optim.SGD(adapter.parameters(), lr=lr, momentum=MOM, weight_decay=WD)
    opt_g = torch.optim.SGD(generator.parameters(), lr=lr, momentum=MOM, weight_decay=WD)

    def backward_and_update(loss):
        opt_a.zero_grad()
        opt_g.zero_grad()
        loss.backward(retain_graph=True)
        opt_a.step()
        opt_g.step()

    return adapter, generator, opt_a, opt_g, backward_and_update


BATCH_CASES = [
    # gen_step, wccf, edr_wccf_branch, reduction
    (0, True, True, "mean_sumsq"),
    (1, True, True, "sum_meansq"),
    (1, True, True, "mean_sumsq"),
    (5, True, True, "mean_sumsq"),
    (5, True, True, "sum_meansq"),
    (1, False, True, "mean_sumsq"),
    (5, False, True, "sum_meansq"),
    (5, True, False, "sum_meansq"),   # VLCS special case: generator loop runs, EDR else branch
]


@pytest.mark.parametrize("gen_step,wccf,edr_branch,reduction", BATCH_CASES)
def test_batch_update_matches_hand_derivation(gen_step, wccf, edr_branch, reduction):
    lr = 0.01
    s = torch.tensor(20.0, dtype=F64)
    hp = CRoFTHyper(ratio=0.2, ratio_text=0.5, lambda1=1.5,
                    lambda2=5.0 if reduction == "sum_meansq" else 50.0,
                    wccf=wccf, gen_step=gen_step, reduction=reduction, edr_wccf_branch=edr_branch)
    assert hp.wccf_branch == (wccf and edr_branch and gen_step > 0)
    wi, wt, m = random_matrices(20)
    batches = [make_inputs(21), make_inputs(22)]
    labels = [LABELS, torch.tensor([2, 2, 0, 1, 3, 3, 0, 1])]

    adapter, generator, opt_a, opt_g, bwd = impl_setup(wi, wt, m, lr)
    params = {"wi": wi.clone(), "wt": wt.clone(), "m": m.clone()}
    hand_a, hand_g = HandSGD(lr), HandSGD(lr)

    for b, ((x_raw, t_raw), y) in enumerate(zip(batches, labels)):
        logged = croft_batch_update(x_raw, t_raw, y, adapter, generator, s, hp, bwd)
        ref_loss = ref_batch(x_raw, t_raw, y, params, hand_a, hand_g, s, hp)
        assert logged["loss"] == pytest.approx(ref_loss.item(), rel=1e-9, abs=1e-9), f"batch {b} loss"
        for name, p in (("wi", adapter.fc_i), ("wt", adapter.fc_t), ("m", generator.img2img_cov)):
            assert_close(p, params[name], 1e-6, f"batch {b}: {name}")
            assert_close(p, params[name], 1e-10, f"batch {b}: {name} (float64)")
        # momentum buffers, carried from step to step and batch to batch
        state_a = opt_a.state
        for name, p in (("wi", adapter.fc_i), ("wt", adapter.fc_t)):
            assert_close(state_a[p]["momentum_buffer"], hand_a.buf[name], 1e-10, f"batch {b}: buf {name}")
        gbuf = opt_g.state.get(generator.img2img_cov, {}).get("momentum_buffer")
        assert (gbuf is None) == ("m" not in hand_g.buf)
        if gbuf is not None:
            assert_close(gbuf, hand_g.buf["m"], 1e-10, f"batch {b}: buf m")

    # every parameter actually moved (except M without WCCF, which never receives a gradient)
    assert (adapter.fc_i.detach() - wi).abs().max() > 1e-4
    assert (adapter.fc_t.detach() - wt).abs().max() > 1e-4
    if wccf:
        assert (generator.img2img_cov.detach() - m).abs().max() > 1e-5
    else:
        assert torch.equal(generator.img2img_cov.detach(), m)
        assert generator.img2img_cov.grad is None


def test_momentum_persists_across_batches():
    """Two batches with persistent buffers match the implementation; resetting the buffers
    between the batches gives a measurably different result (so the check has power)."""
    lr = 0.01
    s = torch.tensor(20.0, dtype=F64)
    hp = CRoFTHyper(ratio=0.2, ratio_text=0.5, lambda1=1.5, lambda2=5.0, wccf=True, gen_step=1,
                    reduction="sum_meansq", edr_wccf_branch=True)
    wi, wt, m = random_matrices(30)
    batches = [make_inputs(31), make_inputs(32)]
    adapter, generator, opt_a, opt_g, bwd = impl_setup(wi, wt, m, lr)
    for x_raw, t_raw in batches:
        croft_batch_update(x_raw, t_raw, LABELS, adapter, generator, s, hp, bwd)

    def hand(reset):
        params = {"wi": wi.clone(), "wt": wt.clone(), "m": m.clone()}
        a, g = HandSGD(lr), HandSGD(lr)
        for x_raw, t_raw in batches:
            if reset:
                a, g = HandSGD(lr), HandSGD(lr)
            ref_batch(x_raw, t_raw, LABELS, params, a, g, s, hp)
        return params

    persistent, reset = hand(False), hand(True)
    for name, p in (("wi", adapter.fc_i), ("wt", adapter.fc_t), ("m", generator.img2img_cov)):
        assert_close(p, persistent[name], 1e-10, name)
    diff = max((persistent[k] - reset[k]).abs().max().item() for k in persistent)
    assert diff > 1e-5


def test_batch_update_float32_runs_and_tracks_float64():
    """float32 smoke check: same procedure in float32 stays close to the float64 hand derivation."""
    lr = 0.01
    hp = CRoFTHyper(ratio=0.2, ratio_text=0.5, lambda1=1.5, lambda2=5.0, wccf=True, gen_step=2,
                    reduction="sum_meansq", edr_wccf_branch=True)
    wi, wt, m = random_matrices(40)
    x_raw, t_raw = make_inputs(41)
    adapter, generator, opt_a, opt_g, bwd = impl_setup(wi, wt, m, lr)
    adapter.float()
    generator.float()
    opt_a = torch.optim.SGD(adapter.parameters(), lr=lr, momentum=MOM, weight_decay=WD)
    opt_g = torch.optim.SGD(generator.parameters(), lr=lr, momentum=MOM, weight_decay=WD)

    def bwd32(loss):
        opt_a.zero_grad()
        opt_g.zero_grad()
        loss.backward(retain_graph=True)
        opt_a.step()
        opt_g.step()

    croft_batch_update(x_raw.float(), t_raw.float(), LABELS, adapter, generator, 20.0, hp, bwd32)
    assert adapter.fc_i.dtype == torch.float32
    params = {"wi": wi.clone(), "wt": wt.clone(), "m": m.clone()}
    ref_batch(x_raw, t_raw, LABELS, params, HandSGD(lr), HandSGD(lr), 20.0, hp)
    for name, p in (("wi", adapter.fc_i), ("wt", adapter.fc_t), ("m", generator.img2img_cov)):
        assert_close(p, params[name], 1e-5, f"float32 {name}")


def test_hyper_wccf_branch_property():
    for wccf in (True, False):
        for edr_branch in (True, False):
            for gen_step in (0, 1, 5):
                hp = CRoFTHyper(wccf=wccf, edr_wccf_branch=edr_branch, gen_step=gen_step)
                assert hp.wccf_branch == (wccf and edr_branch and gen_step > 0)
