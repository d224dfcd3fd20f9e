"""The evaluation parts: score registry, protocols, results schema v2, TEST.NO_TEST / TEST.SPLIT,
run-level checks before anything is built."""
import json

import numpy as np
import pytest
import torch

from croft.evaluation import scores as score_module
from croft.evaluation.inference import Outputs
from croft.evaluation.protocols import ReferenceProtocol, StandardProtocol, build_protocol, per_class_indices
from croft.results.collect import collect
from croft.results.io import named_keys
from croft.train import main

FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def zs_args(root, out, *extra):
    return ["--root", str(root), "--seed", "1", "--trainer", "ZeroshotCLIP",
            "--dataset-config-file", "configs/datasets/PACS.yaml",
            "--config-file", "configs/trainers/ZeroshotCLIP/rn50.yaml", "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2",
            "DATASET.OOD_SETS", "['DTD']", *FAST, *extra]


def clip_adapter_args(root, out, *extra):
    return ["--root", str(root), "--seed", "1", "--trainer", "CLIP_Adapter",
            "--dataset-config-file", "configs/datasets/PACS.yaml",
            "--config-file", "configs/trainers/CLIP_Adapter/rn50_ep30.yaml", "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2",
            "OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", *FAST, *extra]


@pytest.fixture
def extra_score():
    """Registers a score for one test and removes it afterwards."""
    name = "neg_max_logit_test"

    @score_module.register_score(name)
    def neg(outputs, context):
        return -outputs.logits.max(dim=1).values

    yield name
    score_module.SCORE_REGISTRY._entries.pop(name)


def test_a_registered_score_flows_to_results_scores_and_tables(synthetic_root, tmp_path, extra_score):
    out = tmp_path / "run"
    assert main(zs_args(synthetic_root, out, "TEST.OOD_SCORES", f"['energy', '{extra_score}']")) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["open_set"]["DTD"]) == {"energy", extra_score}
    with np.load(out / "scores.npz") as scores:
        # the added score is minus max-logit: its AUROC is 100 minus max-logit's on the same samples
        neg_id, neg_ood = scores[f"{extra_score}/id"], scores[f"{extra_score}/ood/DTD"]
    assert results["open_set"]["DTD"][extra_score]["auroc"] == pytest.approx(
        100.0 - _auroc(-neg_id, -neg_ood), abs=1e-9)
    rows = collect(str(tmp_path))
    assert rows[0]["open_set"]["DTD"][extra_score]["auroc"]["mean"] == pytest.approx(
        results["open_set"]["DTD"][extra_score]["auroc"])


def _auroc(pos, neg):
    from sklearn.metrics import roc_auc_score
    return 100.0 * roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])


def test_unknown_score_is_refused_naming_the_registered_ones(synthetic_root, tmp_path, capfd):
    assert main(zs_args(synthetic_root, tmp_path / "bad", "TEST.OOD_SCORES", "['energy', 'entropy']")) == 2
    err = capfd.readouterr().err
    assert "TEST.OOD_SCORES" in err and "entropy" in err and "max_logit" in err


def test_results_json_says_its_schema_and_setup(synthetic_root, tmp_path):
    out = tmp_path / "run"
    assert main(zs_args(synthetic_root, out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 2 and results["setup"] == "setup2"
    with np.load(out / "scores.npz") as scores:
        assert [name for name, _ in named_keys(scores.files, "ood")] == ["DTD"]
        assert [name for name, _ in named_keys(scores.files, "shift")] == ["sketch"]
        correct = scores["correct/id"]
    # standard protocol: the ID side is the whole held-out test domain
    assert 100.0 * correct.mean() == pytest.approx(results["closed_set"]["test_accuracy"])


def test_collect_reads_version_1_files_with_one_warning(tmp_path):
    for seed in (1, 2):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        (run / "results.json").write_text(json.dumps({
            "trainer": "CRoFT", "dataset": "PACS", "seed": seed, "target_domains": ["sketch"],
            "closed_set": {"test_accuracy": 50.0 + seed, "per_domain": {"sketch": 50.0 + seed}}}))
    rows = collect(str(tmp_path))
    legacy = [w for w in rows.warnings if "schema version 1" in w]
    assert len(legacy) == 1 and legacy[0].startswith("2 results.json")
    assert rows[0]["per_domain"]["sketch"]["mean"] == pytest.approx(51.5)


def test_setup_is_taken_from_results_not_guessed(tmp_path):
    # one run of an ImageNet-style benchmark with a single variant on disk: still Setup-I
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({
        "schema_version": 2, "setup": "setup1", "trainer": "CRoFT", "dataset": "ImageNet46", "seed": 1,
        "target_domains": [], "closed_set": {"test_accuracy": 70.0, "per_domain": {"imagenet_v2": 60.0}}}))
    rows = collect(str(tmp_path))
    assert not any("Setup-I" in w or "schema version 1" in w for w in rows.warnings)
    assert rows[0]["id"]["mean"] == pytest.approx(70.0)
    assert rows[0]["per_domain"]["imagenet_v2"]["mean"] == pytest.approx(60.0)


def test_no_test_trains_without_results_then_eval_only_evaluates(synthetic_root, tmp_path):
    out = tmp_path / "train"
    assert main(clip_adapter_args(synthetic_root, out, "TEST.NO_TEST", "True")) == 0
    assert (out / "adapter" / "model-best.pth.tar").exists()
    assert not (out / "results.json").exists() and not (out / "scores.npz").exists()
    assert "TEST.NO_TEST" in (out / "log.txt").read_text()
    evaluated = tmp_path / "eval"
    args = clip_adapter_args(synthetic_root, evaluated)
    args[0:0] = ["--eval-only", "--model-dir", str(out)]
    assert main(args) == 0
    assert json.loads((evaluated / "results.json").read_text())["best_epoch"] == 1


def test_test_split_val_evaluates_the_val_split(synthetic_root, tmp_path):
    normal, on_val = tmp_path / "test", tmp_path / "val"
    assert main(zs_args(synthetic_root, normal)) == 0
    assert main(zs_args(synthetic_root, on_val, "TEST.SPLIT", "val")) == 0
    a = json.loads((normal / "results.json").read_text())["closed_set"]
    b = json.loads((on_val / "results.json").read_text())["closed_set"]
    assert b["per_domain"] == {"val": a["val_accuracy"]} and b["test_accuracy"] == a["val_accuracy"]
    assert main(zs_args(synthetic_root, tmp_path / "bad", "TEST.SPLIT", "train")) == 2


@pytest.mark.parametrize("trainer, epochs, rc", [("CLIP_Adapter", "0", 2), ("CLIP_Adapter", "-1", 2),
                                                  ("TIP_ADAPTER", "-1", 2)])
def test_epoch_ranges_are_checked_before_anything_is_built(synthetic_root, tmp_path, capfd, trainer, epochs, rc):
    out = tmp_path / "run"
    args = clip_adapter_args(synthetic_root, out, "OPTIM.MAX_EPOCH", epochs)
    args[args.index("CLIP_Adapter")] = trainer
    args[args.index("configs/trainers/CLIP_Adapter/rn50_ep30.yaml")] = f"configs/trainers/{trainer}/rn50_ep30.yaml"
    assert main(args) == rc
    err = capfd.readouterr().err
    assert "OPTIM.MAX_EPOCH" in err and epochs in err
    assert "Loaded CLIP" not in err and not out.exists()


def _outputs(logits, labels):
    logits = torch.tensor(logits, dtype=torch.float32)
    return Outputs(logits, torch.eye(len(logits), 4), torch.tensor(labels), torch.eye(logits.shape[1], 4))


class _Cfg:
    """The few config keys the protocols read."""
    class TEST:
        OOD_PROTOCOL = "standard"
        KNN_BANK = "val"
    SEED = 3


@pytest.mark.parametrize("bank", ["train", "val"])
def test_standard_protocol_knn_bank_is_the_one_test_knn_bank_names(bank):
    cfg = type("Cfg", (_Cfg,), {"TEST": type("TEST", (), {"OOD_PROTOCOL": "standard", "KNN_BANK": bank})})
    dataset = type("D", (), {"train_x": ["train image 1", "train image 2"]})
    train_out = _outputs([[1.0, 0.0], [0.0, 1.0]], [0, 1])._replace(features=torch.full((2, 4), 7.0))
    val_out = _outputs([[1.0, 0.0]], [0])
    calls = []

    def infer(items, name):
        calls.append(items)
        return train_out

    got = StandardProtocol(cfg).knn_bank(dataset, val_out, infer)
    if bank == "train":
        assert got is train_out.features and calls == [dataset.train_x]
    else:
        assert got is val_out.features and calls == []
    # without a val split, "val" falls back to the training set
    calls.clear()
    assert StandardProtocol(cfg).knn_bank(dataset, None, infer) is train_out.features and calls == [dataset.train_x]


def test_protocols_own_their_id_side_and_transform():
    test_out = _outputs([[2.0, 0.0]] * 3 + [[0.0, 2.0]] * 2, [0, 0, 0, 1, 0])
    assert isinstance(build_protocol(_Cfg), StandardProtocol)
    standard, reference = StandardProtocol(_Cfg), ReferenceProtocol(_Cfg)
    assert standard.id_side(type("D", (), {"reference_detection_split": "test"}), test_out, None) is test_out
    assert not standard.ood_train_transform and reference.ood_train_transform
    setup1 = type("D", (), {"reference_detection_split": "val"})
    val_out = _outputs([[1.0, 0.0]], [0])
    assert reference.id_side(setup1, test_out, val_out) is val_out
    # a cap of 500 per class keeps these small sets whole, in order
    capped = reference.id_side(type("D", (), {"reference_detection_split": "test"}), test_out, None)
    assert torch.equal(capped.labels, test_out.labels)
    assert per_class_indices([0] * 600 + [1] * 3, 500, 1)[-3:] == [600, 601, 602]
    assert len(per_class_indices([0] * 600 + [1] * 3, 500, 1)) == 503
