"""The baselines (CoOp, CoCoOp, CLIP-Adapter, Tip-Adapter-F, DPLCLIP) on synthetic PACS with the
tiny backbone: one epoch each, results.json, what trains and what stays frozen, and the pieces
of each method checked against independent formulas."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from croft import trainers  # noqa: F401
from croft.clip.backbone import load_clip
from croft.config import setup_cfg
from croft.data.batch import Batch
from croft.engine.fingerprint import EXCLUDED_KEYS, trainer_group
from croft.utils.logging import setup_logger
from croft.engine.trainer import build_trainer, set_random_seed
from croft.train import build_parser, main
from croft.trainers.coop import CoOpPromptLearner
from croft.trainers.prompt_learner import ClassPrompts, PromptTextEncoder

REPO = Path(__file__).resolve().parents[1]
BASELINES = ["CoOp", "CoCoOp", "CLIP_Adapter", "TIP_ADAPTER", "DPLCLIP"]
# registered model name -> parameter names it must hold (and nothing of CLIP)
OWN_STATE = {
    "CoOp": ("prompt_learner", {"ctx"}),
    "CoCoOp": ("prompt_learner", {"ctx", "meta_net.0.weight", "meta_net.0.bias", "meta_net.2.weight",
                                  "meta_net.2.bias"}),
    "CLIP_Adapter": ("adapter", {"fc.0.weight", "fc.2.weight"}),
    "TIP_ADAPTER": ("tip_adapter", {"keys.weight", "values"}),
    "DPLCLIP": ("domain_prompt_mlp", {f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")}),
}
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def run_args(name, root, out, *extra, config="rn50_ep30"):
    return ["--root", str(root), "--seed", "1", "--trainer", name,
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"),
            "--config-file", str(REPO / f"configs/trainers/{name}/{config}.yaml"), "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2",
            "OPTIM.MAX_EPOCH", "1", "OPTIM.WARMUP_EPOCH", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8",
            "DATALOADER.TEST.BATCH_SIZE", "32", "DATASET.OOD_SETS", "['DTD']",
            "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "2", *FAST, *extra]


def eval_only_args(name, root, out, model_dir, *extra):
    args = run_args(name, root, out, *extra)
    at = args.index("--output-dir") + 2
    return args[:at] + ["--eval-only", "--model-dir", str(model_dir)] + args[at:]


def tip_cache_file(out):
    files = list((Path(out) / "tip_adapter_cache").glob("keys_*.pt"))
    assert len(files) == 1, files
    return files[0]


def build(args):
    cfg = setup_cfg(build_parser().parse_args(args))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


class Run:
    def __init__(self, trainer, out, clip_before, own_before):
        self.trainer, self.out, self.clip_before, self.own_before = trainer, out, clip_before, own_before


@pytest.fixture(scope="module")
def trained(synthetic_root, tmp_path_factory):
    """One-epoch run of a baseline, trained once per module on first use."""
    runs = {}
    root = tmp_path_factory.mktemp("baseline_runs")

    def get(name):
        if name not in runs:
            out = root / name
            setup_logger(str(out))  # log.txt, as croft.train.main does
            trainer = build(run_args(name, synthetic_root, out))
            model_name = OWN_STATE[name][0]
            clip_before = {k: v.clone() for k, v in trainer.clip_model.state_dict().items()}
            own_before = {k: v.clone() for k, v in trainer._models[model_name].state_dict().items()}
            trainer.train()
            runs[name] = Run(trainer, out, clip_before, own_before)
        return runs[name]

    return get


@pytest.mark.parametrize("name", BASELINES)
def test_one_epoch_trains_only_the_method_and_writes_results(trained, name):
    run = trained(name)
    trainer, out = run.trainer, run.out
    # CLIP: bit-identical and frozen
    for key, value in trainer.clip_model.state_dict().items():
        assert torch.equal(value, run.clip_before[key]), f"CLIP tensor {key} changed"
    assert not any(p.requires_grad for p in trainer.clip_model.parameters())
    # the method's own parameters moved; its checkpoint holds them and nothing of CLIP
    model_name, expected = OWN_STATE[name]
    model = trainer._models[model_name]
    assert set(model.state_dict()) == expected
    for key, param in model.named_parameters():
        before = run.own_before[key]
        if name == "TIP_ADAPTER":  # sized and initialised in before_train: the keys start from the cache
            before = torch.load(tip_cache_file(out), weights_only=True)["keys"]
        assert param.shape == before.shape, key
        assert param.requires_grad and not torch.equal(param.detach(), before), f"{key} did not train"
    assert list(trainer._models) == [model_name]
    state = torch.load(out / model_name / "model-best.pth.tar", weights_only=True)
    assert set(state["state_dict"]) == expected
    assert (out / model_name / "model.pth.tar-1").exists()
    # results.json with closed-set and open-set sections
    results = json.loads((out / "results.json").read_text())
    assert results["trainer"] == name and results["target_domains"] == ["sketch"]
    group = trainer_group(trainer.cfg)  # hparams: the trainer's own config node, as the fingerprint records it
    node = {k.lower(): v for k, v in trainer.cfg.TRAINER[group].items() if f"TRAINER.{group}.{k}" not in EXCLUDED_KEYS}
    assert results["hparams"] == node and results["hparams"]
    assert 0.0 <= results["closed_set"]["test_accuracy"] <= 100.0
    for score in ("energy", "mcm", "max_logit", "knn"):
        assert set(results["open_set"]["DTD"][score]) >= {"auroc", "fpr95", "aupr_in", "aupr_out"}
    scores = np.load(out / "scores.npz")
    assert np.isfinite(scores["energy/id"]).all()


@pytest.mark.parametrize("name, shots", [("TIP_ADAPTER", None), ("CoOp", None)])
def test_eval_only_reproduces_the_trained_model(trained, name, shots, tmp_path, monkeypatch):
    """The cache module takes the checkpoint's size, and no cache of the eval run's train_x is made."""
    import croft.trainers.tip_adapter as tip

    sizes = []

    class RecordingTipCache(tip.TipCache):
        def __init__(self, num_keys, *args, **kwargs):
            sizes.append(num_keys)
            super().__init__(num_keys, *args, **kwargs)

    monkeypatch.setattr(tip, "TipCache", RecordingTipCache)
    run = trained(name)
    eval_out = tmp_path / "eval"
    extra = () if shots is None else ("DATASET.NUM_SHOTS", shots)
    assert main(eval_only_args(name, run.trainer.cfg.DATASET.ROOT, eval_out, run.out, *extra)) == 0
    trained_results = json.loads((run.out / "results.json").read_text())
    evaluated = json.loads((eval_out / "results.json").read_text())
    if name == "TIP_ADAPTER":
        assert sizes == [0, len(run.trainer.dataset.train_x)]  # the placeholder, then the checkpoint's size
    # the validation split is sampled with NUM_SHOTS too
    for key in ("val_accuracy", "test_accuracy") if shots is None else ("test_accuracy",):
        assert evaluated["closed_set"][key] == pytest.approx(trained_results["closed_set"][key])
    assert evaluated["best_epoch"] == trained_results["best_epoch"]
    a, b = np.load(run.out / "scores.npz"), np.load(eval_out / "scores.npz")
    np.testing.assert_allclose(a["energy/id"], b["energy/id"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a["energy/ood/DTD"], b["energy/ood/DTD"], rtol=1e-5, atol=1e-5)


def test_eval_only_with_another_training_set_is_refused(trained, tmp_path, capfd):
    """A model trained with 2 shots is not evaluated as a run of another NUM_SHOTS (its val split
    and results.json would describe settings it was not trained with): the fingerprint refuses it."""
    run = trained("TIP_ADAPTER")
    eval_out = tmp_path / "eval"
    args = eval_only_args("TIP_ADAPTER", run.trainer.cfg.DATASET.ROOT, eval_out, run.out, "DATASET.NUM_SHOTS", "-1")
    assert main(args) == 1
    assert "DATASET.NUM_SHOTS 2 -> -1" in capfd.readouterr().err
    assert not (eval_out / "results.json").exists()


@pytest.mark.parametrize("name", BASELINES)
def test_setup1_imagenet_one_epoch(synthetic_root, tmp_path, name):
    """Setup-I: synthetic ImageNet46 (ensemble prompts, four variants, new-class open set)."""
    out = tmp_path / name
    args = ["--root", synthetic_root, "--seed", "1", "--trainer", name,
            "--dataset-config-file", str(REPO / "configs/datasets/imagenet46.yaml"),
            "--config-file", str(REPO / f"configs/trainers/{name}/ViT_ep30.yaml"), "--backbone", "tiny",
            "--output-dir", str(out), "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1",
            "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "1", *FAST]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "ImageNet46" and results["trainer"] == name
    assert set(results["closed_set"]["per_domain"]) == {"imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"}
    assert set(results["open_set"]["ImageNet-new"]["energy"]) >= {"auroc", "fpr95"}


# ------------------------------------------------------------------ prompts and precision

@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip("tiny", pretrained="none")


@pytest.mark.parametrize("position, sentence", [("end", "a photo of a {}."), ("middle", "a photo {} of a."),
                                                ("front", "{} a photo of a.")])
def test_prompt_with_ctx_init_equals_encode_text_of_the_sentence(tiny_clip, position, sentence):
    model, tokenizer = tiny_clip
    classnames = ["dog", "guitar", "house_plant"]
    encoder = PromptTextEncoder(model)
    prompts = ClassPrompts(encoder, tokenizer, classnames, n_ctx=16, position=position, ctx_init="a photo of a")
    assert prompts.n_ctx == 4
    for csc in (False, True):
        learner = CoOpPromptLearner(prompts, encoder.width, csc=csc)
        got = encoder(learner(), prompts.tokens)
        names = [c.replace("_", " ") for c in classnames]
        expected = model.encode_text(tokenizer([sentence.format(n) for n in names]))
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_prompt_rejects_too_long_prompts_and_bad_positions(tiny_clip):
    model, tokenizer = tiny_clip
    encoder = PromptTextEncoder(model)
    with pytest.raises(ValueError, match="CLASS_TOKEN_POSITION 'left'"):
        ClassPrompts(encoder, tokenizer, ["dog"], n_ctx=4, position="left")
    with pytest.raises(ValueError, match="prompt for class 'dog' needs 78 tokens"):
        ClassPrompts(encoder, tokenizer, ["dog"], n_ctx=74)


def test_coop_fp16_on_cpu_falls_back_to_fp32(trained):
    run = trained("CoOp")  # the CoOp YAML sets the reference's PREC fp16
    assert run.trainer.cfg.TRAINER.COOP.PREC == "fp16"
    assert run.trainer.prec == "fp32" and run.trainer.scaler is None
    assert run.trainer.text_encoder.dtype == torch.float32
    assert "TRAINER.COOP.PREC fp16 needs CUDA; running in fp32" in (run.out / "log.txt").read_text()
    # results.json records the configured value (the fingerprint's); the log above says what ran
    assert json.loads((run.out / "results.json").read_text())["hparams"]["prec"] == "fp16"


def test_invalid_prec_is_an_error_naming_the_key(synthetic_root, tmp_path, capfd):
    # a config error (check_cfg, before any work): exit 2, nothing written (tests/test_trainer_checks.py)
    assert main(run_args("CoOp", synthetic_root, tmp_path / "bad", "TRAINER.COOP.PREC", "bf16")) == 2
    assert "invalid value for 'TRAINER.COOP.PREC': 'bf16'" in capfd.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cocoop_chunked_text_passes_give_the_same_gradient(trained, monkeypatch):
    trainer = trained("CoCoOp").trainer
    trainer.set_model_mode("train")
    gen = torch.Generator().manual_seed(0)
    batch = Batch(features=torch.randn(3, trainer.feat_dim, generator=gen),
                  labels=torch.randint(0, trainer.num_classes, (3,), generator=gen),
                  domains=torch.zeros(3, dtype=torch.long), impaths=["a", "b", "c"], indices=torch.arange(3))
    monkeypatch.setattr(trainer, "update", lambda names=None: None)
    grads, losses = [], []
    for per_chunk in (3, 2, 1):
        monkeypatch.setattr(trainer, "images_per_chunk", lambda n=per_chunk: n)
        losses.append(trainer.forward_backward(batch)["loss"])
        grads.append([p.grad.clone() for p in trainer.prompt_learner.parameters()])
    for other, loss in zip(grads[1:], losses[1:]):
        assert loss == pytest.approx(losses[0], rel=1e-5)
        for g0, g in zip(grads[0], other):
            torch.testing.assert_close(g, g0, rtol=1e-4, atol=1e-6)
    # evaluation: each image's logits come from its own conditioned prompts, whatever the batch;
    # text_features are the unconditioned context's (C x D, for MCM)
    trainer.set_model_mode("eval")
    out = trainer.inference(batch.features)
    assert out.logits.shape == (3, trainer.num_classes)
    assert out.text_features.shape == (trainer.num_classes, trainer.feat_dim)
    with torch.no_grad():
        for i in range(3):
            torch.testing.assert_close(out.logits[i:i + 1], trainer.conditioned_logits(out.image_features[i:i + 1]),
                                       rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out.logits, trainer.logit_scale * out.image_features @ out.text_features.t())


def test_dplclip_scores_each_sample_against_its_own_domain_prompt(trained):
    trainer = trained("DPLCLIP").trainer
    trainer.set_model_mode("eval")  # no dropout
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(6, trainer.feat_dim, generator=gen)
    domains = torch.tensor([2, 0, 2, 1, 0, 2])
    with torch.no_grad():
        logits = trainer.domain_logits(raw, domains)
        assert logits.shape == (6, trainer.num_classes)
        tokens = trainer.mlp(raw).view(6, *trainer.ctx_shape)
        for d in (0, 1, 2):
            idx = domains == d
            text = trainer.domain_text_features(tokens[idx].mean(0, keepdim=True))[0]
            img = raw[idx] / raw[idx].norm(dim=-1, keepdim=True)
            torch.testing.assert_close(logits[idx], trainer.logit_scale * img @ text.t(), rtol=1e-5, atol=1e-5)
        # test time: the mean prompt over the batch
        out = trainer.inference(raw)
        text = trainer.domain_text_features(tokens.mean(0, keepdim=True))[0]
        # the batch's text features, one copy per sample (they vary by batch: docs/differences.md B27)
        assert out.text_features.shape == (6, trainer.num_classes, trainer.feat_dim)
        for i in range(6):
            torch.testing.assert_close(out.text_features[i], text)
        torch.testing.assert_close(out.logits, trainer.logit_scale * out.image_features @ text.t())


# ------------------------------------------------------------------ Tip-Adapter

def test_tip_adapter_logits_formula(trained):
    trainer = trained("TIP_ADAPTER").trainer
    cfg = trainer.cfg.TRAINER.TIP_ADAPTER
    x = torch.randn(4, trainer.feat_dim, generator=torch.Generator().manual_seed(0))
    xn = x / x.norm(dim=-1, keepdim=True)
    keys = trainer.cache.keys.weight.detach()
    labels = torch.tensor([item.label for item in trainer.dataset.train_x])
    values = F.one_hot(labels, trainer.num_classes).float()
    expected = (trainer.logit_scale * xn @ trainer.text.t()
                + cfg.ALPHA * torch.exp(-cfg.BETA * (1 - xn @ keys.t())) @ values)
    out = trainer.inference(x)
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    assert cfg.ALPHA == 1.0 and cfg.BETA == 1.17


def test_tip_adapter_cache_keys_are_the_normalised_mean_of_the_raw_augmented_features(trained):
    """Tip-Adapter: keys = normalise(mean over the augmented passes of the raw image features),
    computed here from the images, each pass p being augmented view p of the training transform."""
    from croft.data.images import load_view, view_seed

    trainer = trained("TIP_ADAPTER").trainer
    dm, items = trainer.dm, trainer.dataset.train_x
    with torch.no_grad():
        raw = torch.stack([
            trainer.clip_model.encode_image(torch.stack(
                [load_view(it.impath, dm.train_transform, view_seed(dm.aug_seed, p, it.impath)) for it in items])).float()
            for p in range(trainer.cfg.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH)])
    mean = raw.mean(0)
    expected = mean / mean.norm(dim=-1, keepdim=True)
    stored = torch.load(tip_cache_file(trained("TIP_ADAPTER").out), weights_only=True)["keys"]
    assert raw.shape[0] == 2 and stored.shape == expected.shape
    torch.testing.assert_close(stored, expected, rtol=1e-4, atol=1e-5)
    # normalising each pass first gives other keys here, so the check tells the two orders apart
    per_pass = (raw / raw.norm(dim=-1, keepdim=True)).mean(0)
    assert not torch.allclose(stored, per_pass / per_pass.norm(dim=-1, keepdim=True), rtol=1e-4, atol=1e-5)


def test_tip_adapter_cache_is_keyed_by_run_and_never_reused_wrongly(trained, tmp_path, monkeypatch):
    run = trained("TIP_ADAPTER")
    trainer = run.trainer
    files = [tip_cache_file(run.out)]
    stored = torch.load(files[0], weights_only=True)
    key = stored["key"]
    assert (key["dataset"], key["test_env"], key["shots"], key["seed"], key["backbone"]) == \
        ("PACS", "test_on_sketch.json", 2, 1, "tiny")
    assert key["target_domains"] == ["sketch"] and key["augment_epoch"] == 2
    norms = stored["keys"].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    # the frozen model is identified as the feature cache identifies it (weights by content), also
    # when the feature cache is off
    assert key["model"] == trainer.feature_cache.identity and key["model"]["weights"]["kind"] == "random-init"
    with monkeypatch.context() as patch:
        patch.setattr(trainer, "feature_cache", None)
        assert trainer.cache_key() == key
        # weights from a file: its content, so a checkpoint retrained at the same path is a new key
        weights = tmp_path / "weights.pt"
        cfg = trainer.cfg.clone()
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAINED = str(weights)
        patch.setattr(trainer, "cfg", cfg)
        weights.write_bytes(b"first training")
        first = trainer.cache_key()
        weights.write_bytes(b"retrained at the same path")
        second = trainer.cache_key()
        assert first["model"]["weights"] == {"kind": "file",
                                             "sha256": hashlib.sha256(b"first training").hexdigest()}
        assert trainer.cache_path(first) != trainer.cache_path(second) != str(files[0])
    assert trainer.cache_path(key) == str(files[0])
    for field, value in (("seed", 2), ("test_env", "test_on_photo.json"), ("shots", 4), ("dataset", "VLCS")):
        assert trainer.cache_path(dict(key, **{field: value})) != str(files[0])
    weight = trainer.cache.keys.weight
    saved_weight = weight.detach().clone()
    try:
        # the stored cache is reused as is, without touching the RNG
        rng = torch.get_rng_state()
        trainer.build_cache_model()
        torch.testing.assert_close(weight.detach(), stored["keys"])
        assert torch.equal(torch.get_rng_state(), rng)
        # a file at that path from another run (different key) is recomputed, not reused
        torch.save({"key": dict(key, seed=99), "keys": torch.zeros_like(stored["keys"])}, files[0])
        trainer.build_cache_model()
        assert torch.equal(torch.get_rng_state(), rng)  # computing the cache leaves the RNG as it was
        assert not torch.equal(weight.detach(), torch.zeros_like(weight))
        assert torch.load(files[0], weights_only=True)["key"] == key
    finally:
        with torch.no_grad():
            weight.copy_(saved_weight)


def test_training_free_tip_adapter_writes_its_checkpoint_and_re_evaluates(synthetic_root, tmp_path):
    out, eval_out = tmp_path / "free", tmp_path / "eval"
    assert main(run_args("TIP_ADAPTER", synthetic_root, out, "OPTIM.MAX_EPOCH", "0")) == 0
    best = torch.load(out / "tip_adapter" / "model-best.pth.tar", weights_only=True)
    assert best["epoch"] == 0 and best["optimizer"] is None and (out / "tip_adapter" / "model.pth.tar-0").exists()
    # training-free: the checkpoint holds the cache itself
    torch.testing.assert_close(best["state_dict"]["keys.weight"], torch.load(tip_cache_file(out), weights_only=True)["keys"])
    # the same settings as the training-free run (the fingerprint would refuse others)
    assert main(eval_only_args("TIP_ADAPTER", synthetic_root, eval_out, out, "OPTIM.MAX_EPOCH", "0")) == 0
    trained_results = json.loads((out / "results.json").read_text())
    evaluated = json.loads((eval_out / "results.json").read_text())
    assert trained_results["best_epoch"] == evaluated["best_epoch"] == 0
    for key in ("val_accuracy", "test_accuracy"):
        assert evaluated["closed_set"][key] == pytest.approx(trained_results["closed_set"][key])
    np.testing.assert_allclose(np.load(out / "scores.npz")["energy/id"], np.load(eval_out / "scores.npz")["energy/id"],
                               rtol=1e-5, atol=1e-5)


def test_collect_results_shows_every_baseline(trained):
    from croft.results.collect import collect, format_table

    for name in BASELINES:
        trained(name)
    root = trained("CoOp").out.parent
    rows = collect(str(root))
    assert sorted(r["trainer"] for r in rows) == sorted(BASELINES)
    table = format_table(rows, "md")
    for name in BASELINES:
        assert name in table


# ------------------------------------------------------------------ configs and scripts

@pytest.mark.parametrize("name", BASELINES)
def test_reference_configs(name):
    seen = {}
    for config in ("rn50_ep30", "ViT_ep30"):
        path = REPO / f"configs/trainers/{name}/{config}.yaml"
        cfg = setup_cfg(build_parser().parse_args(["--trainer", name, "--config-file", str(path)]))
        assert cfg.OPTIM.WEIGHT_DECAY == 0.1 and "WEIGHT_DECAY" in path.read_text()
        assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR_SCHEDULER == "cosine" and cfg.INPUT.INTERPOLATION == "bicubic"
        seen[config] = (cfg.MODEL.BACKBONE.NAME, cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH)
    expected = {"rn50_ep30": ("RN50", 32, 0.002, 30), "ViT_ep30": ("ViT-B/16", 32, 0.002, 30)}
    if name == "CoCoOp":
        expected["ViT_ep30"] = ("ViT-B/16", 4, 0.002, 30)
    if name == "TIP_ADAPTER":
        expected = {"rn50_ep30": ("RN50", 256, 0.002, 30), "ViT_ep30": ("ViT-B/16", 32, 0.001, 50)}
    assert seen == expected


def test_bash_entry_points_wrap_croft_sweep(tmp_path):
    """scripts/<method>/run_setup{1,2}.sh are one-line wrappers over croft-sweep with the method's grids."""
    for method in ("croft", "coop", "cocoop", "clip_adapter", "tip_adapter", "dplclip"):
        for script, grids in (("run_setup1.sh", [f"{method}_setup1"]),
                              ("run_setup2.sh", [f"{method}_setup2_pacs", f"{method}_setup2_vlcs"])):
            path = REPO / "scripts" / method / script
            subprocess.run(["bash", "-n", str(path)], check=True)
            for grid in grids:
                assert (REPO / "configs" / "sweeps" / f"{grid}.yaml").is_file() and f"{grid}.yaml" in path.read_text()
    # a wrapper passes its arguments on: plan the runs of one seed without running anything
    proc = subprocess.run(["bash", str(REPO / "scripts" / "coop" / "run_setup1.sh"), "--dry-run", "--only", "seed=1"],
                          capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, DATA=str(tmp_path), OUTPUT=str(tmp_path / "out"), PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 run(s)" in proc.stdout and not (tmp_path / "out").exists()
