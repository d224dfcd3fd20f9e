"""results.json / scores.npz I/O, the results table (collect + formats + CLI) and the plots.

The expected numbers are computed here from the fabricated per-run values with the
``statistics`` module (population std), independently of croft's aggregation code.
"""
import csv
import io
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

from croft.config import get_cfg_default
from croft.engine.fingerprint import fingerprint_values, trainer_hparams
from croft.results.collect import collect, format_hparams, format_notes, format_table
from croft.results.io import (load_scores, read_results_json, save_scores, write_results_json)
from croft.results.plots import energy_series, plot_run, plot_runs, roc_series, run_titles, series_colours

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DOMAINS = ["sketch", "photo", "cartoon", "art_painting"]  # index = di
SOURCES = {d: sorted(set(DOMAINS) - {d}) for d in DOMAINS}
DOM_OFF = {"sketch": 8.1, "photo": 12.46, "cartoon": 2.7, "art_painting": 5.3}
TRAINER_BASE = {"CRoFT": 80.0, "CoOp": 70.0}
# config overrides per trainer and setting. CRoFT: A lambda2=10, B lambda2=1 (test favours B by +2),
# C lambda2=100 (partial); CoOp: A and B differ in N_CTX
CROFT_BASE = {"TRAINER.CRoFT.lambda1": 15.0, "TRAINER.CRoFT.gen_step": 0}
SETTINGS = {("CRoFT", "A"): dict(CROFT_BASE, **{"TRAINER.CRoFT.lambda2": 10.0}),
            ("CRoFT", "B"): dict(CROFT_BASE, **{"TRAINER.CRoFT.lambda2": 1.0}),
            ("CRoFT", "C"): dict(CROFT_BASE, **{"TRAINER.CRoFT.lambda2": 100.0}),
            ("CoOp", "A"): {"TRAINER.COOP.N_CTX": 16}, ("CoOp", "B"): {"TRAINER.COOP.N_CTX": 4}}
SETTING_OFF = {"A": 0.0, "B": 2.0, "C": 1.0}
# val favours A for CRoFT (although test favours B) and B for CoOp
VAL = {("CRoFT", "A"): 96.0, ("CRoFT", "B"): 94.0, ("CRoFT", "C"): 90.0,
       ("CoOp", "A"): 91.0, ("CoOp", "B"): 93.0}
SEEDS = [1, 2]
OOD_SETS = ["DTD", "Food101"]


def acc_of(trainer, setting, domain, seed):
    di = DOMAINS.index(domain)
    noise = (1.0 + 0.5 * di) * (-1.0 if seed == 1 else 1.0)
    return TRAINER_BASE[trainer] + SETTING_OFF[setting] + DOM_OFF[domain] + noise


def val_acc(trainer, setting, domain, seed):
    return VAL[(trainer, setting)] + 0.1 * DOMAINS.index(domain) + 0.2 * seed


def ood_metric(trainer, setting, domain, seed, ood_set, score, metric):
    di = DOMAINS.index(domain)
    base = 90.0 if metric == "auroc" else 30.0
    sign = 1.0 if metric == "auroc" else -1.0
    return (base + sign * (TRAINER_BASE[trainer] - 70.0) / 5 + SETTING_OFF[setting] + 0.7 * di
            + 0.9 * seed * seed + (1.5 if ood_set == "Food101" else 0.0) + (0.4 if score == "mcm" else 0.0))


def recorded(trainer, setting, domain, seed):
    """The run's ``fingerprint_values`` as croft records them."""
    cfg = get_cfg_default()
    cfg.merge_from_list(["TRAINER.NAME", trainer, "SEED", str(seed), "DATASET.NAME", "PACS",
                         "TEST_ENV", f"test_on_{domain}.json"])
    cfg.merge_from_list([str(x) for kv in SETTINGS[(trainer, setting)].items() for x in kv])
    return fingerprint_values(cfg)


def hparams_of(trainer, setting):
    return trainer_hparams(recorded(trainer, setting, "sketch", 1))


def make_results(trainer, setting, domain, seed):
    open_set = {s: {score: {m: ood_metric(trainer, setting, domain, seed, s, score, m) for m in ("auroc", "fpr95")}
                    | {"aupr_in": 90.0, "aupr_out": 89.0}
                    for score in ("energy", "mcm")} for s in OOD_SETS}
    acc = acc_of(trainer, setting, domain, seed)
    return {
        "trainer": trainer, "dataset": "PACS", "backbone": "RN50", "pretrained": "openai",
        "seed": seed, "shots": 16, "protocol": "standard",
        "source_domains": SOURCES[domain], "target_domains": [domain],
        "hparams": hparams_of(trainer, setting), "fingerprint_values": recorded(trainer, setting, domain, seed),
        "best_epoch": 17,
        "closed_set": {"val_accuracy": val_acc(trainer, setting, domain, seed), "test_accuracy": acc,
                       "per_domain": {domain: acc}},
        "open_set": open_set,
        "timing": {"train_s": 41.2, "eval_s": 9.8, "feature_cache_hits": 11834},
    }


def runs_of(trainer, setting):
    """The (domain, seed) pairs fabricated for one setting (C lacks sketch for seed 2)."""
    pairs = [(d, s) for d in DOMAINS for s in SEEDS]
    if setting == "C":
        pairs.remove(("sketch", 2))
    return pairs


SETUPS = [("CRoFT", "A"), ("CRoFT", "B"), ("CoOp", "A"), ("CoOp", "B"), ("CRoFT", "C")]


def run_dir(root, trainer, setting, domain, seed):
    return os.path.join(root, trainer, f"PACS_rn50_{setting}", f"test_on_{domain}.json", f"seed{seed}", "shots16")


@pytest.fixture
def sweep(tmp_path):
    root = str(tmp_path / "output")
    for trainer, setting in SETUPS:
        for domain, seed in runs_of(trainer, setting):
            d = run_dir(root, trainer, setting, domain, seed)
            write_results_json(d, make_results(trainer, setting, domain, seed))
            with open(os.path.join(d, "log.txt"), "w") as f:
                f.write("not read\n")
    incomplete = os.path.join(root, "CRoFT", "PACS_rn50_15_1000", "test_on_photo.json", "seed1", "shots16")
    os.makedirs(incomplete)
    with open(os.path.join(incomplete, "config.yaml"), "w") as f:
        f.write("SEED: 1\n")
    bad = os.path.join(root, "CRoFT", "broken", "seed1")
    os.makedirs(bad)
    with open(os.path.join(bad, "results.json"), "w") as f:
        f.write('{"trainer": "CRoFT", "dataset": ')
    nokey = os.path.join(root, "CRoFT", "nokey", "seed1")
    os.makedirs(nokey)
    with open(os.path.join(nokey, "results.json"), "w") as f:
        json.dump({"trainer": "CRoFT", "dataset": "PACS", "closed_set": {}}, f)
    return {"root": root, "incomplete": incomplete, "bad": os.path.join(bad, "results.json"),
            "nokey": os.path.join(nokey, "results.json")}


def find_row(rows, trainer, setting):
    match = [r for r in rows if r["trainer"] == trainer and r["hparams"] == hparams_of(trainer, setting)]
    assert len(match) == 1, (trainer, setting, [(r["trainer"], r["hparams"]) for r in rows])
    return match[0]


def expected_avg(trainer, setting, metric_fn):
    """Per seed mean over the 4 domains (complete seeds only), then mean and pstdev."""
    pairs = set(runs_of(trainer, setting))
    per_seed = [statistics.mean(metric_fn(trainer, setting, d, s) for d in DOMAINS)
                for s in SEEDS if all((d, s) in pairs for d in DOMAINS)]
    return statistics.mean(per_seed), statistics.pstdev(per_seed), len(per_seed)


# ---------------------------------------------------------------------------------------------
# collect

def test_collect_means_and_stds(sweep):
    rows = collect(sweep["root"])
    assert len(rows) == 5
    for trainer, setting in SETUPS:
        row = find_row(rows, trainer, setting)
        assert row["n_seeds"] == 2 and row["seeds"] == [1, 2]
        assert row["domains"] == sorted(DOMAINS)
        pairs = set(runs_of(trainer, setting))
        for d in DOMAINS:
            vals = [acc_of(trainer, setting, d, s) for s in SEEDS if (d, s) in pairs]
            cell = row["per_domain"][d]
            assert cell["mean"] == pytest.approx(statistics.mean(vals), abs=1e-9)
            assert cell["std"] == pytest.approx(statistics.pstdev(vals), abs=1e-9)
            assert cell["n"] == len(vals)
        mean, std, n = expected_avg(trainer, setting, acc_of)
        assert row["avg"]["mean"] == pytest.approx(mean, abs=1e-9)
        assert row["avg"]["std"] == pytest.approx(std, abs=1e-9)
        assert row["avg"]["n"] == n
        assert row["avg_partial"] == (setting == "C")
        vmean, vstd, _ = expected_avg(trainer, setting, val_acc) if setting != "C" else (None, None, None)
        if vmean is not None:
            assert row["val"]["mean"] == pytest.approx(vmean, abs=1e-9)
        for ood_set in OOD_SETS:
            for score in ("energy", "mcm"):
                for metric in ("auroc", "fpr95"):
                    fn = (lambda t, st, d, s, o=ood_set, sc=score, m=metric: ood_metric(t, st, d, s, o, sc, m))
                    mean, std, n = expected_avg(trainer, setting, fn)
                    stat = row["open_set"][ood_set][score][metric]
                    assert stat["mean"] == pytest.approx(mean, abs=1e-9)
                    assert stat["std"] == pytest.approx(std, abs=1e-9)
                    assert stat["n"] == n and stat["partial"] == (setting == "C")


def test_collect_hand_checked_numbers(sweep):
    rows = collect(sweep["root"])
    a = find_row(rows, "CRoFT", "A")
    # sketch: 80 + 8.1 -/+ 1 -> 87.1, 89.1
    assert (a["per_domain"]["sketch"]["mean"], a["per_domain"]["sketch"]["std"]) == pytest.approx((88.1, 1.0))
    # seed 1: (87.1 + 90.96 + 80.7 + 82.8) / 4 = 85.39; seed 2: (89.1 + 93.96 + 84.7 + 87.8) / 4 = 88.89
    assert (a["avg"]["mean"], a["avg"]["std"]) == pytest.approx((87.14, 1.75))
    assert a["setting_str"] == "λ2=10" and a["setting"] == [("TRAINER.CRoFT.lambda2", 10)]
    c = find_row(rows, "CRoFT", "C")
    # partial setting: sketch only seed 1 (81 + 8.1 - 1), average over seed 1 only
    assert c["per_domain"]["sketch"]["mean"] == pytest.approx(88.1)
    assert c["per_domain"]["sketch"]["n"] == 1 and c["per_domain"]["sketch"]["partial"]
    assert c["avg"]["n"] == 1 and c["avg"]["std"] == 0.0 and c["avg_partial"]
    assert c["avg"]["mean"] == pytest.approx((88.1 + 91.96 + 81.7 + 83.8) / 4)


def test_collect_reports_incomplete_and_malformed(sweep):
    rows = collect(sweep["root"])
    assert rows.incomplete == [sweep["incomplete"]]
    bad = dict(rows.malformed)
    assert set(bad) == {sweep["bad"], sweep["nokey"]}
    assert "invalid JSON" in bad[sweep["bad"]]
    assert "seed" in bad[sweep["nokey"]]
    # no row averages anything from the incomplete or malformed folders
    for row in rows:
        assert all("broken" not in p and "nokey" not in p and "_1000" not in p for p in row["run_paths"])
    text = format_table(rows, "md")
    assert sweep["incomplete"] in text and sweep["bad"] in text
    assert text.index("Incomplete runs") > text.index("| Method")


def test_select_val_uses_validation_not_test(sweep):
    rows = collect(sweep["root"], select="val")
    assert len(rows) == 2
    croft = [r for r in rows if r["trainer"] == "CRoFT"]
    coop = [r for r in rows if r["trainer"] == "CoOp"]
    # CRoFT: B has the better test accuracy, A the better val accuracy -> A
    assert len(croft) == 1 and croft[0]["hparams"] == hparams_of("CRoFT", "A")
    assert find_row(collect(sweep["root"]), "CRoFT", "B")["avg"]["mean"] > croft[0]["avg"]["mean"]
    assert len(coop) == 1 and coop[0]["hparams"] == hparams_of("CoOp", "B")
    assert "best mean closed_set.val_accuracy" in format_table(rows, "md")


def test_formats_render(sweep):
    rows = collect(sweep["root"])
    md = format_table(rows, "md", wide=True)  # the full table (the default is the compact one: tests/test_tables.py)
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.startswith("| Method | setting | n_seeds | art_painting | cartoon | photo | sketch | Avg | ")
    assert "88.10 ± 1.00" in md and "87.14 ± 1.75" in md
    assert "DTD energy AUROC" in md and "Food101 mcm FPR95" in md
    assert "ddof=0" in md
    line_c = next(line for line in md.splitlines() if "λ2=100" in line)
    assert "88.10 ± 0.00†" in line_c and "86.39 ± 0.00*" in line_c

    text = format_table(rows, "csv", wide=True)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 5
    a = next(r for r in parsed if r["Method"] == "CRoFT" and r["setting"] == "λ2=10")
    assert [float(a[k]) for k in ("sketch mean", "sketch std", "Avg mean", "Avg std")] == pytest.approx(
        [88.1, 1.0, 87.14, 1.75])
    assert a["Dataset"] == "PACS" and a["n_seeds"] == "2" and a["Shots"] == "16" and a["TRAINER.CRoFT.lambda2"] == "10"
    assert sweep["incomplete"] not in text and "incomplete," + sweep["incomplete"] in format_notes(rows, wide=True)

    tex = format_table(rows, "latex")
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex
    assert "88.10 $\\pm$ 1.00" in tex and "$\\lambda_{2}$=10" in tex
    assert "art\\_painting" in tex and "±" not in tex
    assert "% Incomplete runs" in tex

    only_energy = format_table(rows, "md", scores=["energy"], wide=True)
    assert "DTD energy AUROC" in only_energy and "mcm" not in only_energy


def test_setup1_variants_are_columns(tmp_path):
    variants = {"imagenet_v2": 60.0, "imagenet_sketch": 45.0, "imagenet_a": 50.0, "imagenet_r": 75.0}
    for seed in (1, 2, 3):
        per_domain = {k: v + seed for k, v in variants.items()}
        write_results_json(str(tmp_path / f"seed{seed}"), {
            "trainer": "CRoFT", "dataset": "ImageNet46", "backbone": "ViT-B/16", "pretrained": "openai",
            "seed": seed, "shots": 16, "hparams": {"lambda1": 5.0, "lambda2": 5},
            "source_domains": [], "target_domains": [],
            "closed_set": {"val_accuracy": 70.0, "test_accuracy": 71.0, "per_domain": per_domain},
            "open_set": {"iNaturalist": {"energy": {"auroc": 90.0 + seed, "fpr95": 40.0}}}})
    rows = collect(str(tmp_path))
    assert len(rows) == 1
    row = rows[0]
    assert row["domains"] == sorted(variants) and row["protocol"] == "standard"
    assert row["hparams_str"] == "λ1=5 λ2=5"
    for k, v in variants.items():
        assert row["per_domain"][k]["mean"] == pytest.approx(v + 2)
        assert row["per_domain"][k]["std"] == pytest.approx(statistics.pstdev([1, 2, 3]))
    assert row["avg"]["mean"] == pytest.approx(statistics.mean(variants.values()) + 2)
    assert row["open_set"]["iNaturalist"]["energy"]["auroc"]["mean"] == pytest.approx(92.0)
    md = format_table(rows, "md")
    assert "imagenet_sketch" in md and "ImageNet46" in md and "62.00 ± 0.82" in md


def test_duplicates_and_bad_values_are_reported(tmp_path):
    r = make_results("CRoFT", "A", "sketch", 1)
    write_results_json(str(tmp_path / "a"), r)
    write_results_json(str(tmp_path / "b"), dict(r, closed_set=dict(r["closed_set"], test_accuracy=0.0)))
    bad = dict(r, seed=2, closed_set={"val_accuracy": None, "test_accuracy": "n/a"})
    write_results_json(str(tmp_path / "c"), bad)
    write_results_json(str(tmp_path / "d"), dict(r, seed=3, closed_set={"test_accuracy": 50.0, "per_domain": [1]}))
    rows = collect(str(tmp_path))
    assert len(rows) == 1
    assert rows[0]["per_domain"]["sketch"]["mean"] == pytest.approx(r["closed_set"]["test_accuracy"])
    assert any("duplicate" in w and os.path.join(str(tmp_path), "b") in w for w in rows.warnings)
    assert any("test_accuracy" in w for w in rows.warnings)
    assert [p for p, _ in rows.malformed] == [os.path.join(str(tmp_path), "d", "results.json")]
    assert "Warnings" in format_table(rows, "md")


def test_format_hparams():
    assert format_hparams({"ratio": 0.2, "lambda2": 10.0, "lambda1": 15}) == "λ1=15 λ2=10 ratio=0.2"
    assert format_hparams({}) == ""
    assert format_hparams({"lambda1": 1, "ratio_text": 0.5}, latex=True) == "$\\lambda_{1}$=1 ratio\\_text=0.5"


def test_empty_root_and_unknown_format(tmp_path):
    rows = collect(str(tmp_path))
    assert list(rows) == []
    assert "No finished runs" in format_table(rows, "md")
    with pytest.raises(ValueError, match="unknown format"):
        format_table(rows, "xlsx")
    with pytest.raises(FileNotFoundError):
        collect(str(tmp_path / "missing"))


# ---------------------------------------------------------------------------------------------
# io

def test_write_results_json_atomic(tmp_path):
    out = str(tmp_path / "run")
    r = make_results("CRoFT", "A", "sketch", 1)
    path = write_results_json(out, r)
    assert os.listdir(out) == ["results.json"]
    before = open(path, "rb").read()
    assert read_results_json(path) == r and read_results_json(out) == r

    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_results_json(out, dict(r, timing={"bad": object()}))
    assert open(path, "rb").read() == before
    assert os.listdir(out) == ["results.json"]

    with pytest.raises(ValueError, match="'closed_set'"):
        write_results_json(out, {k: v for k, v in r.items() if k != "closed_set"})
    assert open(path, "rb").read() == before

    # numpy scalars and arrays are converted
    write_results_json(out, dict(r, best_epoch=np.int64(3), extra=np.arange(2), acc=np.float32(0.5)))
    back = read_results_json(path)
    assert back["best_epoch"] == 3 and back["extra"] == [0, 1] and back["acc"] == 0.5
    assert os.listdir(out) == ["results.json"]


@pytest.mark.parametrize("content, key", [
    ({"dataset": "PACS", "seed": 1, "closed_set": {}}, "trainer"),
    ({"trainer": "CRoFT", "seed": 1, "closed_set": {}}, "dataset"),
    ({"trainer": "CRoFT", "dataset": "PACS", "closed_set": {}}, "seed"),
    ({"trainer": "CRoFT", "dataset": "PACS", "seed": 1}, "closed_set"),
])
def test_read_results_json_names_file_and_key(tmp_path, content, key):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as e:
        read_results_json(str(path))
    assert str(path) in str(e.value) and f"'{key}'" in str(e.value)


def test_read_results_json_bad_json_and_types(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_results_json(str(path))
    path.write_text("{nope")
    with pytest.raises(ValueError, match="invalid JSON"):
        read_results_json(str(path))
    path.write_text(json.dumps({"trainer": "CRoFT", "dataset": "PACS", "seed": "one", "closed_set": {}}))
    with pytest.raises(ValueError, match="'seed' must be an integer"):
        read_results_json(str(path))


def fake_scores(shift=0.0):
    rng = np.random.default_rng(0)
    return {
        "energy/id": rng.normal(10 + shift, 1, 300), "energy/val": rng.normal(10.5, 1, 200),
        "energy/shift/sketch": rng.normal(9, 1.2, 250),
        "energy/ood/DTD": rng.normal(7, 1, 200), "energy/ood/Food101": rng.normal(8, 1.5, 200),
        "mcm/id": rng.uniform(0.5, 1, 300), "mcm/ood/DTD": rng.uniform(0, 0.7, 200),
    }


def test_save_and_load_scores(tmp_path):
    scores = fake_scores()
    path = save_scores(str(tmp_path), scores)
    assert os.listdir(tmp_path) == ["scores.npz"] and path.endswith("scores.npz")
    back = load_scores(path)
    assert set(back) == set(scores)
    for k in scores:
        np.testing.assert_array_equal(back[k], scores[k])
    assert set(load_scores(str(tmp_path))) == set(scores)


# ---------------------------------------------------------------------------------------------
# plots and CLIs

def pairwise_auroc(pos, neg):
    """AUROC in percent as P(pos > neg) + P(pos == neg) / 2 over all pairs (Mann-Whitney), without scikit-learn."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return 100.0 * (np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def finite(values):
    return values[np.isfinite(values)]


@pytest.fixture
def saved_figures(monkeypatch):
    """Every matplotlib Figure saved during the test, in order (the figure itself, not its PNG)."""
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def recording(fig, *args, **kwargs):
        figures.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording)
    return figures


def assert_panels_draw(ax_hist, ax_roc, scores):
    """The histogram legend names each energy series with its size; the ROC lines are roc_series' curves."""
    series = energy_series(scores)
    assert ax_hist.get_legend_handles_labels()[1] == [f"{label} (n={values.size})" for label, values in series]
    curves = roc_series(scores)
    handles, labels = ax_roc.get_legend_handles_labels()
    assert labels == [f"{name} (AUROC {auroc:.2f})" for name, _, _, auroc in curves]
    for line, (_, fpr, tpr, _) in zip(handles, curves):
        assert np.array_equal(line.get_xdata(), fpr) and np.array_equal(line.get_ydata(), tpr)


def test_energy_and_roc_series():
    scores = fake_scores()
    scores["energy/ood/DTD"] = np.append(scores["energy/ood/DTD"], [np.nan, np.inf])  # not drawable: dropped
    series = energy_series(scores)
    keys = ["energy/val", "energy/shift/sketch", "energy/ood/DTD", "energy/ood/Food101"]
    assert [label for label, _ in series] == ["val (ID)", "shift: sketch", "OOD: DTD", "OOD: Food101"]
    for (_, values), key in zip(series, keys):
        assert np.array_equal(values, finite(scores[key]))
    assert len(series[2][1]) == len(scores["energy/ood/DTD"]) - 2
    # energy/id is drawn only when neither the val set nor a shift domain is there
    only_id = {k: v for k, v in scores.items() if k not in ("energy/val", "energy/shift/sketch")}
    assert [label for label, _ in energy_series(only_id)] == ["ID", "OOD: DTD", "OOD: Food101"]
    assert np.array_equal(energy_series(only_id)[0][1], scores["energy/id"])

    curves = roc_series(scores)
    assert [name for name, *_ in curves] == ["DTD", "Food101"]
    for name, fpr, tpr, auroc in curves:
        assert auroc == pytest.approx(pairwise_auroc(scores["energy/id"], finite(scores[f"energy/ood/{name}"])), abs=1e-9)
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert 100.0 * np.trapezoid(tpr, fpr) == pytest.approx(auroc, abs=1e-9)  # the curve drawn has that area
    (name, _, _, auroc), = roc_series(scores, "mcm")
    assert name == "DTD" and auroc == pytest.approx(pairwise_auroc(scores["mcm/id"], scores["mcm/ood/DTD"]), abs=1e-9)
    assert roc_series({"energy/id": np.arange(10.0)}) == [] and roc_series({"energy/ood/DTD": np.arange(3.0)}) == []
    assert energy_series({}) == []


def test_plot_run_draws_the_series_and_handles_missing_keys(tmp_path, saved_figures):
    scores = fake_scores()
    out = str(tmp_path / "plots" / "run.png")
    assert plot_run(scores, out, title="CRoFT PACS sketch") == out and os.path.isfile(out)
    fig = saved_figures[-1]
    ax_hist, ax_roc = fig.axes
    assert fig.get_suptitle() == "CRoFT PACS sketch"
    assert_panels_draw(ax_hist, ax_roc, scores)
    assert len(ax_roc.get_legend_handles_labels()[1]) == 2  # DTD and Food101

    partial = {"energy/id": np.arange(10.0)}  # no OOD sets: the ROC panel says so
    plot_run(partial, str(tmp_path / "partial.png"))
    ax_hist, ax_roc = saved_figures[-1].axes
    assert ax_hist.get_legend_handles_labels()[1] == ["ID (n=10)"]
    assert [t.get_text() for t in ax_roc.texts] == ["no ID/OOD energy scores"] and not ax_roc.lines
    plot_run({}, str(tmp_path / "empty.png"))
    ax_hist, ax_roc = saved_figures[-1].axes
    assert [t.get_text() for t in ax_hist.texts] == ["no energy scores"] and not ax_hist.patches
    assert os.path.isfile(tmp_path / "partial.png") and os.path.isfile(tmp_path / "empty.png")


def test_plot_runs_and_cli(tmp_path, saved_figures):
    dirs = []
    for i, shift in enumerate([0.0, 1.5]):
        d = str(tmp_path / f"run{i}")
        save_scores(d, fake_scores(shift))
        write_results_json(d, make_results("CRoFT", "A", DOMAINS[i], 1))
        dirs.append(d)
    out = str(tmp_path / "runs.png")
    plot_runs(dirs, out)
    assert os.path.isfile(out)
    axes = saved_figures[-1].axes
    assert len(axes) == 2 * len(dirs)  # one row (histograms, ROC) per run
    assert saved_figures[-1].get_suptitle() == "CRoFT · PACS · seed 1"  # what the runs share
    for row, d in enumerate(dirs):
        ax_hist, ax_roc = axes[2 * row], axes[2 * row + 1]
        assert ax_hist.get_title() == f"held out {DOMAINS[row]}  energy"  # what tells this run apart
        assert_panels_draw(ax_hist, ax_roc, load_scores(d))
    with pytest.raises(FileNotFoundError, match="nothere"):
        plot_runs([dirs[0], str(tmp_path / "nothere")], str(tmp_path / "x.png"))

    cli_out = str(tmp_path / "cli.png")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "plot_energy.py"), *dirs, "--output", cli_out],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(cli_out)
    empty = str(tmp_path / "norun")
    os.makedirs(empty)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "plot_energy.py"), dirs[0], empty,
                           "--output", str(tmp_path / "y.png")], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and empty in proc.stderr and "scores.npz" in proc.stderr
    assert not os.path.exists(str(tmp_path / "y.png"))


def test_plot_titles_name_what_differs_between_the_runs(tmp_path, saved_figures):
    def run(name, trainer, setting, domain="sketch", seed=1):
        d = str(tmp_path / name)
        save_scores(d, fake_scores())
        write_results_json(d, make_results(trainer, setting, domain, seed))
        return d

    l2 = [run("l2_10", "CRoFT", "A"), run("l2_1", "CRoFT", "B")]  # differ only in lambda2
    assert run_titles(l2) == ("CRoFT · PACS · held out sketch · seed 1", ["λ2=10", "λ2=1"])
    plot_runs(l2, str(tmp_path / "l2.png"))
    fig = saved_figures[-1]
    assert [ax.get_title() for ax in fig.axes] == ["λ2=10  energy", "λ2=10  ROC (energy, ID positive)",
                                                   "λ2=1  energy", "λ2=1  ROC (energy, ID positive)"]
    mixed = [l2[0], run("coop_a", "CoOp", "A", seed=2), run("coop_b", "CoOp", "B", seed=2)]
    assert run_titles(mixed) == ("PACS · held out sketch", ["CRoFT · seed 1", "CoOp · seed 2 · N_CTX=16",
                                                            "CoOp · seed 2 · N_CTX=4"])
    bare = str(tmp_path / "bare")
    save_scores(bare, fake_scores())
    assert run_titles([l2[0], bare])[1][1] == os.path.normpath(bare)


def test_a_set_keeps_its_colour_in_every_panel(tmp_path, saved_figures):
    from matplotlib.colors import to_rgba

    dirs = []
    for i, scores in enumerate([fake_scores(), {k: v for k, v in fake_scores().items() if "Food101" not in k}]):
        d = str(tmp_path / f"run{i}")
        save_scores(d, scores)
        dirs.append(d)
    plot_runs(dirs, str(tmp_path / "runs.png"))
    axes = saved_figures[-1].axes
    drawn = []
    for row in range(len(dirs)):
        ax_hist, ax_roc = axes[2 * row], axes[2 * row + 1]
        hist = {label.split(" (n=")[0]: h.get_edgecolor() for h, label in zip(*ax_hist.get_legend_handles_labels())}
        roc = {label.split(" (AUROC")[0]: to_rgba(h.get_color())
               for h, label in zip(*ax_roc.get_legend_handles_labels())}
        assert roc and all(hist[f"OOD: {name}"] == colour for name, colour in roc.items())
        assert hist["val (ID)"] not in roc.values()
        drawn.append(hist)
    assert drawn[0]["OOD: DTD"] == drawn[1]["OOD: DTD"]  # and across the runs of a figure
    colours = series_colours([load_scores(d) for d in dirs])
    assert len(set(colours.values())) == len(colours)  # sets and ID-side series: one colour each
    assert drawn[0]["OOD: Food101"] == to_rgba(colours["Food101"])


def test_collect_results_cli(sweep, tmp_path):
    out = str(tmp_path / "table.csv")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "collect_results.py"), sweep["root"],
                           "--format", "csv", "--select", "val", "--output", out],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert sweep["bad"] in proc.stderr  # malformed files are reported on stderr too
    parsed = list(csv.DictReader(open(out, encoding="utf-8")))
    assert sorted((r["Method"], r["setting"]) for r in parsed) == [("CRoFT", "λ2=10"), ("CoOp", "N_CTX=4")]
    croft = next(r for r in parsed if r["Method"] == "CRoFT")
    assert (float(croft["sketch mean"]), float(croft["sketch std"])) == pytest.approx((88.1, 1.0))
