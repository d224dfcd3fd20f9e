"""Setup-II end to end: the sweep script, collect_results, and the two open-set protocols."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from croft.ood.metrics import hendrycks_fpr_at_recall, ood_metrics, reference_metrics
from croft.results.io import load_scores
from croft.train import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = "OPTIM.MAX_EPOCH 1 DATALOADER.NUM_WORKERS 0 TEST.PLOT False DATALOADER.TEST.BATCH_SIZE 64"


def sweep(data, out, seed):
    env = dict(os.environ, DATA=str(data), OUTPUT=str(out), BACKBONE="tiny", PRETRAINED="none",
               PYTHON=sys.executable, EXTRA_OPTS=FAST, HF_HUB_OFFLINE="1")
    return subprocess.run(["bash", os.path.join(REPO, "scripts/croft/croft_pacs.sh"), "PACS", "rn50_ep30", str(seed),
                           "1", "10"], env=env, capture_output=True, text=True, cwd=REPO)


def test_pacs_sweep_collect_and_skip_logic(synthetic_root, tmp_path):
    out = tmp_path / "output"
    for seed in (1, 2):
        proc = sweep(synthetic_root, out, seed)
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(out.glob("CRoFT/*/*/seed*/shots1/results.json"))
    assert len(runs) == 8
    table = subprocess.run([sys.executable, os.path.join(REPO, "tools/collect_results.py"), str(out), "--wide"],
                           capture_output=True, text=True, check=True).stdout
    for column in ("sketch", "photo", "cartoon", "art_painting", "Avg"):
        assert column in table
    for ood in ("DTD", "Food101", "Caltech101"):
        for score in ("energy", "mcm", "max_logit", "knn"):
            assert f"{ood} {score} AUROC" in table and f"{ood} {score} FPR95" in table
    result = json.loads(runs[0].read_text())
    for ood in ("DTD", "Food101", "Caltech101"):
        for score in ("energy", "mcm", "max_logit", "knn"):
            assert set(result["open_set"][ood][score]) >= {"auroc", "fpr95", "aupr_in", "aupr_out"}

    mtimes = {p: p.stat().st_mtime_ns for p in runs}
    proc = sweep(synthetic_root, out, 1)
    assert proc.stdout.count("skip (results.json exists)") == 4 and "run:" not in proc.stdout
    victim = runs[0]
    victim.unlink()
    proc = sweep(synthetic_root, out, int(victim.parent.parent.name[len("seed"):]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run:") == 1 and victim.exists()
    for path, mtime in mtimes.items():
        if path != victim:
            assert path.stat().st_mtime_ns == mtime


def _args(root, out, *extra):
    return ["--root", str(root), "--seed", "1", "--trainer", "CRoFT", "--dataset-config-file",
            os.path.join(REPO, "configs/datasets/PACS_DTD.yaml"), "--config-file",
            os.path.join(REPO, "configs/trainers/CRoFT/rn50_ep30.yaml"), "--backbone", "tiny", "--output-dir", str(out),
            *extra, "MODEL.BACKBONE.PRETRAINED", "none", "TEST_ENV", "test_on_photo.json", "DATASET.NUM_SHOTS", "2",
            *FAST.split()]


def test_reference_and_standard_protocols_differ_where_the_spec_says(synthetic_root, tmp_path):
    model_dir = tmp_path / "train"
    assert main(_args(synthetic_root, model_dir)) == 0
    results, scores = {}, {}
    for protocol in ("standard", "reference"):
        out = tmp_path / protocol
        assert main(_args(synthetic_root, out, "--eval-only", "--model-dir", str(model_dir), "TEST.OOD_PROTOCOL",
                          protocol)) == 0
        results[protocol] = json.loads((out / "results.json").read_text())
        scores[protocol] = load_scores(str(out))
    std, ref = scores["standard"], scores["reference"]
    # The ID side (held-out test domain, test transform) is identical under both protocols...
    np.testing.assert_array_equal(std["energy/id"], ref["energy/id"])
    correct = ref["correct/id"].astype(bool)
    assert 0 < correct.sum() < len(correct), "need both correct and wrong ID samples for this test"
    # ...but the reference encodes open-set images with the training augmentation (docs/protocols.md §4.3).
    assert not np.allclose(std["energy/ood/DTD"], ref["energy/ood/DTD"])
    for score in ("energy", "mcm", "max_logit", "knn"):
        expected_std = ood_metrics(std[f"{score}/id"], std[f"{score}/ood/DTD"])
        if score == "knn":  # the reference KNN script: every ID sample, Hendrycks FPR (docs/protocols.md §5.5)
            expected_ref = ood_metrics(ref["knn/id"], ref["knn/ood/DTD"])
            expected_ref["fpr95"] = hendrycks_fpr_at_recall(ref["knn/id"], ref["knn/ood/DTD"])
        else:
            expected_ref = reference_metrics(ref[f"{score}/id"], correct, ref[f"{score}/ood/DTD"])
        for key in ("auroc", "fpr95", "aupr_in", "aupr_out"):
            assert results["standard"]["open_set"]["DTD"][score][key] == pytest.approx(expected_std[key])
            assert results["reference"]["open_set"]["DTD"][score][key] == pytest.approx(expected_ref[key])
    # Reference FPR95: share of OOD energies strictly above the 5th percentile of correct ID energies (§8.11).
    threshold = np.percentile(ref["energy/id"][correct], 5)
    fpr = 100.0 * np.mean(ref["energy/ood/DTD"] > threshold)
    assert results["reference"]["open_set"]["DTD"]["energy"]["fpr95"] == pytest.approx(fpr)
    assert results["standard"]["closed_set"] == results["reference"]["closed_set"]
