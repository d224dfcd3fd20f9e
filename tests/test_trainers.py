"""End-to-end runs of ZeroshotCLIP and CRoFT on synthetic PACS with the tiny backbone."""
import json
import os

import pytest
import torch

from croft import trainers  # noqa: F401
from croft.config import setup_cfg
from croft.engine.trainer import NonFiniteLossError, build_trainer, set_random_seed
from croft.evaluation.inference import FINAL, TRAINING
from croft.train import build_parser, main

FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def croft_args(root, out, *extra):
    return ["--root", str(root), "--seed", "1", "--trainer", "CRoFT",
            "--dataset-config-file", "configs/datasets/PACS.yaml",
            "--config-file", "configs/trainers/CRoFT/rn50_ep30.yaml", "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "4",
            "TRAINER.CRoFT.lambda1", "0.5", "TRAINER.CRoFT.lambda2", "10", "OPTIM.MAX_EPOCH", "2", *FAST, *extra]


def build(args):
    cfg = setup_cfg(build_parser().parse_args(args))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def test_zeroshot_clip_writes_results_and_config(synthetic_root, tmp_path):
    out = tmp_path / "zs"
    rc = main(["--root", str(synthetic_root), "--seed", "1", "--trainer", "ZeroshotCLIP",
               "--dataset-config-file", "configs/datasets/PACS.yaml",
               "--config-file", "configs/trainers/ZeroshotCLIP/rn50.yaml", "--backbone", "tiny",
               "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", *FAST])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["trainer"] == "ZeroshotCLIP" and results["target_domains"] == ["sketch"]
    acc = results["closed_set"]["per_domain"]["sketch"]
    assert 0.0 <= acc <= 100.0 and acc == results["closed_set"]["test_accuracy"]
    assert "TEST_ENV: test_on_sketch.json" in (out / "config.yaml").read_text()
    assert (out / "log.txt").exists()


def test_croft_trains_only_adapter_and_generator(synthetic_root, tmp_path):
    out = tmp_path / "croft"
    trainer = build(croft_args(synthetic_root, out, "DATASET.OOD_SETS", "['DTD']"))
    clip_before = {k: v.clone() for k, v in trainer.clip_model.state_dict().items()}
    trainer.train()
    for key, value in trainer.clip_model.state_dict().items():
        assert torch.equal(value, clip_before[key]), f"CLIP parameter {key} changed"
    eye = torch.eye(trainer.feat_dim)
    assert not torch.allclose(trainer.adapter.fc_i.detach().cpu(), eye)
    assert not torch.allclose(trainer.adapter.fc_t.detach().cpu(), eye)
    for name in ("clip_adapter", "generator"):
        assert (out / name / "model-best.pth.tar").exists()
        assert (out / name / "model.pth.tar-2").exists()
    state = torch.load(out / "clip_adapter" / "model.pth.tar-2", weights_only=True)
    assert set(state["state_dict"]) == {"fc_i", "fc_t"}
    state = torch.load(out / "generator" / "model.pth.tar-2", weights_only=True)
    assert set(state["state_dict"]) == {"img2img_cov"}
    results = json.loads((out / "results.json").read_text())
    assert results["hparams"]["lambda1"] == 0.5 and results["hparams"]["lambda2"] == 10.0
    assert results["best_epoch"] in (1, 2)
    for score in ("energy", "mcm", "max_logit", "knn"):
        assert set(results["open_set"]["DTD"][score]) >= {"auroc", "fpr95", "aupr_in", "aupr_out"}
    assert (out / "scores.npz").exists()


def test_eval_only_reloads_the_best_checkpoint(synthetic_root, tmp_path):
    out = tmp_path / "train"
    assert main(croft_args(synthetic_root, out)) == 0
    trained = json.loads((out / "results.json").read_text())
    evaluated_dir = tmp_path / "eval"
    assert main(croft_args(synthetic_root, evaluated_dir)) == 0  # same seed: same numbers
    again = json.loads((evaluated_dir / "results.json").read_text())
    assert again["closed_set"]["test_accuracy"] == pytest.approx(trained["closed_set"]["test_accuracy"])
    eval_out = tmp_path / "eval_only"
    args = croft_args(synthetic_root, eval_out)
    args[args.index("--output-dir") + 2:args.index("--output-dir") + 2] = ["--eval-only", "--model-dir", str(out)]
    assert main(args) == 0
    evaluated = json.loads((eval_out / "results.json").read_text())
    assert evaluated["closed_set"]["test_accuracy"] == pytest.approx(trained["closed_set"]["test_accuracy"])
    assert evaluated["best_epoch"] == trained["best_epoch"]


def test_non_finite_loss_names_epoch_batch_and_term(synthetic_root, tmp_path, monkeypatch):
    trainer = build(croft_args(synthetic_root, tmp_path / "nan", "TRAINER.CRoFT.gen_step", "0"))
    monkeypatch.setattr(trainer, "parse_batch_train", lambda batch: (torch.full(
        (len(batch), trainer.feat_dim), float("nan")), batch.labels))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1/2, batch 1/\d+: loss term 'cross-entropy'"):
        trainer.train()
    assert not os.path.exists(tmp_path / "nan" / "results.json")


def test_eval_ratios_apply_only_to_the_final_evaluation(synthetic_root, tmp_path):
    trainer = build(croft_args(synthetic_root, tmp_path / "r", "TRAINER.CRoFT.EVAL_RATIO", "0.5",
                               "TRAINER.CRoFT.EVAL_RATIO_TEXT", "0.0"))
    torch.manual_seed(0)
    dim = trainer.feat_dim
    with torch.no_grad():
        trainer.adapter.fc_i.copy_(torch.eye(dim) + 0.3 * torch.randn(dim, dim))
        trainer.adapter.fc_t.copy_(torch.eye(dim) + 0.3 * torch.randn(dim, dim))
    x = torch.randn(5, dim)
    t = trainer.text_raw
    w_i, w_t = trainer.adapter.fc_i.detach(), trainer.adapter.fc_t.detach()

    def expected(r, r_t):  # docs/method.md: logits = s * norm(r x W_i^T + (1-r) x) norm(r_t t W_t^T + (1-r_t) t)^T
        img = r * x @ w_i.t() + (1 - r) * x
        txt = r_t * t @ w_t.t() + (1 - r_t) * t
        img = img / (1e-6 + img.norm(dim=1, keepdim=True))
        txt = txt / (1e-6 + txt.norm(dim=1, keepdim=True))
        return trainer.logit_scale * img @ txt.t()

    torch.testing.assert_close(trainer.inference(x, TRAINING).logits, expected(0.2, 0.5))
    torch.testing.assert_close(trainer.inference(x, FINAL).logits, expected(0.5, 0.0))
    assert not torch.allclose(expected(0.2, 0.5), expected(0.5, 0.0))


def test_eval_only_load_epoch(synthetic_root, tmp_path):
    out = tmp_path / "train"
    assert main(croft_args(synthetic_root, out, "TEST.FINAL_MODEL", "best_val")) == 0
    eval_out = tmp_path / "eval_epoch2"
    args = croft_args(synthetic_root, eval_out)
    args[0:0] = ["--eval-only", "--model-dir", str(out), "--load-epoch", "2"]
    assert main(args) == 0
    assert json.loads((eval_out / "results.json").read_text())["best_epoch"] == 2
    assert 'model.pth.tar-2" (epoch = 2)' in (eval_out / "log.txt").read_text()
    missing = tmp_path / "eval_epoch7"
    args = croft_args(synthetic_root, missing)
    args[0:0] = ["--eval-only", "--model-dir", str(out), "--load-epoch", "7"]
    assert main(args) == 1
    assert "checkpoint not found" in (missing / "log.txt").read_text()
    assert not (missing / "results.json").exists()
