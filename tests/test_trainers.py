"""End-to-end runs of ZeroshotCLIP and CRoFT on synthetic PACS with the tiny backbone.

Every number checked here is recomputed from something else of the run: accuracies from
``scores.npz``'s ``correct/id``, AUROCs from the score arrays (pairwise, without scikit-learn),
energies from ``trainer.inference`` on the test loader, best epochs from the checkpoints.
"""
import json
import os

import numpy as np
import pytest
import torch

from croft import trainers  # noqa: F401
from croft.config import setup_cfg
from croft.utils.logging import setup_logger
from croft.engine.trainer import NonFiniteLossError, build_trainer, set_random_seed
from croft.evaluation.inference import FINAL, TRAINING
from croft.results.io import correct_key, id_key, load_scores, ood_key, shift_key
from croft.train import build_parser, main

FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]
SCORES = ("energy", "mcm", "max_logit", "knn")


def croft_args(root, out, *extra):
    return ["--root", str(root), "--seed", "1", "--trainer", "CRoFT",
            "--dataset-config-file", "configs/datasets/PACS.yaml",
            "--config-file", "configs/trainers/CRoFT/rn50_ep30.yaml", "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "4",
            "TRAINER.CRoFT.lambda1", "0.5", "TRAINER.CRoFT.lambda2", "10", "OPTIM.MAX_EPOCH", "2", *FAST, *extra]


def eval_only(args, model_dir, *flags):
    return ["--eval-only", "--model-dir", str(model_dir), *flags, *args]


def build(args):
    cfg = setup_cfg(build_parser().parse_args(args))
    setup_logger(cfg.OUTPUT_DIR)  # log.txt, as croft.train.main does
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def pairwise_auroc(pos, neg):
    """AUROC in percent as P(pos > neg) + P(pos == neg) / 2 over all pairs (Mann-Whitney)."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return 100.0 * (np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def accuracy_of(correct):
    return 100.0 * int(np.sum(correct)) / len(correct)


def assert_metrics_match_scores(results, scores, ood_set="DTD"):
    """Standard protocol: accuracy = share of correct ID samples, AUROC of every score = pairwise AUROC."""
    correct = scores[correct_key()]
    assert results["closed_set"]["test_accuracy"] == accuracy_of(correct)
    for score in SCORES:
        id_scores, ood_scores = scores[id_key(score)], scores[ood_key(ood_set, score)]
        assert len(id_scores) == len(correct)
        assert results["open_set"][ood_set][score]["auroc"] == pytest.approx(
            pairwise_auroc(id_scores, ood_scores), abs=1e-9), score


def test_zeroshot_clip_writes_results_and_config(synthetic_root, tmp_path):
    out = tmp_path / "zs"
    rc = main(["--root", str(synthetic_root), "--seed", "1", "--trainer", "ZeroshotCLIP",
               "--dataset-config-file", "configs/datasets/PACS.yaml",
               "--config-file", "configs/trainers/ZeroshotCLIP/rn50.yaml", "--backbone", "tiny",
               "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.OOD_SETS", "['DTD']", *FAST])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["trainer"] == "ZeroshotCLIP" and results["target_domains"] == ["sketch"]
    assert results["best_epoch"] is None and results["best_val_accuracy"] is None  # nothing trained
    scores = load_scores(str(out))
    assert_metrics_match_scores(results, scores)
    assert results["closed_set"]["per_domain"] == {"sketch": results["closed_set"]["test_accuracy"]}
    assert np.array_equal(scores[shift_key("sketch")], scores[id_key("energy")])  # standard: ID side = test set
    saved = setup_cfg(build_parser().parse_args(["--config-file", str(out / "config.yaml")]))
    assert saved.TEST_ENV == "test_on_sketch.json" and saved.TRAINER.NAME == "ZeroshotCLIP"
    assert "Results written to" in (out / "log.txt").read_text()


def test_croft_trains_adapter_and_generator_and_nothing_of_clip(synthetic_root, tmp_path):
    """With weight decay 0 a matrix leaves the identity only through its gradients."""
    out = tmp_path / "croft"
    trainer = build(croft_args(synthetic_root, out, "DATASET.OOD_SETS", "['DTD']", "TRAINER.CRoFT.gen_step", "1",
                               "OPTIM.WEIGHT_DECAY", "0"))
    assert trainer.hp.gen_step == 1 and trainer.hp.wccf
    clip_before = {k: v.clone() for k, v in trainer.clip_model.state_dict().items()}
    trainer.train()
    for key, value in trainer.clip_model.state_dict().items():
        assert torch.equal(value, clip_before[key]), f"CLIP parameter {key} changed"
    eye = torch.eye(trainer.feat_dim)
    for name, matrix in (("fc_i", trainer.adapter.fc_i), ("fc_t", trainer.adapter.fc_t),
                         ("img2img_cov", trainer.generator.img2img_cov)):
        assert not torch.allclose(matrix.detach().cpu(), eye), f"{name} did not train"
    # the deployed model is the best-val checkpoint of both models, which hold only the matrices
    best_epochs = set()
    for name, module, keys in (("clip_adapter", trainer.adapter, {"fc_i", "fc_t"}),
                               ("generator", trainer.generator, {"img2img_cov"})):
        best = torch.load(out / name / "model-best.pth.tar", weights_only=True)
        last = torch.load(out / name / "model.pth.tar-2", weights_only=True)
        assert set(best["state_dict"]) == set(last["state_dict"]) == keys
        for key, value in module.state_dict().items():
            assert torch.equal(value, best["state_dict"][key])
        best_epochs.add(best["epoch"])
        best_val = best["val_result"]
    results = json.loads((out / "results.json").read_text())
    assert best_epochs == {results["best_epoch"]}
    # the final evaluation recomputes the val accuracy of the deployed model: the same as when it was selected
    assert results["best_val_accuracy"] == results["closed_set"]["val_accuracy"] == best_val
    assert results["hparams"]["lambda1"] == 0.5 and results["hparams"]["lambda2"] == 10.0  # CLI overrides recorded
    assert_metrics_match_scores(results, load_scores(str(out)))


def test_croft_generator_steps_once_per_gen_step(synthetic_root, tmp_path):
    """Each batch: ``gen_step`` generator updates, then CE + EDR; the generator moves at every update."""
    trainer = build(croft_args(synthetic_root, tmp_path / "g", "TRAINER.CRoFT.gen_step", "2",
                               "OPTIM.WEIGHT_DECAY", "0", "OPTIM.WARMUP_EPOCH", "0"))
    trainer.before_train()
    trainer.set_model_mode("train")
    trainer.dm.set_epoch(0)
    batch = next(iter(trainer.train_loader_x))
    seen = [trainer.generator.img2img_cov.detach().clone()]
    update = trainer.backward_and_update

    def recording(loss):
        update(loss)
        seen.append(trainer.generator.img2img_cov.detach().clone())

    trainer.backward_and_update = recording
    trainer.forward_backward(batch)
    assert len(seen) == 1 + 2 + 1
    for before, after in zip(seen, seen[1:]):
        assert not torch.equal(before, after)


def test_same_seed_gives_bit_identical_runs(synthetic_root, tmp_path):
    """Training is deterministic under a seed (the eval-only round trip: tests/test_trainer_contract.py)."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(croft_args(synthetic_root, first, "DATASET.OOD_SETS", "['DTD']")) == 0
    assert main(croft_args(synthetic_root, second, "DATASET.OOD_SETS", "['DTD']")) == 0
    a, b = load_scores(str(first)), load_scores(str(second))
    assert set(a) == set(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (first, second))
    for key in ("closed_set", "open_set", "best_epoch", "best_val_accuracy"):
        assert ra[key] == rb[key], key
    for name in ("clip_adapter", "generator"):
        sa = torch.load(first / name / "model.pth.tar-2", weights_only=True)
        sb = torch.load(second / name / "model.pth.tar-2", weights_only=True)
        for key in sa["state_dict"]:
            assert torch.equal(sa["state_dict"][key], sb["state_dict"][key])


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


def test_final_evaluation_applies_the_eval_ratios_itself(synthetic_root, tmp_path):
    """The run's final evaluation, not the test, picks the EVAL_RATIO* inference: its energies and
    accuracies are those of ``inference(x, FINAL)`` on the deployed model, not of ``TRAINING``."""
    out = tmp_path / "final"
    # no warm-up and a larger LR: the adapters leave the identity, where every ratio gives the same logits
    trainer = build(croft_args(synthetic_root, out, "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2",
                               "OPTIM.WARMUP_EPOCH", "0", "OPTIM.LR", "0.5",
                               "DATASET.OOD_SETS", "['DTD']", "TRAINER.CRoFT.EVAL_RATIO", "0.5",
                               "TRAINER.CRoFT.EVAL_RATIO_TEXT", "0.0"))
    trainer.train()  # ends with the final evaluation of the deployed (best-val) model
    scores = load_scores(str(out))
    results = json.loads((out / "results.json").read_text())
    trainer.set_model_mode("eval")

    def logits_and_labels(loader, settings):
        logits, labels = [], []
        for batch in loader:
            logits.append(trainer.inference(batch.features, settings).logits.float().cpu())
            labels.append(batch.labels.cpu())
        return torch.cat(logits), torch.cat(labels)

    for loader, key, accuracy in ((trainer.test_loader, shift_key("sketch"), results["closed_set"]["test_accuracy"]),
                                  (trainer.val_loader, "energy/val", results["closed_set"]["val_accuracy"])):
        final, labels = logits_and_labels(loader, FINAL)
        training, _ = logits_and_labels(loader, TRAINING)
        energy = lambda logits: torch.logsumexp(logits, dim=1).double().numpy()  # noqa: E731
        assert np.array_equal(scores[key], energy(final)), key
        assert np.abs(scores[key] - energy(training)).max() > 0.1, key
        assert accuracy == accuracy_of((final.argmax(1) == labels).numpy())
    assert results["hparams"]["eval_ratio"] == 0.5 and results["hparams"]["eval_ratio_text"] == 0.0


def test_eval_only_load_epoch(synthetic_root, tmp_path):
    out = tmp_path / "train"
    assert main(croft_args(synthetic_root, out, "TRAIN.CHECKPOINT_FREQ", "1", "DATASET.OOD_SETS", "['DTD']")) == 0
    trained = json.loads((out / "results.json").read_text())
    trained_scores = load_scores(str(out))
    evaluated = {}
    for epoch in (1, 2):
        eval_out = tmp_path / f"eval_epoch{epoch}"
        assert main(eval_only(croft_args(synthetic_root, eval_out, "DATASET.OOD_SETS", "['DTD']"), out,
                              "--load-epoch", str(epoch))) == 0
        assert json.loads((eval_out / "results.json").read_text())["best_epoch"] == epoch
        log = (eval_out / "log.txt").read_text()
        for name in ("clip_adapter", "generator"):
            assert f'Loading weights to {name} from "{out / name / f"model.pth.tar-{epoch}"}" (epoch = {epoch})' in log
        evaluated[epoch] = load_scores(str(eval_out))
    # the deployed (best-val) epoch evaluates to the run's own scores, the other epoch does not
    best, other = trained["best_epoch"], 3 - trained["best_epoch"]
    for key in trained_scores:
        assert np.array_equal(evaluated[best][key], trained_scores[key]), key
    assert not np.array_equal(evaluated[other][shift_key("sketch")], trained_scores[shift_key("sketch")])
    missing = tmp_path / "eval_epoch7"
    assert main(eval_only(croft_args(synthetic_root, missing), out, "--load-epoch", "7")) == 1
    assert "checkpoint not found" in (missing / "log.txt").read_text()
    assert not (missing / "results.json").exists()
