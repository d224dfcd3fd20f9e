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


def sweep(data, out, *extra):
    """The paper's PACS grid (configs/sweeps/croft_setup2_pacs.yaml) reduced to RN50, lambda2 10, seeds 1-2."""
    from croft.sweep.cli import main as croft_sweep

    return croft_sweep(["run", "croft_setup2_pacs", "--root", str(data), "--output", str(out), "--backbone", "tiny",
                        "--pretrained", "none", "--opts", FAST + " DATASET.NUM_SHOTS 1", "--only", "config=rn50_ep30_pacs",
                        "--only", "lambda2=10", "--only", "seed=1,2", *extra])


def test_pacs_sweep_stages_and_table(synthetic_root, tmp_path, capsys):
    out = tmp_path / "output"
    assert sweep(synthetic_root, out, "--no-table") == 0
    runs = sorted(out.glob("CRoFT/PACS/rn50_ep30_pacs/lambda2_10/test_on_*/seed*-*/results.json"))
    assert len(runs) == 8  # 4 held-out domains x 2 seeds
    stages = sorted(out.glob("CRoFT/PACS/rn50_ep30_pacs/lambda2_10/test_on_*/seed*-*/eval_ood-*/results.json"))
    assert len(stages) == 8
    result = json.loads(runs[0].read_text())
    assert result["hparams"]["lambda1"] == 15.0 and result["hparams"]["gen_step"] == 0  # the PACS RN50 config
    stage = json.loads(stages[0].read_text())
    assert stage["hparams"]["eval_ratio"] == 0.5 and stage["hparams"]["eval_ratio_text"] == 0.0
    assert stage["training_fingerprint"] == json.loads(
        (stages[0].parent.parent / "results.json").read_text())["training_fingerprint"]
    for ood in ("DTD", "Food101", "Caltech101"):
        for score in ("energy", "mcm", "max_logit", "knn"):
            assert set(result["open_set"][ood][score]) >= {"auroc", "fpr95", "aupr_in", "aupr_out"}
    table = subprocess.run([sys.executable, os.path.join(REPO, "tools/collect_results.py"), str(out), "--wide"],
                           capture_output=True, text=True, check=True).stdout
    for column in ("sketch", "photo", "cartoon", "art_painting", "Avg"):
        assert column in table
    for ood in ("DTD", "Food101", "Caltech101"):
        for score in ("energy", "mcm", "max_logit", "knn"):
            assert f"{ood} {score} AUROC" in table and f"{ood} {score} FPR95" in table
    # a second invocation finds every run done and trains nothing
    mtimes = {p: p.stat().st_mtime_ns for p in runs + stages}
    capsys.readouterr()
    assert sweep(synthetic_root, out, "--no-table") == 0
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())


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
