"""The compact results table of ``croft.results.collect.format_table`` (the default of
``tools/collect_results.py``), which runs share a row, the CSV, and the warnings about unusable
metric values and unreadable schema versions.

The wide table (``wide=True``) is tested in tests/test_results.py. Expected numbers are computed
here from the fabricated per-run values with the ``statistics`` module. The fabricated results.json
files record their settings as croft does (``fingerprint_values`` of a real config).
"""
import csv
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys

import pytest

from croft.config import get_cfg_default
from croft.engine.fingerprint import fingerprint_values, trainer_hparams
from croft.results.collect import collect, format_notes, format_table
from croft.results.io import write_results_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DOMAINS = ["art_painting", "cartoon", "photo", "sketch"]
OOD_SETS = ["DTD", "Food101", "Caltech101"]
ALL_SCORES = ["energy", "mcm", "max_logit", "knn"]
SEEDS = [1, 2, 3]
# (trainer, config overrides): the settings of the PACS-like sweep; the longest method name is CLIP_Adapter
SETTINGS = [
    ("CRoFT", {"TRAINER.CRoFT.lambda1": 15.0, "TRAINER.CRoFT.lambda2": 10.0}),
    ("CRoFT", {"TRAINER.CRoFT.lambda1": 5.0, "TRAINER.CRoFT.lambda2": 10.0}),
    ("CLIP_Adapter", {"OPTIM.LR": 0.002}),
    ("ZeroshotCLIP", {}),
    ("CoOp", {"TRAINER.COOP.PREC": "fp16", "OPTIM.LR": 0.002}),
]
# what tells the two CRoFT rows apart (the other methods have one row each: no label)
LABELS = {0: "λ1=15", 1: "λ1=5"}


def recorded(trainer, seed, domain, overrides=(), dataset="PACS"):
    """A run's ``fingerprint_values`` as croft records them: defaults, then the run's keys."""
    cfg = get_cfg_default()
    cfg.merge_from_list(["TRAINER.NAME", trainer, "SEED", str(seed), "DATASET.NAME", dataset,
                         "TEST_ENV", f"test_on_{domain}.json" if domain else ""])
    cfg.merge_from_list([str(x) for kv in dict(overrides).items() for x in kv])
    return fingerprint_values(cfg)


def acc_of(k, domain, seed):
    """Accuracy of setting k; sketch has a large seed spread (std above 10, the widest cells)."""
    di = DOMAINS.index(domain)
    spread = 12.5 if domain == "sketch" else 1.0 + 0.5 * di
    return 70.0 + 3.0 * ((k * 7 + di * 3) % 5) + 0.37 * k + (seed - 2) * spread


def ood_of(k, domain, seed, ood_set, score, metric):
    oi, si, di = OOD_SETS.index(ood_set), ALL_SCORES.index(score), DOMAINS.index(domain)
    if metric == "auroc":
        return 80.0 + 2.0 * ((k * 5 + oi * 3 + si) % 7) + 0.11 * k + 0.3 * di + (seed - 2) * 1.5
    if metric == "fpr95":
        return 20.0 + 4.0 * ((k * 3 + oi * 2 + si) % 6) + 0.13 * k + 0.2 * di + (seed - 2) * 11.0
    return 85.0 + k + oi + (seed - 2) * 0.5  # aupr_in / aupr_out


def results_of(k, domain, seed, overrides=()):
    trainer, keys = SETTINGS[k]
    acc = acc_of(k, domain, seed)
    values = recorded(trainer, seed, domain, dict(keys, **dict(overrides)))
    return {
        "schema_version": 2, "setup": "setup2", "trainer": trainer, "dataset": "PACS", "backbone": "ViT-B/16",
        "pretrained": "openai", "seed": seed, "shots": 16, "protocol": "standard",
        "source_domains": [d for d in DOMAINS if d != domain], "target_domains": [domain],
        "ood_sets": OOD_SETS, "hparams": trainer_hparams(values), "fingerprint_values": values,
        "closed_set": {"val_accuracy": 90.0 + k, "test_accuracy": acc, "id_accuracy": acc, "per_domain": {domain: acc}},
        "open_set": {o: {s: {m: ood_of(k, domain, seed, o, s, m) for m in ("auroc", "fpr95", "aupr_in", "aupr_out")}
                         for s in ALL_SCORES} for o in OOD_SETS},
    }


def write_sweep(root, settings=range(len(SETTINGS)), skip=()):
    for k in settings:
        trainer, _ = SETTINGS[k]
        for domain in DOMAINS:
            for seed in SEEDS:
                if (k, domain, seed) in skip:
                    continue
                write_results_json(os.path.join(root, trainer, f"setting{k}", f"test_on_{domain}", f"seed{seed}"),
                                   results_of(k, domain, seed))
    return root


@pytest.fixture
def pacs(tmp_path):
    return write_sweep(str(tmp_path / "output"))


def stat_of(values):
    return statistics.mean(values), statistics.pstdev(values)


def expected_acc(k, domain):
    return stat_of([acc_of(k, domain, s) for s in SEEDS])


def expected_avg(k):
    return stat_of([statistics.mean(acc_of(k, d, s) for d in DOMAINS) for s in SEEDS])


def expected_ood(k, ood_set, score, metric):
    return stat_of([statistics.mean(ood_of(k, d, s, ood_set, score, metric) for d in DOMAINS) for s in SEEDS])


def fmt(mean_std):
    return f"{mean_std[0]:.2f} ± {mean_std[1]:.2f}"


def md_tables(text):
    """``[(caption, header, {method label: [cells]})]`` of every table in a markdown text."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if line.startswith("| Method"):
            header = [c.strip() for c in line.strip("|").split("|")]
            caption = lines[i - 2] if i >= 2 else ""
            body = {}
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                body[cells[0]] = cells[1:]
            tables.append((caption, header, body))
    return tables


def label_of(k, keys):
    trainer = SETTINGS[k][0]
    return f"{trainer} [{keys[LABELS[k]]}]" if k in LABELS else trainer


def hp_keys(text):
    """``{setting text: key}`` from the md footnote (``- [a] λ1=5``)."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^- \[([a-z]+)\] (.+)$", text, flags=re.M)}


def best_of(values, higher):
    rounded = [round(v, 2) for v in values]
    target = max(rounded) if higher else min(rounded)
    return {i for i, v in enumerate(rounded) if v == target}


# ---------------------------------------------------------------------------------------------
# layout

def test_default_md_fits_120_characters(pacs):
    md = format_table(collect(pacs), "md")
    width = max(len(line) for line in md.splitlines())
    assert width <= 120, "\n".join(line for line in md.splitlines() if len(line) > 120)
    # one score (energy) by default: no other score appears anywhere
    for other in ("mcm", "max_logit", "knn"):
        assert other not in md
    tables = md_tables(md)
    assert [t[0].split(":")[0] for t in tables] == [
        "Closed-set accuracy (%) ↑ per held-out domain and Avg; mean ± std over 3 seeds",
        "Open set, energy score", "Open set, energy score"]
    closed, auroc, fpr = tables
    assert closed[1] == ["Method"] + DOMAINS + ["Avg"]
    assert auroc[1] == fpr[1] == ["Method"] + sorted(OOD_SETS)
    assert "AUROC (%) ↑" in auroc[0] and "FPR95 (%) ↓" in fpr[0]
    # the numbers: mean ± std over the 3 seeds (bold markers aside)
    keys = hp_keys(md)
    assert set(keys) == set(LABELS.values())
    for k in range(len(SETTINGS)):
        label = label_of(k, keys)
        cells = [c.strip("*") for c in closed[2][label]]
        assert cells == [fmt(expected_acc(k, d)) for d in DOMAINS] + [fmt(expected_avg(k))]
        assert [c.strip("*") for c in auroc[2][label]] == [fmt(expected_ood(k, o, "energy", "auroc"))
                                                          for o in sorted(OOD_SETS)]
        assert [c.strip("*") for c in fpr[2][label]] == [fmt(expected_ood(k, o, "energy", "fpr95"))
                                                        for o in sorted(OOD_SETS)]
    # the widest cells really are there (std above 10), so the width test means something
    assert any(float(c.strip("*").split("± ")[1]) >= 10 for c in closed[2][label_of(0, keys)])


def test_rows_sorted_by_method_then_setting_values_and_keyed(pacs):
    rows = collect(pacs)
    md = format_table(rows, "md")
    closed = md_tables(md)[0]
    # case-insensitive method order; CRoFT λ1=5 before λ1=15 (numeric, not string order); only the
    # CRoFT rows need a label, and it names only what differs between them
    assert list(closed[2]) == ["CLIP_Adapter", "CoOp", "CRoFT [a]", "CRoFT [b]", "ZeroshotCLIP"]
    assert "- [a] λ1=5\n- [b] λ1=15\n" in md
    croft = [r for r in rows if r["trainer"] == "CRoFT"]
    assert [r["setting"] for r in croft] == [[("TRAINER.CRoFT.lambda1", 5)], [("TRAINER.CRoFT.lambda1", 15)]]
    assert all(r["pooled"] == ["SEED", "TEST_ENV"] for r in rows)
    assert "pooled here: SEED, TEST_ENV." in " ".join(md.split())
    # deterministic: the same text from a second collect
    assert format_table(collect(pacs), "md") == md


def test_best_value_per_column_is_marked(pacs):
    rows = collect(pacs)
    md = format_table(rows, "md")
    keys = hp_keys(md)
    closed, auroc, fpr = md_tables(md)
    ks = range(len(SETTINGS))
    for j, d in enumerate(DOMAINS):
        best = best_of([expected_acc(k, d)[0] for k in ks], higher=True)
        assert {k for k in ks if closed[2][label_of(k, keys)][j].startswith("**")} == best
    best = best_of([expected_avg(k)[0] for k in ks], higher=True)
    assert {k for k in ks if closed[2][label_of(k, keys)][-1].startswith("**")} == best
    for j, o in enumerate(sorted(OOD_SETS)):
        best = best_of([expected_ood(k, o, "energy", "auroc")[0] for k in ks], higher=True)
        assert {k for k in ks if auroc[2][label_of(k, keys)][j].startswith("**")} == best
        best = best_of([expected_ood(k, o, "energy", "fpr95")[0] for k in ks], higher=False)  # lowest FPR95
        assert {k for k in ks if fpr[2][label_of(k, keys)][j].startswith("**")} == best

    tex = format_table(rows, "latex")
    assert "\\textbf{" in tex and "**" not in tex and "±" not in tex
    best_k = max(ks, key=lambda k: expected_avg(k)[0])
    m, s = expected_avg(best_k)
    assert f"\\textbf{{{m:.2f} $\\pm$ {s:.2f}}}" in tex
    assert "\\multicolumn{2}{c|}{Caltech101}" in tex and "FPR95$\\downarrow$" in tex
    assert "Settings: [a] $\\lambda_{1}$=5; [b] $\\lambda_{1}$=15." in tex  # the labels under the table


def test_aupr_is_highest_best_and_unknown_metric_fails(pacs):
    rows = collect(pacs)
    md = format_table(rows, "md", ood_metrics=["aupr_in"])
    keys = hp_keys(md)
    closed, aupr = md_tables(md)
    assert "AUPR-In (%) ↑" in aupr[0]
    # aupr_in grows with k: the last setting is best
    for cells in (aupr[2][label_of(k, keys)] for k in range(len(SETTINGS) - 1)):
        assert not any(c.startswith("**") for c in cells)
    assert all(c.startswith("**") for c in aupr[2][label_of(len(SETTINGS) - 1, keys)])
    with pytest.raises(ValueError, match="unknown open-set metric"):
        format_table(rows, "md", ood_metrics=["auprc"])


def test_several_scores_all_and_missing_score(pacs):
    rows = collect(pacs)
    md = format_table(rows, "md", scores=["mcm", "energy"])
    captions = [t[0].split(":")[0] for t in md_tables(md)[1:]]
    assert captions == ["Open set, mcm score"] * 2 + ["Open set, energy score"] * 2
    md_all = format_table(rows, "md", scores="all")
    assert [t[0].split(":")[0] for t in md_all_tables(md_all)] == [f"Open set, {s} score" for s in ALL_SCORES
                                                                   for _ in range(2)]
    missing = format_table(rows, "md", scores=["energy", "odin"])
    assert "No open-set results for score(s) odin (available: energy, mcm, max_logit, knn)." in missing
    # a wide table keeps every score, no marks, the settings in a column
    wide = format_table(rows, "md", wide=True)
    assert "| CRoFT | λ1=5 | 3 |" in wide and "| CoOp |  | 3 |" in wide
    assert "Caltech101 knn FPR95" in wide and "**" not in wide


def md_all_tables(text):
    return md_tables(text)[1:]


def test_partial_cells_are_not_best_and_n_column(tmp_path):
    # setting 0 lacks photo for seed 3, so its photo cell (fewer seeds), Avg and open-set cells are partial
    root = write_sweep(str(tmp_path / "out"), settings=[0, 1], skip={(0, "photo", 3)})
    rows = collect(root)
    md = format_table(rows, "md")
    keys = hp_keys(md)
    closed, auroc, fpr = md_tables(md)
    partial = closed[2][label_of(0, keys)]
    assert partial[DOMAINS.index("photo")].endswith("†") and partial[-1].endswith("*")
    assert not any(c.startswith("**") for c in (partial[DOMAINS.index("photo")], partial[-1]))
    assert all(c.endswith("*") and not c.startswith("**") for c in auroc[2][label_of(0, keys)])
    # with one complete row per column the other setting is best wherever it has the value
    assert closed[2][label_of(1, keys)][-1].startswith("**")
    assert "* partial:" in md and "† fewer seeds" in md
    # all rows have 3 seeds: no n column; the caption says so
    assert closed[1][:2] == ["Method", "art_painting"] and "over 3 seeds" in closed[0]
    # different seed counts: an n column
    root2 = write_sweep(str(tmp_path / "out2"), settings=[0, 1], skip={(1, d, 3) for d in DOMAINS})
    md2 = format_table(collect(root2), "md")
    closed2 = md_tables(md2)[0]
    assert closed2[1][:2] == ["Method", "n"] and "n: number of seeds." in md2
    assert sorted(cells[0] for cells in closed2[2].values()) == ["2", "3"]


def test_single_row_and_ties_get_no_marks(tmp_path):
    root = write_sweep(str(tmp_path / "out"), settings=[0])
    md = format_table(collect(root), "md")
    assert "**" not in md
    tex = format_table(collect(root), "latex")
    assert "\\textbf{" not in tex.replace("\\textbf{PACS", "")


def test_setup1_compact_columns(tmp_path):
    variants = {"imagenet_v2": 60.0, "imagenet_sketch": 45.0, "imagenet_a": 50.0, "imagenet_r": 75.0}
    for t, off in (("CRoFT", 0.0), ("CoOp", -2.0)):
        for seed in SEEDS:
            values = recorded(t, seed, None, {"TRAINER.CRoFT.lambda1": 5.0} if t == "CRoFT" else {}, "ImageNet46")
            write_results_json(str(tmp_path / t / f"seed{seed}"), {
                "schema_version": 2, "setup": "setup1", "trainer": t, "dataset": "ImageNet46",
                "backbone": "ViT-B/16", "pretrained": "openai", "seed": seed, "shots": 16,
                "hparams": trainer_hparams(values), "fingerprint_values": values, "target_domains": [],
                "closed_set": {"val_accuracy": 70.0, "test_accuracy": 71.0 + off + seed,
                               "per_domain": {k: v + off + seed for k, v in variants.items()}},
                "open_set": {"ImageNet-new": {"energy": {"auroc": 90.0 + off, "fpr95": 40.0 - off}}}})
    md = format_table(collect(str(tmp_path)), "md")
    # 6 accuracy columns do not fit with "mean ± std": the block is printed as "mean±std"
    assert max(len(line) for line in md.splitlines()) <= 120
    closed, auroc, fpr = md_tables(md)
    assert closed[1] == ["Method", "ID"] + sorted(variants) + ["Avg"]
    assert "ID test set" in closed[0]
    assert closed[2]["CRoFT"][0] == "**73.00±0.82**" and closed[2]["CoOp"][0] == "71.00±0.82"
    assert closed[2]["CRoFT"][-1] == f"**{statistics.mean(variants.values()) + 2:.2f}±0.82**"
    assert fpr[2]["CRoFT"] == ["**40.00±0.00**"] and auroc[2]["CoOp"] == ["88.00±0.00"]
    assert "ID (Setup-I)" in md
    # LaTeX and CSV keep "mean ± std"
    assert "73.00 $\\pm$ 0.82" in format_table(collect(str(tmp_path)), "latex")


def test_footer_sections_are_kept(pacs):
    incomplete = os.path.join(pacs, "CRoFT", "crashed", "seed1")
    os.makedirs(incomplete)
    open(os.path.join(incomplete, "log.txt"), "w").close()
    broken = os.path.join(pacs, "CRoFT", "broken")
    os.makedirs(broken)
    with open(os.path.join(broken, "results.json"), "w") as f:
        f.write("{")
    rows = collect(pacs, select="val")
    md = format_table(rows, "md")
    assert md.index("### Incomplete runs") > md.index("| Method") and incomplete in md
    assert "### Skipped: malformed results.json" in md and os.path.join(broken, "results.json") in md
    assert "best mean closed_set.val_accuracy" in md
    # --select val: one row per trainer
    assert [lab.split(" [")[0] for lab in md_tables(md)[0][2]] == ["CLIP_Adapter", "CoOp", "CRoFT", "ZeroshotCLIP"]
    assert "% Incomplete runs" in format_table(rows, "latex")
    assert "incomplete," + incomplete in format_notes(rows) and incomplete not in format_table(rows, "csv")


def test_empty_root_compact(tmp_path):
    rows = collect(str(tmp_path))
    assert "No finished runs" in format_table(rows, "md")
    assert "No finished runs" in format_table(rows, "latex")
    assert format_table(rows, "csv").startswith("Dataset,")


# ---------------------------------------------------------------------------------------------
# which runs share a row

def write_run(root, name, k=0, domain="sketch", seed=1, overrides=(), acc=None, **top):
    """One fabricated run of setting ``k`` (with config ``overrides``) in ``root/name``."""
    r = dict(results_of(k, domain, seed, overrides), **top)
    if acc is not None:
        r["closed_set"] = dict(r["closed_set"], test_accuracy=acc, per_domain={domain: acc})
    write_results_json(os.path.join(root, name), r)
    return r


@pytest.mark.parametrize("key, a, b, seeds", [
    ("OPTIM.LR", 0.001, 0.002, (1, 2)),        # was: one row "over 2 seeds"
    ("OPTIM.LR", 0.001, 0.002, (1, 1)),        # was: one run dropped as a "duplicate"
    ("OPTIM.MAX_EPOCH", 3, 2, (1, 1)),         # was: reported as duplicates of each other
    ("DATASET.VAL_PERCENT", 0.2, 0.1, (1, 2)),  # a key no method's hparams ever showed
])
def test_runs_that_differ_in_any_recorded_key_are_never_averaged(tmp_path, key, a, b, seeds):
    root = str(tmp_path)
    write_run(root, "a", seed=seeds[0], overrides={key: a}, acc=60.0)
    write_run(root, "b", seed=seeds[1], overrides={key: b}, acc=70.0)
    rows = collect(root)
    assert sorted((r["per_domain"]["sketch"]["mean"], r["n_seeds"]) for r in rows) == [(60.0, 1), (70.0, 1)]
    assert not any("duplicate" in w for w in rows.warnings)
    by_acc = {r["per_domain"]["sketch"]["mean"]: r for r in rows}
    assert (by_acc[60.0]["setting"], by_acc[70.0]["setting"]) == ([(key, a)], [(key, b)])  # that key only
    md = format_table(rows, "md")
    assert sorted(md_tables(md)[0][2]) == ["CRoFT [a]", "CRoFT [b]"]
    low, high = sorted([a, b])
    assert f"- [a] {key}={low}\n- [b] {key}={high}\n" in md


def test_a_key_an_older_run_lacks_counts_as_its_default(tmp_path):
    root = str(tmp_path)
    old = results_of(0, "sketch", 1)
    del old["fingerprint_values"]["DATASET.FEWSHOT_SAMPLER"]  # written before croft had the key
    write_results_json(os.path.join(root, "old"), old)
    write_run(root, "new", seed=2)  # the key at its default
    write_run(root, "other", seed=3, overrides={"DATASET.VAL_SHOTS": 4})
    rows = collect(root)
    assert sorted(r["n_seeds"] for r in rows) == [1, 2]
    assert sorted((r["n_seeds"], tuple(r["setting"])) for r in rows) == [
        (1, (("DATASET.VAL_SHOTS", 4),)), (2, (("DATASET.VAL_SHOTS", -1),))]


def test_runs_with_and_without_an_evaluation_stage_are_not_averaged(tmp_path):
    root = str(tmp_path)
    overrides = {"TRAINER.CRoFT.EVAL_RATIO": 0.5}
    for seed in (1, 2):
        write_run(root, f"seed{seed}", seed=seed, acc=60.0 + seed)
    stage = write_run(os.path.join(root, "seed1"), "eval_ood", seed=1, overrides=overrides, fingerprint="f1")
    with open(os.path.join(root, "seed1", "stage.json"), "w") as f:
        json.dump({"stage": "train", "stages": {"eval_ood": {"folder": "eval_ood", "fingerprint": "f1",
                                                              "use": ["open_set"], "overrides": overrides}}}, f)
    with open(os.path.join(root, "seed1", "eval_ood", "stage.json"), "w") as f:
        json.dump({"stage": "eval_ood", "stage_of": "..", "overrides": overrides}, f)
    rows = collect(root)
    assert len(rows) == 2 and all(r["n_seeds"] == 1 for r in rows)
    staged = next(r for r in rows if r["setting"][0][1] != "(absent)")
    assert staged["setting"] == [("stage", "open_set from eval_ood (TRAINER.CRoFT.EVAL_RATIO 0.5)")]
    assert staged["open_set"]["DTD"]["energy"]["auroc"]["mean"] == stage["open_set"]["DTD"]["energy"]["auroc"]
    assert staged["per_domain"]["sketch"]["mean"] == 61.0


def test_files_without_fingerprint_values_group_by_hparams_with_one_warning(tmp_path):
    root = str(tmp_path)
    for seed in (1, 2):
        r = results_of(0, "sketch", seed)
        del r["fingerprint_values"]
        write_results_json(os.path.join(root, f"old{seed}"), r)
    write_run(root, "new", seed=3)
    rows = collect(root)
    assert sorted(r["n_seeds"] for r in rows) == [1, 2]
    assert sorted((r["recorded"], r["n_seeds"]) for r in rows) == [(False, 2), (True, 1)]
    (warning,) = [w for w in rows.warnings if "fingerprint_values" in w]
    assert warning.startswith("2 results.json file(s) without fingerprint_values (an early schema version 2, e.g. ")
    assert "hparams only" in warning
    old = next(r for r in rows if not r["recorded"])
    assert old["setting"] == [("settings", "unrecorded")]
    md = format_table(rows, "md")
    assert "- [a] settings=unrecorded" in md and "pool runs by trainer, dataset" in " ".join(md.split())


def test_a_newer_schema_version_is_refused_naming_the_file(tmp_path):
    root = str(tmp_path)
    write_run(root, "ok", seed=1, acc=60.0)
    write_run(root, "future", seed=2, acc=99.0, schema_version=99)
    path = os.path.join(root, "future", "results.json")
    rows = collect(root)
    assert len(rows) == 1 and rows[0]["n_seeds"] == 1 and rows[0]["per_domain"]["sketch"]["mean"] == 60.0
    line = f"{path}: schema_version 99 is not read by this croft (it reads versions 1, 2); skipped"
    assert rows.refused == [line] and line in rows.warnings
    assert line in format_table(rows, "md")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "collect_results.py"), root],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and f"warning: {line}\n" in proc.stderr and "99.00" not in proc.stdout


def test_ties_are_bold_only_when_equal_as_printed_and_said(tmp_path):
    root = str(tmp_path)
    for name, l2, acc in (("a", 1.0, 59.049), ("b", 10.0, 59.051), ("c", 100.0, 57.62)):
        write_run(root, name, overrides={"TRAINER.CRoFT.lambda2": l2}, acc=acc)
    md = format_table(collect(root), "md")
    closed = md_tables(md)[0][2]
    assert [cells[0] for cells in closed.values()] == ["**59.05 ± 0.00**", "**59.05 ± 0.00**", "57.62 ± 0.00"]
    assert "Ties: cells whose means are equal at the printed precision (2 decimals) are all marked best." in md
    root2 = str(tmp_path / "no_tie")
    for name, l2, acc in (("a", 1.0, 59.044), ("b", 10.0, 59.046)):
        write_run(root2, name, overrides={"TRAINER.CRoFT.lambda2": l2}, acc=acc)
    md2 = format_table(collect(root2), "md")
    assert [cells[0] for cells in md_tables(md2)[0][2].values()] == ["59.04 ± 0.00", "**59.05 ± 0.00**"]
    assert "Ties:" not in md2


def test_select_val_keeps_the_label_of_the_chosen_setting(pacs):
    rows = collect(pacs, select="val")
    (croft,) = [r for r in rows if r["trainer"] == "CRoFT"]
    assert croft["setting"] == [("TRAINER.CRoFT.lambda1", 5)]  # setting 1 has the higher val accuracy
    assert "- [a] λ1=5" in format_table(rows, "md")


# ---------------------------------------------------------------------------------------------
# CSV: one table of numbers

def test_csv_is_one_table_of_numbers_and_notes_are_apart(tmp_path):
    root = write_sweep(str(tmp_path / "out"), skip={(0, "photo", 3)})
    rows = collect(root)
    text = format_table(rows, "csv")
    assert "±" not in text and "\n\n" not in text and "**" not in text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(SETTINGS) and all(None not in r for r in table)  # every line has the header's fields
    full = next(r for r in table if r["Method"] == "CRoFT" and r["setting"] == "λ1=5")
    assert full["TRAINER.CRoFT.lambda1"] == "5" and full["n_seeds"] == "3"
    mean, std = expected_avg(1)
    assert (float(full["Avg mean"]), float(full["Avg std"]), full["Avg n"]) == (
        pytest.approx(mean, abs=1e-12), pytest.approx(std, abs=1e-12), "3")
    mean, std = expected_ood(1, "DTD", "energy", "fpr95")
    assert float(full["DTD energy FPR95 mean"]) == pytest.approx(mean, abs=1e-12)
    assert float(full["DTD energy FPR95 std"]) == pytest.approx(std, abs=1e-12)
    # a partial cell says how many seeds it has
    partial = next(r for r in table if r["Method"] == "CRoFT" and r["setting"] == "λ1=15")
    assert partial["photo n"] == "2" and partial["Avg n"] == "2" and partial["art_painting n"] == "3"
    assert next(r for r in table if r["Method"] == "CoOp")["TRAINER.CRoFT.lambda1"] == ""
    wide = list(csv.DictReader(io.StringIO(format_table(rows, "csv", wide=True))))
    assert float(next(r for r in wide if r["setting"] == "λ1=5")["Caltech101 knn FPR95 mean"]) == pytest.approx(
        expected_ood(1, "Caltech101", "knn", "fpr95")[0], abs=1e-12)
    notes = list(csv.reader(io.StringIO(format_notes(rows))))
    assert notes[0] == ["section", "path", "detail"] and any(n[0] == "note" and "pooled" in n[2] for n in notes)

    out = str(tmp_path / "table.csv")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "collect_results.py"), root, "--format", "csv",
                           "--output", out], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert open(out, encoding="utf-8").read() == text
    assert open(str(tmp_path / "table.notes.csv"), encoding="utf-8").read() == format_notes(rows)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "collect_results.py"), root, "--format", "csv"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout == text and "note: Rows: runs whose recorded settings" in proc.stderr


# ---------------------------------------------------------------------------------------------
# unusable values in results.json

def test_non_numeric_and_nan_values_are_reported(tmp_path):
    r = results_of(0, "sketch", 1)
    r["open_set"]["DTD"]["energy"]["auroc"] = float("nan")
    r["open_set"]["DTD"]["energy"]["fpr95"] = float("inf")
    r["open_set"]["Food101"]["mcm"]["auroc"] = "high"
    r["open_set"]["Food101"]["knn"] = [1, 2]
    r["closed_set"]["val_accuracy"] = None  # documented: no val split; not a warning
    write_results_json(str(tmp_path / "a"), r)
    r2 = results_of(0, "photo", 1)
    r2["closed_set"]["test_accuracy"] = float("nan")
    r2["closed_set"]["per_domain"] = {"photo": float("nan")}
    write_results_json(str(tmp_path / "b"), r2)
    path_a = os.path.join(str(tmp_path), "a", "results.json")
    path_b = os.path.join(str(tmp_path), "b", "results.json")
    with open(path_a) as f:
        assert "NaN" in f.read()  # what json writes for float('nan')

    rows = collect(str(tmp_path))
    warnings = rows.warnings
    assert f"{path_a}: open_set.DTD.energy.auroc = NaN is not a number; ignored" in warnings
    assert f"{path_a}: open_set.DTD.energy.fpr95 = Infinity is not a finite number; ignored" in warnings
    assert f'{path_a}: open_set.Food101.mcm.auroc = "high" is not a number; ignored' in warnings
    assert f"{path_a}: open_set.Food101.knn is not an object; ignored" in warnings
    assert f"{path_b}: closed_set.test_accuracy = NaN is not a number; ignored" in warnings
    assert f"{path_b}: closed_set.per_domain.photo = NaN is not a number; ignored" in warnings
    assert any(w.startswith(path_b) and "adds no accuracy" in w for w in warnings)
    assert not any("val_accuracy" in w for w in warnings)
    # the bad values are left out, the good ones kept
    row = rows[0]
    assert row["open_set"]["DTD"]["energy"]["auroc"]["n"] == 0 and row["open_set"]["DTD"]["mcm"]["auroc"]["n"] == 1
    assert "photo" not in row["per_domain"] and row["per_domain"]["sketch"]["n"] == 1
    md = format_table(rows, "md")
    assert "### Warnings" in md and "open_set.DTD.energy.auroc = NaN is not a number; ignored" in md
    assert not any(isinstance(v, float) and math.isnan(v) for v in json.loads(json.dumps(row["avg"]))["values"])


# ---------------------------------------------------------------------------------------------
# CLI

def test_collect_results_cli_compact(pacs, tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "collect_results.py"), pacs,
                           "--scores", "mcm,odin", "--ood-metrics", "auroc"],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "warning: no open-set results for score(s) odin" in proc.stderr
    tables = md_tables(proc.stdout)
    assert [t[0].split(":")[0] for t in tables[1:]] == ["Open set, mcm score"]
    assert "AUROC (%) ↑" in tables[1][0] and "FPR95" not in tables[1][0]
    assert max(len(line) for line in proc.stdout.splitlines()) <= 120


def test_collect_results_cli_errors_are_one_line(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("collect_results", os.path.join(REPO, "tools", "collect_results.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    missing = str(tmp_path / "no_root")
    assert tool.main([missing]) == 1
    assert capsys.readouterr().err == f"error: OUTPUT_ROOT {missing} is not a folder (it does not exist)\n"
    with pytest.raises(SystemExit) as e:  # a bad option value is a usage error (argparse, status 2)
        tool.main([str(tmp_path), "--ood-metrics", "auprc"])
    assert e.value.code == 2 and "--ood-metrics: choose from auroc, fpr95, aupr_in, aupr_out" in capsys.readouterr().err
