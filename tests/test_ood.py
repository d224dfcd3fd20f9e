"""Tests of croft.ood: detection scores and metrics (hand-computed cases + independent formulas)."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from croft.ood import (
    energy_score,
    fpr_at_tpr,
    hendrycks_fpr_at_recall,
    knn_score,
    max_logit_score,
    mcm_score,
    ood_metrics,
    reference_energy_fpr,
    reference_metrics,
)


# ----------------------------------------------------------------------------------------------
# helpers: independent formulations used as oracles
# ----------------------------------------------------------------------------------------------

def _random_scores(seed, ties):
    rng = np.random.default_rng(seed)
    id_s = rng.normal(1.0, 1.0, size=rng.integers(30, 200))
    ood_s = rng.normal(0.0, 1.0, size=rng.integers(30, 200))
    if ties:  # coarse rounding -> many ties, including ties across ID and OOD
        id_s, ood_s = np.round(id_s, 1), np.round(ood_s, 1)
    return id_s, ood_s


def _auroc_mann_whitney(id_s, ood_s):
    """P(ID > OOD) + 0.5 P(ID == OOD), by brute force over all pairs."""
    diff = id_s[:, None] - ood_s[None, :]
    return 100.0 * ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def _fpr_brute(id_s, ood_s, num, den):
    """Largest candidate t with #(ID >= t) / n >= num/den (integer arithmetic), FPR = #(OOD >= t)."""
    n = id_s.size
    ok = [t for t in np.unique(id_s) if (id_s >= t).sum() * den >= num * n]
    t = max(ok)
    return 100.0 * (ood_s >= t).sum() / ood_s.size


def _hendrycks_brute(id_s, ood_s, target):
    """Operating points at every distinct score t >= min(ID) (down to where recall first hits 1);
    pick the smallest |recall - target|, ties -> lowest threshold."""
    cands = np.unique(np.concatenate([id_s, ood_s]))  # ascending
    cands = cands[cands >= id_s.min()]
    rec = np.array([(id_s >= t).sum() / id_s.size for t in cands])
    fp = np.array([(ood_s >= t).sum() for t in cands])
    i = int(np.argmin(np.abs(rec - target)))  # first = lowest threshold on ties
    return 100.0 * fp[i] / ood_s.size


def _close(got, expected, atol=1e-6):
    """Same shape and max |got - expected| <= atol (torch.testing.assert_close costs ~1 s to warm up)."""
    expected = torch.as_tensor(expected, dtype=got.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    err = (got - expected).abs().max().item() if got.numel() else 0.0
    assert err <= atol, f"max abs error {err} > {atol}: got {got}, expected {expected}"


def _percentile_linear(x, q):
    x = np.sort(x)
    pos = q / 100.0 * (x.size - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, x.size - 1)
    return x[lo] + (pos - lo) * (x[hi] - x[lo])


# ----------------------------------------------------------------------------------------------
# metrics: AUROC / AUPR
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_ranking_metrics_match_sklearn(seed, ties):
    id_s, ood_s = _random_scores(seed, ties)
    labels = np.r_[np.ones(id_s.size), np.zeros(ood_s.size)]
    scores = np.r_[id_s, ood_s]
    m = ood_metrics(id_s, ood_s)
    assert set(m) == {"auroc", "fpr95", "aupr_in", "aupr_out"}
    assert m["auroc"] == pytest.approx(100 * roc_auc_score(labels, scores), abs=1e-9)
    assert m["auroc"] == pytest.approx(_auroc_mann_whitney(id_s, ood_s), abs=1e-9)
    assert m["aupr_in"] == pytest.approx(100 * average_precision_score(labels, scores), abs=1e-9)
    assert m["aupr_out"] == pytest.approx(100 * average_precision_score(1 - labels, -scores), abs=1e-9)
    assert m["fpr95"] == pytest.approx(_fpr_brute(id_s, ood_s, 19, 20), abs=1e-9)
    # AUPR-In and AUPR-Out are different quantities on unbalanced sets
    if id_s.size != ood_s.size:
        assert m["aupr_in"] != pytest.approx(m["aupr_out"], abs=1e-6)


def test_metrics_are_percent_and_oriented_id_positive():
    id_s = np.arange(10.0, 20.0)
    ood_s = np.arange(0.0, 5.0)
    good = ood_metrics(id_s, ood_s)
    assert good == pytest.approx({"auroc": 100.0, "fpr95": 0.0, "aupr_in": 100.0, "aupr_out": 100.0})
    bad = ood_metrics(ood_s, id_s)  # roles swapped: worst case
    assert bad["auroc"] == pytest.approx(0.0)
    assert bad["fpr95"] == pytest.approx(100.0)


def test_metrics_accept_torch_tensors_and_columns():
    id_s, ood_s = _random_scores(3, ties=False)
    ref = ood_metrics(id_s, ood_s)
    got = ood_metrics(torch.tensor(id_s, dtype=torch.float64)[:, None], torch.tensor(ood_s))
    assert got == pytest.approx(ref, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# metrics: standard FPR at 95% TPR
# ----------------------------------------------------------------------------------------------

def test_fpr_at_tpr_hand_case_from_design():
    # 19 of 20 ID scores are >= 2 and only 18 are >= 3  ->  t = 2; OOD {2, 3} accepted
    assert fpr_at_tpr(np.arange(1, 21), [0, 1.5, 2, 3]) == pytest.approx(50.0)


def test_fpr_at_tpr_is_exact_for_decimal_tpr():
    # 0.95 * 20 must be 19, not 19.000000000000004 -> 20 (which would move t to 1)
    assert fpr_at_tpr(np.arange(1, 21), [1.0], tpr=0.95) == 0.0
    # 0.95 * 10 = 9.5 -> 10 ID samples needed -> t = min(ID) = 1
    assert fpr_at_tpr(np.arange(1, 11), [1.0]) == 100.0
    # tpr = 1 keeps every ID sample
    assert fpr_at_tpr([3, 4, 5], [2.9, 3.0, 6], tpr=1.0) == pytest.approx(200 / 3)
    # 0.85 * 20 = 17 -> t = 4
    assert fpr_at_tpr(np.arange(1, 21), [3.5, 4, 3], tpr=0.85) == pytest.approx(100 / 3)


def test_fpr_at_tpr_ties_at_threshold():
    # ID: 19 twos and one zero -> t = 2 exactly; OOD scores equal to t are false positives
    id_s = [0.0] + [2.0] * 19
    assert fpr_at_tpr(id_s, [2.0, 2.0, 1.9, 0.0]) == pytest.approx(50.0)
    # ID: ten 5s and ten 1s -> 19th largest is 1, the tie block makes the actual TPR 100%
    id_s = [5.0] * 10 + [1.0] * 10
    assert fpr_at_tpr(id_s, [1.0, 1.0, 0.5, 2.0]) == pytest.approx(75.0)
    # all ID scores tied
    assert fpr_at_tpr([7.0] * 20, [7.0, 6.999, 8.0, 0.0]) == pytest.approx(50.0)


def test_fpr_at_tpr_perfect_and_reversed():
    assert fpr_at_tpr(np.linspace(10, 20, 50), np.linspace(0, 9.9, 30)) == 0.0
    assert fpr_at_tpr(np.linspace(0, 9.9, 30), np.linspace(10, 20, 50)) == 100.0


@pytest.mark.parametrize("seed", range(5))
def test_fpr_at_tpr_matches_brute_force(seed):
    id_s, ood_s = _random_scores(seed, ties=True)
    for tpr, num, den in [(0.95, 19, 20), (0.9, 9, 10), (0.8, 4, 5), (1.0, 1, 1)]:
        assert fpr_at_tpr(id_s, ood_s, tpr) == pytest.approx(_fpr_brute(id_s, ood_s, num, den), abs=1e-9)


def test_fpr_at_tpr_rejects_bad_tpr():
    with pytest.raises(ValueError, match="tpr must be in"):
        fpr_at_tpr([1, 2], [0], tpr=0.0)
    with pytest.raises(ValueError, match="tpr must be in"):
        fpr_at_tpr([1, 2], [0], tpr=95)


# ----------------------------------------------------------------------------------------------
# metrics: bad inputs
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [ood_metrics, fpr_at_tpr, reference_energy_fpr, hendrycks_fpr_at_recall])
def test_bad_inputs_name_the_side(fn):
    with pytest.raises(ValueError, match="ID scores are empty"):
        fn([], [1.0, 2.0])
    with pytest.raises(ValueError, match="OOD scores are empty"):
        fn([1.0, 2.0], np.array([]))
    with pytest.raises(ValueError, match=r"ID scores contain 1 non-finite value\(s\) \(NaN/inf\) out of 3"):
        fn([1.0, np.nan, 2.0], [1.0])
    with pytest.raises(ValueError, match=r"OOD scores contain 2 non-finite value\(s\) \(NaN/inf\) out of 4"):
        fn([1.0, 2.0], [np.inf, 0.0, -np.inf, 1.0])
    with pytest.raises(ValueError, match="ID scores must be 1-D"):
        fn(np.zeros((3, 2)), [1.0])


# ----------------------------------------------------------------------------------------------
# metrics: the reference protocol
# ----------------------------------------------------------------------------------------------

def test_reference_energy_fpr_interpolates_and_is_strict():
    # 11 ID scores 0, 2, ..., 20: position 0.05 * 10 = 0.5 -> threshold halfway between 0 and 2
    fpr, thr = reference_energy_fpr(np.arange(0, 21, 2.0), [1.0, 1.5, 0.5, 3.0])
    assert thr == 1.0
    assert fpr == pytest.approx(50.0)  # 1.5 and 3 are > 1; the OOD score equal to 1 is not counted
    # 5 ID scores: position 0.2 -> 10 + 0.2 * (20 - 10) = 12
    fpr, thr = reference_energy_fpr([50, 10, 40, 20, 30], [11.9, 12.1, 100, -5])
    assert thr == pytest.approx(12.0)
    assert fpr == pytest.approx(50.0)


def test_reference_and_standard_fpr_differ():
    id_s = np.arange(0.0, 21.0)  # 21 scores: reference threshold = p5 = 1.0 exactly
    ood_s = [1.0, 1.0, 2.0, 0.0]
    fpr, thr = reference_energy_fpr(id_s, ood_s)
    assert thr == 1.0
    assert fpr == pytest.approx(25.0)  # only 2 > 1
    # standard: 20 of 21 ID must be kept -> t = 1, and OOD scores equal to t are accepted
    assert fpr_at_tpr(id_s, ood_s) == pytest.approx(75.0)


@pytest.mark.parametrize("seed", range(4))
def test_reference_energy_fpr_random(seed):
    id_s, ood_s = _random_scores(seed, ties=seed % 2 == 1)
    fpr, thr = reference_energy_fpr(id_s, ood_s)
    assert thr == pytest.approx(_percentile_linear(id_s, 5), abs=1e-12)
    assert fpr == pytest.approx(100.0 * np.mean(ood_s > thr), abs=1e-9)


def test_reference_metrics_uses_only_correct_id():
    rng = np.random.default_rng(0)
    id_s = rng.normal(2.0, 1.0, 300)
    correct = rng.random(300) < 0.7
    id_s[~correct] -= 3.0  # misclassified ID samples look like OOD
    ood_s = rng.normal(0.0, 1.0, 200)
    ref = reference_metrics(id_s, correct, ood_s)
    assert set(ref) == {"auroc", "fpr95", "aupr_in", "aupr_out"}
    sub = ood_metrics(id_s[correct], ood_s)
    for key in ("auroc", "aupr_in", "aupr_out"):
        assert ref[key] == pytest.approx(sub[key], abs=1e-9)
    assert ref["fpr95"] == pytest.approx(reference_energy_fpr(id_s[correct], ood_s)[0], abs=1e-12)
    # excluding misclassified ID samples flatters the detector (docs/protocols.md §4.4)
    full = ood_metrics(id_s, ood_s)
    assert ref["auroc"] > full["auroc"] + 5
    assert ref["fpr95"] < full["fpr95"]
    # 0/1 masks and torch masks are accepted
    assert reference_metrics(id_s, correct.astype(int), ood_s) == pytest.approx(ref)
    assert reference_metrics(torch.tensor(id_s), torch.tensor(correct), ood_s) == pytest.approx(ref)


def test_reference_metrics_bad_mask():
    with pytest.raises(ValueError, match=r"id_correct_mask has shape \(2,\) but the ID scores have shape \(3,\)"):
        reference_metrics([1.0, 2.0, 3.0], [True, False], [0.0])
    with pytest.raises(ValueError, match="no correctly classified ID samples"):
        reference_metrics([1.0, 2.0], [False, False], [0.0])
    with pytest.raises(ValueError, match="boolean"):
        reference_metrics([1.0, 2.0], [0.5, 1.0], [0.0])
    with pytest.raises(ValueError, match="OOD scores contain 1 non-finite"):
        reference_metrics([1.0, 2.0], [True, True], [np.nan])


# ----------------------------------------------------------------------------------------------
# metrics: Hendrycks-style FPR at recall (docs/protocols.md §5.5)
# ----------------------------------------------------------------------------------------------

def test_hendrycks_hand_cases():
    # ID 1..20, OOD {0, 1.5, 2, 3}: recall is exactly 0.95 at thresholds 2 and 1.5; the
    # lowest of them (1.5, which also accepts the OOD 1.5) is chosen -> 3 of 4 OOD
    assert hendrycks_fpr_at_recall(np.arange(1, 21), [0, 1.5, 2, 3]) == pytest.approx(75.0)
    assert fpr_at_tpr(np.arange(1, 21), [0, 1.5, 2, 3]) == pytest.approx(50.0)  # differs
    # ID 1..10: recall 0.9 is (in float) closer to 0.95 than 1.0 is -> a recall below target
    assert hendrycks_fpr_at_recall(np.arange(1, 11), [1.0, 1.5]) == pytest.approx(50.0)
    assert fpr_at_tpr(np.arange(1, 11), [1.0, 1.5]) == pytest.approx(100.0)
    assert hendrycks_fpr_at_recall(np.arange(10.0, 20.0), np.arange(0.0, 5.0)) == 0.0
    assert hendrycks_fpr_at_recall(np.arange(0.0, 5.0), np.arange(10.0, 20.0)) == 100.0


@pytest.mark.parametrize("seed", range(6))
def test_hendrycks_matches_brute_force_and_ignores_order(seed):
    id_s, ood_s = _random_scores(seed, ties=seed % 2 == 0)
    for target in (0.95, 0.9, 0.5):
        expected = _hendrycks_brute(id_s, ood_s, target)
        assert hendrycks_fpr_at_recall(id_s, ood_s, target) == pytest.approx(expected, abs=1e-9)
    rng = np.random.default_rng(seed)
    assert hendrycks_fpr_at_recall(rng.permutation(id_s), rng.permutation(ood_s)) == pytest.approx(
        hendrycks_fpr_at_recall(id_s, ood_s), abs=1e-12)


# ----------------------------------------------------------------------------------------------
# scores
# ----------------------------------------------------------------------------------------------

def test_registered_scores_are_these_functions_with_the_context():
    """The evaluation's score registry wires each name to its function here, with the run's context."""
    from croft.evaluation.inference import Outputs
    from croft.evaluation.scores import ScoreContext, compute_scores, score_names

    assert score_names()[:4] == ["energy", "mcm", "max_logit", "knn"]
    g = torch.Generator().manual_seed(3)
    feats, text, bank = torch.randn(12, 8, generator=g), torch.randn(5, 8, generator=g), torch.randn(30, 8, generator=g)
    outputs = Outputs(torch.randn(12, 5, generator=g) * 4, feats, torch.zeros(12, dtype=torch.long), text)
    context = ScoreContext(knn_bank=bank, knn_k=7, mcm_temperature=0.3)
    got = compute_scores(outputs, ["energy", "mcm", "max_logit", "knn"], context)
    expected = {"energy": energy_score(outputs.logits), "max_logit": max_logit_score(outputs.logits),
                "mcm": mcm_score(feats, text, temperature=0.3), "knn": knn_score(feats, bank, 7)}
    for name, values in expected.items():
        assert got[name].dtype == np.float64
        np.testing.assert_array_equal(got[name], values.double().numpy(), err_msg=name)
    # the context matters: another k and temperature give other values
    assert not np.allclose(got["knn"], knn_score(feats, bank, 1).double().numpy())
    assert not np.allclose(got["mcm"], mcm_score(feats, text, temperature=1.0).double().numpy())


def test_energy_is_logsumexp():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 7, generator=g, dtype=torch.float64) * 3
    manual = torch.log(torch.exp(logits).sum(dim=1))
    got = energy_score(logits)
    assert got.shape == (16,)
    _close(got, manual, atol=1e-12)
    # float32 input keeps float32
    assert energy_score(logits.float()).dtype == torch.float32
    # temperature form: T * logsumexp(x / T)
    _close(energy_score(logits, temperature=2.0),
                               2.0 * torch.log(torch.exp(logits / 2.0).sum(dim=1)), atol=1e-12)


def test_energy_is_stable_for_large_logits():
    logits = torch.tensor([[1000.0, 1000.0, 990.0], [-1000.0, -1001.0, -1002.0]])
    got = energy_score(logits)
    assert torch.isfinite(got).all()
    expected = torch.tensor([1000.0 + math.log(2 + math.exp(-10)),
                             -1000.0 + math.log(1 + math.exp(-1) + math.exp(-2))])
    _close(got, expected, atol=1e-4)
    # half precision input is scored in float32 (fp16 cannot even hold exp(11))
    got16 = energy_score(torch.tensor([[11.0, 11.0]], dtype=torch.float16))
    assert got16.dtype == torch.float32
    assert got16.item() == pytest.approx(11 + math.log(2), abs=1e-2)


def test_max_logit():
    logits = torch.tensor([[1.0, 5.0, -2.0], [-3.0, -1.0, -4.0]])
    _close(max_logit_score(logits), torch.tensor([5.0, -1.0]))


def test_mcm_hand_case_and_scale_invariance():
    img = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got = mcm_score(img, txt)
    e = math.e
    c = 1 / math.sqrt(2)
    # the score is log(max softmax): cos = (1, 0) and (c, c)
    expected = torch.log(torch.tensor([e / (e + 1), 0.5], dtype=torch.float64))
    _close(got, expected)
    assert mcm_score(img, txt, temperature=0.5)[0].item() == pytest.approx(math.log(e ** 2 / (e ** 2 + 1)), rel=1e-9)
    assert got[1].item() == pytest.approx(math.log(math.exp(c) / (2 * math.exp(c))))
    # invariant to the scale of each row of both inputs
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 8, generator=g)
    t = torch.randn(4, 8, generator=g)
    scales_x = torch.rand(10, 1, generator=g) * 50 + 0.01
    scales_t = torch.rand(4, 1, generator=g) * 50 + 0.01
    _close(mcm_score(x * scales_x, t * scales_t, 0.01), mcm_score(x, t, 0.01))
    # MCM of C classes lies in [1/C, 1], so its log in [-log C, 0]
    s = mcm_score(x, t)
    assert (s >= -math.log(4) - 1e-9).all() and (s <= 0).all()


def test_mcm_bad_inputs():
    with pytest.raises(ValueError, match="image_features have dim 3 but text_features have dim 2"):
        mcm_score(torch.ones(2, 3), torch.ones(4, 2))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        mcm_score(torch.ones(2, 3), torch.ones(4, 3), temperature=0)


def test_knn_hand_case():
    bank = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]])  # normalised: e1, e2, -e1
    query = torch.tensor([[5.0, 0.0], [0.0, -1.0]])  # e1, -e2
    r2 = math.sqrt(2)
    _close(knn_score(query, bank, k=1), torch.tensor([0.0, -r2]))
    _close(knn_score(query, bank, k=2), torch.tensor([-r2, -r2]))
    _close(knn_score(query, bank, k=3), torch.tensor([-2.0, -2.0]))
    # the reference's faiss IndexFlatL2 variant: squared distance
    _close(knn_score(query, bank, k=2, squared=True), torch.tensor([-2.0, -2.0]))
    _close(knn_score(query, bank, k=3, squared=True), torch.tensor([-4.0, -4.0]))


def test_knn_chunked_equals_unchunked_and_brute_force():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(301, 16, generator=g, dtype=torch.float64)
    b = torch.randn(203, 16, generator=g, dtype=torch.float64)
    for k in (1, 5, 50, 203):
        full = knn_score(q, b, k, chunk_size=100000)
        _close(knn_score(q, b, k, chunk_size=7), full, atol=0)
        qn = q / q.norm(dim=1, keepdim=True)
        bn = b / b.norm(dim=1, keepdim=True)
        brute = -torch.cdist(qn, bn).sort(dim=1).values[:, k - 1]
        _close(full, brute, atol=1e-10)
        _close(knn_score(q, b, k, squared=True), -brute ** 2, atol=1e-10)


def test_knn_near_duplicates_are_accurate():
    # 2 - 2cos would lose all precision here in float32; the distance is recomputed from q - b
    b = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[1.0, 1e-4]])
    assert knn_score(q, b, 1).item() == pytest.approx(-1e-4, rel=1e-3)


def test_knn_bad_k():
    bank = torch.randn(5, 4)
    with pytest.raises(ValueError, match=r"k=6 is larger than the bank size \(5 features\)"):
        knn_score(torch.randn(3, 4), bank, k=6)
    with pytest.raises(ValueError, match="k must be >= 1, got k=0"):
        knn_score(torch.randn(3, 4), bank, k=0)
    with pytest.raises(ValueError, match="query_features have dim 3 but bank_features have dim 4"):
        knn_score(torch.randn(3, 3), bank, k=1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scores_on_cuda_match_cpu():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(50, 10, generator=g) * 10
    q, b, t = torch.randn(70, 32, generator=g), torch.randn(40, 32, generator=g), torch.randn(10, 32, generator=g)
    for fn, args in [(energy_score, (logits,)), (max_logit_score, (logits,)), (mcm_score, (q, t)),
                     (lambda x, y: knn_score(x, y, 5, chunk_size=16), (q, b))]:
        cpu = fn(*args)
        gpu = fn(*(a.cuda() for a in args))
        assert gpu.is_cuda
        _close(gpu.cpu(), cpu, atol=1e-4)
    # metrics accept CUDA tensors
    assert ood_metrics(logits[:, 0].cuda(), logits[:, 1].cuda()) == pytest.approx(
        ood_metrics(logits[:, 0], logits[:, 1]))


def test_mcm_keeps_its_ranking_at_low_temperature():
    """At T=0.01 a float32 softmax saturates to exactly 1.0; croft's MCM must still rank the samples."""
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)
    # image features ever closer to class 0: the MCM score must increase strictly
    images = torch.stack([text[0] * (0.3 + 0.1 * i) + text[1] * 0.2 for i in range(6)])
    probabilities = torch.softmax((torch.nn.functional.normalize(images.double(), dim=-1) @ text.double().t()) / 0.01,
                                  dim=-1).max(-1).values
    assert (probabilities == 1.0).sum() >= 2  # even a float64 softmax ties them
    scores = mcm_score(images, text, temperature=0.01)
    assert scores.dtype == torch.float64
    assert torch.all(scores[1:] > scores[:-1])


def test_knn_distances_do_not_collapse_into_ties():
    bank = torch.nn.functional.normalize(torch.randn(50, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    # queries at tiny, distinct distances from one bank point
    queries = bank[:1] + torch.tensor([1e-4, 2e-4, 3e-4, 4e-4]).unsqueeze(1) * bank[1:2]
    scores = knn_score(queries, bank, k=1)
    assert scores.dtype == torch.float64
    assert len(set(scores.tolist())) == 4 and torch.all(scores[1:] < scores[:-1])
