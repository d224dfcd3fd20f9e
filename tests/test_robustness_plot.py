"""The effective-robustness plot (croft.results.robustness, tools/plot_robustness.py).

Runs are fabricated results.json files that record their settings as croft does; every expected
coordinate, fit and effective robustness is computed here from the fabricated accuracies with
``math`` and ``statistics``, and compared with the data the figure is drawn from and with the
artists on the figure's axes.
"""
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

from croft.config import get_cfg_default
from croft.engine.fingerprint import fingerprint_values, trainer_hparams
from croft.results.io import write_results_json
from croft.results.robustness import (ACC_EPS, POOLED, RobustnessError, plot_robustness, robustness_data,
                                      robustness_figure)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "plot_robustness.py")
DOMAINS = ["art_painting", "sketch"]
SEEDS = [1, 2]
VARIANTS = ["imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
BACKBONES = ["RN50", "ViT-B/32", "ViT-B/16"]
ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]
LAMBDAS = [10.0, 0.0]


def recorded(trainer, seed, domain, overrides=(), dataset="PACS"):
    cfg = get_cfg_default()
    cfg.merge_from_list(["TRAINER.NAME", trainer, "SEED", str(seed), "DATASET.NAME", dataset,
                         "TEST_ENV", f"test_on_{domain}.json" if domain else ""])
    cfg.merge_from_list([str(x) for kv in dict(overrides).items() for x in kv])
    return fingerprint_values(cfg)


def setup2_results(trainer, seed, domain, val, test, values, fingerprint):
    return {
        "schema_version": 2, "setup": "setup2", "trainer": trainer, "dataset": "PACS",
        "backbone": values["MODEL.BACKBONE.NAME"], "pretrained": "openai", "seed": seed, "shots": 16,
        "protocol": "standard", "source_domains": [d for d in DOMAINS if d != domain], "target_domains": [domain],
        "hparams": trainer_hparams(values), "fingerprint_values": values, "fingerprint": fingerprint,
        "training_fingerprint": fingerprint.split("-")[0],
        "closed_set": {"val_accuracy": val, "test_accuracy": test, "id_accuracy": test, "per_domain": {domain: test}},
        "open_set": {},
    }


# accuracies (val = ID, test = held-out domain) of each fabricated run
def zs_acc(b, seed, domain):
    di = DOMAINS.index(domain)
    return 60.0 + 12.0 * b + 1.5 * di + 0.25 * seed, 40.0 + 15.0 * b - 6.0 * di + 0.5 * seed - 0.1 * b * b


def croft_acc(k, seed, domain):
    di = DOMAINS.index(domain)
    return 88.0 + 2.0 * k + 0.5 * seed + di, 75.0 - 4.0 * k + 1.25 * seed - 3.0 * di


def ft_acc(alpha, seed, domain):
    """WiSE-FT: α=0 is zero-shot CLIP (the RN50 point), α=1 the fine-tuned model; OOD peaks in between."""
    zs_val, zs_test = zs_acc(0, seed, domain)
    return zs_val + 30.0 * alpha - 8.0 * alpha * alpha, zs_test + 20.0 * alpha - 16.0 * alpha * alpha


def write_stage(folder, record):
    with open(os.path.join(folder, "stage.json"), "w") as f:
        json.dump(record, f)


def write_pacs(root, alphas=ALPHAS, zs_backbones=BACKBONES):
    """ZeroshotCLIP (one point per backbone), CRoFT (two λ2 settings, each with an open-set evaluation stage whose
    closed-set numbers must not be used), FT with WiSE-FT stages; seeds 1-2, held-out art_painting and sketch."""
    for domain in DOMAINS:
        for seed in SEEDS:
            for b, backbone in enumerate(zs_backbones):
                values = recorded("ZeroshotCLIP", seed, domain, {"MODEL.BACKBONE.NAME": backbone})
                write_results_json(os.path.join(root, "ZeroshotCLIP", backbone.replace("/", ""), domain, f"seed{seed}"),
                                   setup2_results("ZeroshotCLIP", seed, domain, *zs_acc(b, seed, domain), values,
                                                  f"zs{b}{domain}{seed}"))
            for k, lam in enumerate(LAMBDAS):
                values = recorded("CRoFT", seed, domain, {"TRAINER.CRoFT.lambda2": lam})
                run = os.path.join(root, "CRoFT", f"lambda2_{lam:g}", domain, f"seed{seed}")
                fp = f"croft{k}{domain}{seed}"
                write_results_json(run, setup2_results("CRoFT", seed, domain, *croft_acc(k, seed, domain), values, fp))
                stage_values = dict(values, **{"TRAINER.CRoFT.EVAL_RATIO": 0.5})
                write_results_json(os.path.join(run, "eval_ood-1"),
                                   setup2_results("CRoFT", seed, domain, 1.0, 99.0, stage_values, fp + "-eval"))
                write_stage(os.path.join(run, "eval_ood-1"), {"stage": "eval_ood", "stage_of": "..", "use": ["open_set"],
                                                              "fingerprint": fp + "-eval"})
                write_stage(run, {"stage": "train", "stages": {"eval_ood": {"folder": "eval_ood-1", "use": ["open_set"],
                                                                            "fingerprint": fp + "-eval"}}})
            if alphas:
                base = recorded("FT", seed, domain)
                run = os.path.join(root, "FT", domain, f"seed{seed}")
                ft_fp = f"ft{domain}{seed}"
                # the training run evaluates the fine-tuned model (α = 1); its α=1 stage is the same evaluation
                write_results_json(run, setup2_results("FT", seed, domain, *ft_acc(1.0, seed, domain),
                                                       dict(base, **{"TRAINER.FT.WISE_ALPHA": 1.0}), f"{ft_fp}-a1"))
                for i, alpha in enumerate(alphas):
                    folder = os.path.join(run, f"wise-{'dbeca'[i]}")  # found in another order than α
                    write_results_json(folder, setup2_results("FT", seed, domain, *ft_acc(alpha, seed, domain),
                                                              dict(base, **{"TRAINER.FT.WISE_ALPHA": alpha}),
                                                              f"{ft_fp}-a{alpha:g}"))
                    write_stage(folder, {"stage": "wise", "stage_of": "..", "use": ["closed_set"],
                                         "overrides": {"TRAINER.FT.WISE_ALPHA": alpha}})
    return root


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    return write_pacs(str(tmp_path_factory.mktemp("robustness") / "output"))


def lg(acc):
    p = min(max(acc, ACC_EPS), 100 - ACC_EPS) / 100
    return math.log(p / (1 - p))


def sig(z):
    return 100 / (1 + math.exp(-z))


def mean_point(acc, domains=DOMAINS, seeds=SEEDS):
    """Seeds averaged within each held-out domain, then the domains."""
    val = statistics.mean(statistics.mean(acc(s, d)[0] for s in seeds) for d in domains)
    test = statistics.mean(statistics.mean(acc(s, d)[1] for s in seeds) for d in domains)
    return val, test


def least_squares(points):
    xs, ys = [lg(x) for x, _ in points], [lg(y) for _, y in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def by_label(panel):
    return {p.label: p for p in panel.points}


def test_setup2_points_fit_effective_robustness_and_wise_curve(pacs):
    data = robustness_data([pacs])
    assert data.setup == "setup2" and [p.name for p in data.panels] == [POOLED]
    panel = data.panels[0]
    points = by_label(panel)
    zs = {}
    for b, backbone in enumerate(BACKBONES):
        p = points[f"ZeroshotCLIP MODEL.BACKBONE.NAME={backbone}"]
        zs[backbone] = mean_point(lambda s, d: zs_acc(b, s, d))
        assert (p.x, p.y) == pytest.approx(zs[backbone], abs=1e-9)
        assert p.baseline and p.n_runs == 4 and p.seeds == SEEDS and p.units == DOMAINS
    for k, lam in enumerate(LAMBDAS):
        p = points[f"CRoFT λ2={lam:g}"]
        assert (p.x, p.y) == pytest.approx(mean_point(lambda s, d: croft_acc(k, s, d)), abs=1e-9)
        assert not p.baseline and p.n_runs == 4  # the eval_ood stage's closed set (1 / 99 %) is not used

    slope, intercept = least_squares(list(zs.values()))
    fit = panel.fit
    assert (fit.slope, fit.intercept) == pytest.approx((slope, intercept), rel=1e-9)
    assert fit.n_points == 3 and fit.baselines == ["ZeroshotCLIP"]
    assert np.allclose(fit.ys, [sig(slope * lg(x) + intercept) for x in fit.xs])
    assert fit.xs[0] <= min(p.x for p in panel.points) and fit.xs[-1] >= max(p.x for p in panel.points)
    for p in panel.points:
        assert p.effective_robustness == pytest.approx(p.y - sig(slope * lg(p.x) + intercept), abs=1e-9)
    p = points["CRoFT λ2=10"]
    assert p.effective_robustness > 0  # high above the zero-shot line in this fabricated sweep

    [curve] = panel.curves
    assert curve.label == "FT (WiSE-FT)" and curve.alphas == ALPHAS
    for point, alpha in zip(curve.points, ALPHAS):
        assert (point.x, point.y) == pytest.approx(mean_point(lambda s, d: ft_acc(alpha, s, d)), abs=1e-9)
        assert point.label == f"FT α={alpha:g}" and point.n_runs == 4  # training run and α=1 stage counted once
    assert (curve.points[0].x, curve.points[0].y) == pytest.approx(zs["RN50"], abs=1e-9)  # α=0 is zero-shot
    assert not any("same settings" in w for w in data.warnings), data.warnings
    assert len(panel.points) == 3 + 2 + 5


def test_the_figure_draws_the_data_on_logit_axes(pacs):
    data = robustness_data([pacs])
    fig = robustness_figure(data)
    [ax] = [a for a in fig.axes if a.get_visible()]
    panel = data.panels[0]
    assert ax.get_xscale() == "function" and ax.get_yscale() == "function"
    for axis in (ax.xaxis, ax.yaxis):  # logit: 75 % -> log 3, 50 % -> 0
        assert axis.get_transform().transform(np.array([75.0, 50.0])) == pytest.approx([math.log(3), 0.0])
    lines = {line.get_label(): line for line in ax.get_lines()}
    curve = panel.curves[0]
    assert list(lines[curve.label].get_xdata()) == [p.x for p in curve.points]  # connected in α order
    assert list(lines[curve.label].get_ydata()) == [p.y for p in curve.points]
    fit_line = lines["fit through ZeroshotCLIP (logit)"]
    assert np.array_equal(fit_line.get_xdata(), panel.fit.xs) and np.array_equal(fit_line.get_ydata(), panel.fit.ys)
    diag = lines["y = x"]
    assert np.allclose(diag.get_xdata(), diag.get_ydata())
    scattered = {c.get_label(): c.get_offsets()[0] for c in ax.collections}
    for p in panel.points:
        if p.alpha is None:
            assert tuple(scattered[p.label]) == pytest.approx((p.x, p.y))
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"α={a:g}" for a in ALPHAS]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "FT (WiSE-FT)" in legend and "CRoFT λ2=10" in legend
    x0, x1 = ax.get_xlim()
    assert x0 <= min(p.x for p in panel.points) and x1 >= max(p.x for p in panel.points)


def test_per_domain_panels_fit_each_held_out_domain(pacs):
    data = robustness_data([pacs], per_domain=True)
    assert [p.name for p in data.panels] == DOMAINS
    for panel in data.panels:
        points = by_label(panel)
        zs = [mean_point(lambda s, d: zs_acc(b, s, d), domains=[panel.name]) for b in range(len(BACKBONES))]
        assert (points["ZeroshotCLIP MODEL.BACKBONE.NAME=ViT-B/32"].x,
                points["ZeroshotCLIP MODEL.BACKBONE.NAME=ViT-B/32"].y) == pytest.approx(zs[1])
        assert (panel.fit.slope, panel.fit.intercept) == pytest.approx(least_squares(zs), rel=1e-9)
        assert panel.curves[0].alphas == ALPHAS and points["CRoFT λ2=0"].n_runs == 2
    fig = robustness_figure(data)
    assert [a.get_title() for a in fig.axes if a.get_visible()] == [f"held out: {d}" for d in DOMAINS]


def test_every_run_gives_one_point_per_run_and_one_curve_per_trained_model(pacs):
    data = robustness_data([pacs], every_run=True)
    panel = data.panels[0]
    assert len([p for p in panel.points if p.alpha is None]) == (len(BACKBONES) + len(LAMBDAS)) * 4
    assert len(panel.curves) == 4 and all(c.alphas == ALPHAS for c in panel.curves)
    p = by_label(panel)["CRoFT λ2=0 seed 2 sketch"]
    assert (p.x, p.y) == croft_acc(1, 2, "sketch") and p.n_runs == 1
    curve = next(c for c in panel.curves if c.label == "FT seed 1 art_painting (WiSE-FT)")
    assert [(q.x, q.y) for q in curve.points] == [ft_acc(a, 1, "art_painting") for a in ALPHAS]
    # 12 zero-shot runs: the fit is through every run, not through their means
    zs = [zs_acc(b, s, d) for b in range(len(BACKBONES)) for d in DOMAINS for s in SEEDS]
    assert (panel.fit.slope, panel.fit.intercept) == pytest.approx(least_squares(zs), rel=1e-9)


def test_other_baselines_and_no_fit_with_one_baseline_point(tmp_path):
    root = write_pacs(str(tmp_path / "out"), alphas=(), zs_backbones=["RN50"])
    warnings = []
    data = robustness_data([root], warnings=warnings)
    assert data.panels[0].fit is None and all(p.effective_robustness is None for p in data.panels[0].points)
    assert any("no fit line: 1 point(s) of ZeroshotCLIP" in w for w in warnings)
    data = robustness_data([root], baselines=["CRoFT"])
    croft = [(p.x, p.y) for p in data.panels[0].points if p.trainer == "CRoFT"]
    assert {p.label: p.baseline for p in data.panels[0].points} == {
        "ZeroshotCLIP": False, "CRoFT λ2=10": True, "CRoFT λ2=0": True}
    assert (data.panels[0].fit.slope, data.panels[0].fit.intercept) == pytest.approx(least_squares(croft), rel=1e-9)
    with pytest.raises(RobustnessError, match=r"--baseline: no runs of trainer CoOp under the folders given "
                                              r"\(trainers found: CRoFT, ZeroshotCLIP\)"):
        robustness_data([root], baselines=["CoOp"])


def test_a_missing_run_does_not_reweight_the_held_out_domains(tmp_path):
    root = write_pacs(str(tmp_path / "out"), alphas=(), zs_backbones=["RN50"])
    os.remove(os.path.join(root, "CRoFT", "lambda2_0", "sketch", "seed2", "results.json"))
    for seed in SEEDS:
        os.remove(os.path.join(root, "CRoFT", "lambda2_10", "sketch", f"seed{seed}", "results.json"))
    warnings = []
    points = by_label(robustness_data([root], warnings=warnings).panels[0])
    p = points["CRoFT λ2=0"]
    art = [croft_acc(1, s, "art_painting") for s in SEEDS]
    sketch = croft_acc(1, 1, "sketch")
    assert (p.x, p.y) == pytest.approx(((statistics.mean(a[0] for a in art) + sketch[0]) / 2,
                                        (statistics.mean(a[1] for a in art) + sketch[1]) / 2), abs=1e-9)
    assert p.n_runs == 3 and p.units == DOMAINS
    assert points["CRoFT λ2=10"].units == ["art_painting"]
    assert any(w.startswith("CRoFT λ2=10: held-out domain(s) art_painting only (others: art_painting, sketch)")
               for w in warnings), warnings


def setup1_results(trainer, seed, test, variants, values, fingerprint):
    return {
        "schema_version": 2, "setup": "setup1", "trainer": trainer, "dataset": "ImageNet46", "backbone": "ViT-B/16",
        "pretrained": "openai", "seed": seed, "shots": 16, "protocol": "standard", "source_domains": ["imagenet"],
        "target_domains": [], "hparams": trainer_hparams(values), "fingerprint_values": values,
        "fingerprint": fingerprint, "training_fingerprint": fingerprint,
        "closed_set": {"val_accuracy": 1.0, "test_accuracy": test, "per_domain": dict(zip(VARIANTS, variants)),
                       "average_accuracy": statistics.mean(variants)},
        "open_set": {},
    }


def in_acc(trainer_index, shots, seed):
    t = trainer_index
    test = 50.0 + 10.0 * t + 3.0 * shots ** 0.5 + seed
    return test, [test - 20.0 + 3.0 * i - 2.0 * t + 0.5 * seed + (shots % 3) for i in range(len(VARIANTS))]


def test_setup1_imagenet_accuracy_against_the_mean_of_the_variants(tmp_path):
    root = tmp_path / "out"
    trainers = ["ZeroshotCLIP", "CoOp"]
    for t, trainer in enumerate(trainers):
        for shots in (1, 16):
            for seed in SEEDS:
                values = recorded(trainer, seed, "", {"DATASET.NUM_SHOTS": shots}, dataset="ImageNet46")
                write_results_json(str(root / trainer / f"shots{shots}" / f"seed{seed}"),
                                   setup1_results(trainer, seed, *in_acc(t, shots, seed), values, f"{t}{shots}{seed}"))
    data = robustness_data([str(root)], baselines=["ZeroshotCLIP", "CoOp"])
    assert data.setup == "setup1" and "ImageNet46" in data.xlabel and "imagenet_r" in data.ylabel
    points = by_label(data.panels[0])
    for t, trainer in enumerate(trainers):
        for shots in (1, 16):
            p = points[f"{trainer} DATASET.NUM_SHOTS={shots}"]
            x = statistics.mean(in_acc(t, shots, s)[0] for s in SEEDS)
            y = statistics.mean(statistics.mean(in_acc(t, shots, s)[1]) for s in SEEDS)
            assert (p.x, p.y) == pytest.approx((x, y), abs=1e-9) and p.baseline
    assert data.panels[0].fit.n_points == 4
    per_variant = robustness_data([str(root)], per_domain=True)
    assert [p.name for p in per_variant.panels] == VARIANTS
    p = by_label(per_variant.panels[2])["CoOp DATASET.NUM_SHOTS=16"]
    assert (p.x, p.y) == pytest.approx((statistics.mean(in_acc(1, 16, s)[0] for s in SEEDS),
                                        statistics.mean(in_acc(1, 16, s)[1][2] for s in SEEDS)), abs=1e-9)


def test_accuracies_of_0_and_100_are_clipped_for_the_logit(tmp_path):
    root = tmp_path / "out"
    for b, (val, test) in enumerate([(100.0, 0.0), (50.0, 40.0)]):
        values = recorded("ZeroshotCLIP", 1, "sketch", {"MODEL.BACKBONE.NAME": BACKBONES[b]})
        write_results_json(str(root / f"zs{b}"), setup2_results("ZeroshotCLIP", 1, "sketch", val, test, values, f"z{b}"))
    warnings = []
    data = robustness_data([str(root)], warnings=warnings)
    p = data.panels[0].points[0]
    assert (p.x, p.y) == (100 - ACC_EPS, ACC_EPS) and (p.id_accuracy, p.ood_accuracy) == (100.0, 0.0)
    assert any("ZeroshotCLIP MODEL.BACKBONE.NAME=RN50: accuracy 100/0 % clipped to [0.1, 99.9] %" in w
               for w in warnings)
    fit = data.panels[0].fit
    assert math.isfinite(fit.slope) and (fit.slope, fit.intercept) == pytest.approx(
        least_squares([(100 - ACC_EPS, ACC_EPS), (50.0, 40.0)]))
    assert np.isfinite(fit.ys).all()
    robustness_figure(data)


def test_bad_runs_are_skipped_with_a_line_naming_the_file_and_key(tmp_path):
    root = tmp_path / "out"
    good = recorded("ZeroshotCLIP", 1, "sketch")
    write_results_json(str(root / "good"), setup2_results("ZeroshotCLIP", 1, "sketch", 60.0, 50.0, good, "g"))
    no_val = setup2_results("ZeroshotCLIP", 2, "sketch", None, 50.0, recorded("ZeroshotCLIP", 2, "sketch"), "n")
    write_results_json(str(root / "no_val"), no_val)
    bad_alpha = setup2_results("FT", 1, "sketch", 60.0, 50.0, dict(recorded("FT", 1, "sketch"),
                                                                     **{"TRAINER.FT.WISE_ALPHA": 1.5}), "b")
    write_results_json(str(root / "bad_alpha"), bad_alpha)
    write_results_json(str(root / "bad_alpha" / "wise-1"), bad_alpha)
    write_stage(str(root / "bad_alpha" / "wise-1"), {"stage": "wise", "stage_of": "..", "use": ["closed_set"]})
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text("{")
    warnings = []
    data = robustness_data([str(root)], warnings=warnings)
    assert [p.label for p in data.panels[0].points] == ["ZeroshotCLIP"]
    text = "\n".join(warnings)
    assert f"{root / 'no_val' / 'results.json'}: closed_set.val_accuracy = None; expected an accuracy in %" in text
    for path in (root / "bad_alpha" / "results.json", root / "bad_alpha" / "wise-1" / "results.json"):
        assert f"{path}: fingerprint_values.TRAINER.FT.WISE_ALPHA = 1.5; expected a number in [0, 1]" in text
    assert f"{root / 'broken' / 'results.json'}: invalid JSON" in text


def test_an_evaluation_stage_alone_is_no_point(pacs):
    stage = os.path.join(pacs, "CRoFT", "lambda2_10", "sketch", "seed1", "eval_ood-1")
    warnings = []
    with pytest.raises(RobustnessError, match="no usable results.json"):
        robustness_data([stage], warnings=warnings)
    assert any("evaluation stage eval_ood of" in w and "give that run's folder" in w for w in warnings)


# ---------------------------------------------------------------------------------------------
# the command line

def run_tool(*args, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_cli_writes_png_and_pdf_and_prints_the_points(pacs, tmp_path):
    proc = run_tool(pacs, "--output", tmp_path / "fig.pdf")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fig.pdf").stat().st_size > 1000
    data = robustness_data([pacs])
    lines = proc.stdout.splitlines()
    for p in data.panels[0].points:
        row = next(line for line in lines if f" {p.label} " in f" {line} ".replace(" [baseline]", " "))
        assert f"{p.id_accuracy:.2f}" in row and f"{p.ood_accuracy:.2f}" in row
        assert f"{p.effective_robustness:+.2f}" in row
    assert f"logit(OOD) = {data.panels[0].fit.slope:.4f} * logit(ID)" in proc.stdout
    proc = run_tool(pacs, "--per-domain", cwd=tmp_path)  # default output: robustness.png
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "robustness.png").stat().st_size > 1000 and "2 panel(s)" in proc.stderr


@pytest.fixture(scope="module")
def tool_main():
    spec = importlib.util.spec_from_file_location("plot_robustness_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("case", ["empty", "missing", "mixed", "datasets", "baseline", "suffix"])
def test_cli_errors(case, pacs, tmp_path, tool_main, capsys):
    (tmp_path / "empty" / "run").mkdir(parents=True)
    setup1 = tmp_path / "in46"
    values = recorded("ZeroshotCLIP", 1, "", dataset="ImageNet46")
    write_results_json(str(setup1), setup1_results("ZeroshotCLIP", 1, 60.0, [40.0] * 4, values, "i"))
    vlcs = tmp_path / "vlcs"
    values = recorded("ZeroshotCLIP", 1, "sun", {"DATASET.NAME": "VLCS"})
    write_results_json(str(vlcs), dict(setup2_results("ZeroshotCLIP", 1, "sun", 70.0, 60.0, values, "v"), dataset="VLCS"))
    argv, status, message = {
        "empty": ([tmp_path / "empty"], 1, f"error: no results.json under {tmp_path / 'empty'} "
                                           "(expected finished run folders, or a folder above them)"),
        "missing": ([tmp_path / "nope"], 1, f"error: {tmp_path / 'nope'}: no such run folder"),
        "mixed": ([pacs, setup1], 1, f"error: runs of mixed setups: setup2 (PACS, e.g. {pacs}"),
        "datasets": ([pacs, vlcs], 1, f"error: runs of several datasets: PACS (e.g. {pacs}"),
        "baseline": ([pacs, "--baseline", "CoOp,ZeroshotCLIP"], 2, "error: --baseline: no runs of trainer CoOp"),
        "suffix": ([pacs, "--output", tmp_path / "x.jpg"], 2, f"error: --output {tmp_path / 'x.jpg'}: expected a "
                                                              "file name ending in .png, .pdf, .svg"),
    }[case]
    assert tool_main([str(a) for a in argv]) == status
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), err
    assert "Traceback" not in err
    if case == "mixed":
        assert f"setup1 (ImageNet46, e.g. {setup1 / 'results.json'})" in errors[0]
    if case == "datasets":
        assert errors[0].endswith(f"VLCS (e.g. {vlcs / 'results.json'}); plot one dataset at a time")
    assert not list(tmp_path.glob("*.png"))
