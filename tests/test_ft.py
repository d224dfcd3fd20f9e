"""FT, LP-FT and WiSE-FT (croft/trainers/ft.py, docs/method.md §6.10).

On synthetic PACS with the tiny backbone (random weights, 2 shots, 2 epochs, no open-set set):
WiSE-FT at alpha 0 is zero-shot CLIP (ZeroshotCLIP's accuracy and energies), alpha interpolates every
weight, LP-FT trains the head alone first, checkpoints load with ``weights_only``, the feature cache
and precompute leave trained encoders out, bad values are one-line errors, and the WiSE-FT stages of
a grid run and form one robustness curve.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import croft.trainers  # noqa: F401  (registers every trainer)
from croft.config import setup_cfg
from croft.engine.optim import lr_factor
from croft.engine.trainer import build_trainer, set_random_seed
from croft.evaluation.inference import FINAL, TRAINING
from croft.results.io import load_scores, read_results_json
from croft.train import build_parser, main
from croft.utils.logging import setup_logger

REPO = Path(__file__).resolve().parents[1]
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False",
        "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2", "DATASET.OOD_SETS", "[]",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "32"]
# An LR at which two epochs move the tiny model visibly (FT's own 1e-5 barely does).
TRAIN = ["OPTIM.MAX_EPOCH", "2", "OPTIM.LR", "1e-3", "OPTIM.WARMUP_EPOCH", "0"]


def args(trainer, root, out, *extra, config="rn50_ep30", flags=()):
    return ["--root", str(root), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"),
            "--config-file", str(REPO / "configs/trainers" / trainer / f"{config}.yaml"),
            "--backbone", "tiny", "--output-dir", str(out), *flags, *FAST, *extra]


def eval_only(trainer, root, out, model_dir, *extra):
    return main(args(trainer, root, out, *TRAIN, *extra, flags=["--eval-only", "--model-dir", str(model_dir)]))


@pytest.fixture(scope="module")
def ft_run(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "train"
    assert main(args("FT", synthetic_root, out, *TRAIN)) == 0
    return out


@pytest.fixture(scope="module")
def zero_shot_run(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("zsclip") / "run"
    assert main(args("ZeroshotCLIP", synthetic_root, out, config="rn50", flags=["--eval-only"])) == 0
    return out


def build(name, root, out, *extra, config="rn50_ep30"):
    setup_logger(str(out))
    cfg = setup_cfg(build_parser().parse_args(args(name, root, out, *extra, config=config)))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


# ------------------------------------------------------------------ WiSE-FT

def test_wise_alpha_0_is_zero_shot_clip_and_1_the_fine_tuned_model(ft_run, zero_shot_run, synthetic_root, tmp_path):
    assert eval_only("FT", synthetic_root, tmp_path / "a0", ft_run, "TRAINER.FT.WISE_ALPHA", "0.0") == 0
    assert eval_only("FT", synthetic_root, tmp_path / "a1", ft_run) == 0
    zs, a0, a1, tuned = (read_results_json(str(d)) for d in (zero_shot_run, tmp_path / "a0", tmp_path / "a1", ft_run))
    assert a0["closed_set"] == zs["closed_set"]
    assert a1["closed_set"] == tuned["closed_set"]
    z, e0, e1 = (load_scores(str(d)) for d in (zero_shot_run, tmp_path / "a0", ft_run))
    assert set(z) == set(e0) and "energy/shift/sketch" in z
    for key in z:  # the same model up to float round-off (the head holds s * t, zero-shot CLIP scales the image)
        np.testing.assert_allclose(e0[key], z[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert np.abs(e1["energy/shift/sketch"] - z["energy/shift/sketch"]).max() > 1e-2  # the fine-tuned model differs
    # the stored fingerprint says which alpha each evaluation used; training is the same run
    assert a0["fingerprint_values"]["TRAINER.FT.WISE_ALPHA"] == 0.0 == a0["hparams"]["wise_alpha"]
    assert tuned["fingerprint_values"]["TRAINER.FT.WISE_ALPHA"] == 1.0
    assert a0["fingerprint"] != tuned["fingerprint"]


def test_wise_interpolates_every_weight_between_zero_shot_and_fine_tuned(synthetic_root, tmp_path):
    trainer = build("FT", synthetic_root, tmp_path, "TRAINER.FT.WISE_ALPHA", "0.25")
    zero_shot = trainer.zero_shot_state()
    visual = trainer.clip_model.visual.state_dict()
    assert all(torch.equal(zero_shot["image_encoder"][k], visual[k]) for k in visual)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # stand-in for training: every weight moves
        for module in (trainer.encoder, trainer.head):
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
    encoder, head = trainer.models_for(FINAL)
    assert trainer.models_for(TRAINING) == (trainer.encoder, trainer.head)  # validation: the fine-tuned model
    assert encoder is not trainer.encoder and not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    for mixed, tuned, start in ((encoder, trainer.encoder, zero_shot["image_encoder"]),
                                (head, trainer.head, zero_shot["head"])):
        for key, value in mixed.state_dict().items():
            expected = 0.75 * start[key] + 0.25 * tuned.state_dict()[key]
            torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6, msg=key)
    # images go through the interpolated encoder under FINAL, the fine-tuned one under TRAINING
    images = torch.randn(2, 3, 224, 224, generator=gen)
    with torch.no_grad():
        assert torch.equal(trainer.encode(images, FINAL), encoder(images))
        assert torch.equal(trainer.encode(images, TRAINING), trainer.encoder(images))
    # an update of the fine-tuned weights (a later epoch, a loaded checkpoint) is seen
    with torch.no_grad():
        trainer.head.bias.add_(1.0)
    assert torch.allclose(trainer.models_for(FINAL)[1].bias, head.bias + 0.25)


def test_wise_alpha_0_restores_the_zero_shot_weights_bit_for_bit(synthetic_root, tmp_path):
    trainer = build("FT", synthetic_root, tmp_path, "TRAINER.FT.WISE_ALPHA", "0.0")
    with torch.no_grad():
        for p in trainer.encoder.parameters():
            p.mul_(1.5)
    encoder, head = trainer.models_for(FINAL)
    visual = trainer.clip_model.visual.state_dict()
    assert all(torch.equal(value, visual[key]) for key, value in encoder.state_dict().items())
    assert all(torch.equal(value, trainer.zero_shot_state()["head"][key]) for key, value in head.state_dict().items())


def test_the_head_starts_as_zero_shot_clips_classifier(synthetic_root, tmp_path):
    from croft.config import get_cfg_default, merge_from_file

    ft = build("FT", synthetic_root, tmp_path / "ft")
    zs = build("ZeroshotCLIP", synthetic_root, tmp_path / "zs", config="rn50")
    assert torch.equal(ft.head.weight, zs.logit_scale * zs.text) and not ft.head.bias.any()
    assert ft.image_encoder is None  # images go through FT's encode, never the frozen encoder
    # the prompts are zero-shot CLIP's on every dataset config (imagenet46: the single template)
    for yaml_name in ("imagenet46.yaml", "PACS.yaml", "VLCS.yaml"):
        cfg = get_cfg_default()
        merge_from_file(cfg, str(REPO / "configs" / "datasets" / yaml_name))
        assert cfg.TRAINER.FT.PROMPTS == cfg.TRAINER.LP_FT.PROMPTS == cfg.TRAINER.ZeroshotCLIP.PROMPTS


# ------------------------------------------------------------------ LP-FT

def test_lp_ft_trains_the_head_alone_then_everything(synthetic_root, tmp_path):
    trainer = build("LP_FT", synthetic_root, tmp_path, "OPTIM.MAX_EPOCH", "3", "OPTIM.LR", "0.01",
                    "OPTIM.WARMUP_EPOCH", "0", "OPTIM.WEIGHT_DECAY", "0", "TRAINER.LP_FT.LP_EPOCHS", "1",
                    "TRAINER.LP_FT.LP_LR", "0.05")
    trainer.before_train()
    lrs = lambda: {n: trainer._optims[n].param_groups[0]["lr"] for n in ("head", "image_encoder")}  # noqa: E731

    def step(epoch):
        trainer.epoch = epoch
        trainer.set_model_mode("train")
        trainer.dm.set_epoch(epoch)
        before = {n: [p.detach().clone() for p in m.parameters()] for n, m in trainer._models.items()}
        trainer.forward_backward(next(iter(trainer.train_loader_x)))
        trainer.update_lr()
        return {n: sum(not torch.equal(a, b) for a, b in zip(before[n], m.parameters()))
                for n, m in trainer._models.items()}

    assert lrs() == {"head": pytest.approx(0.05), "image_encoder": 0.0}
    moved = step(0)  # the linear probe: the encoder frozen and in eval mode
    assert moved["image_encoder"] == 0 and moved["head"] == 2 and not trainer.encoder.training
    assert lrs() == {"head": pytest.approx(0.01), "image_encoder": pytest.approx(0.01)}
    moved = step(1)  # fine-tuning: everything, OPTIM's cosine restarted over the 2 remaining epochs
    assert moved["image_encoder"] == len(list(trainer.encoder.parameters())) and moved["head"] == 2
    assert trainer.encoder.training
    assert lrs()["image_encoder"] == pytest.approx(0.01 * lr_factor(1, _optim(trainer, max_epoch=2)))


def _optim(trainer, max_epoch):
    node = trainer.cfg.OPTIM.clone()
    node.defrost()
    node.MAX_EPOCH = max_epoch
    return node


# ------------------------------------------------------------------ checkpoints, cache, errors

def test_checkpoints_hold_the_fine_tuned_weights_and_load_with_weights_only(ft_run, synthetic_root, tmp_path):
    files = sorted(p for p in ft_run.rglob("*.pth.tar*"))
    names = {p.relative_to(ft_run).as_posix() for p in files}
    assert {"head/model-best.pth.tar", "image_encoder/model-best.pth.tar", "image_encoder/model.pth.tar-2",
            "last.pth.tar"} <= names
    for path in files:
        torch.load(path, map_location="cpu", weights_only=True)
    trainer = build("FT", synthetic_root, tmp_path)
    best = torch.load(ft_run / "image_encoder" / "model-best.pth.tar", map_location="cpu", weights_only=True)
    visual = trainer.clip_model.visual.state_dict()
    assert set(best["state_dict"]) == set(visual)
    assert any(not torch.equal(best["state_dict"][k], visual[k]) for k in visual)  # fine-tuned, not zero-shot
    head = torch.load(ft_run / "head" / "model-best.pth.tar", map_location="cpu", weights_only=True)["state_dict"]
    assert set(head) == {"weight", "bias"} and head["weight"].shape == (7, trainer.feat_dim)


def test_trained_encoders_use_no_feature_cache(ft_run, synthetic_root):
    from croft.sweep.precompute import precompute_one

    results = read_results_json(str(ft_run))
    assert results["timing"]["feature_cache_hits"] == 0 and results["timing"]["feature_cache_misses"] == 0
    assert "Feature cache: not used; trainer FT trains its image encoder" in (ft_run / "log.txt").read_text()
    skipped = precompute_one({"argv": args("FT", synthetic_root, "/unused", *TRAIN)})
    assert skipped == {"skipped": "trainer FT trains its image encoder: its runs read images online and use no "
                                  "cached features; nothing to precompute"}


def test_online_training_is_deterministic(ft_run, synthetic_root, tmp_path):
    """The online pipeline's augmented views and batch order are seeded: a second run is bit-identical."""
    out = tmp_path / "again"
    assert main(args("FT", synthetic_root, out, *TRAIN)) == 0
    a, b = load_scores(str(ft_run)), load_scores(str(out))
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    rows = [[{k: v for k, v in json.loads(line).items() if k != "epoch_s"} for line in
             (d / "metrics.jsonl").read_text().splitlines()] for d in (ft_run, out)]
    assert rows[0] == rows[1] and len(rows[0]) == 2


@pytest.mark.parametrize("trainer, extra, message", [
    ("FT", ["TRAINER.FT.WISE_ALPHA", "1.5"], "invalid value for 'TRAINER.FT.WISE_ALPHA': 1.5; expected a number in "
                                             "[0, 1]"),
    ("LP_FT", ["TRAINER.LP_FT.LP_EPOCHS", "30"], "invalid value for 'TRAINER.LP_FT.LP_EPOCHS': 30; expected 0 <= "
                                                  "LP_EPOCHS < OPTIM.MAX_EPOCH (30)"),
    ("LP_FT", ["TRAINER.LP_FT.LP_LR", "0.0"], "invalid value for 'TRAINER.LP_FT.LP_LR': 0.0"),
    ("FT", ["MODEL.AUTOCAST", "fp16"], "invalid value for 'MODEL.AUTOCAST': 'fp16'; trainer FT trains the image "
                                       "encoder"),
    ("LP_FT", ["TRAINER.LP_FT.PROMPTS", "all"], "invalid value for 'TRAINER.LP_FT.PROMPTS': 'all'"),
])
def test_bad_values_are_one_line_config_errors(trainer, extra, message, synthetic_root, tmp_path, capfd):
    assert main(args(trainer, synthetic_root, tmp_path / "bad", *extra)) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "bad").exists()


def test_wise_alpha_alone_may_change_for_eval_only(ft_run, synthetic_root, tmp_path, capfd):
    """WISE_ALPHA is an evaluation key; LP-FT's and FT's training keys are not."""
    from croft.engine.fingerprint import is_evaluation_key

    assert is_evaluation_key("TRAINER.FT.WISE_ALPHA") and is_evaluation_key("TRAINER.LP_FT.WISE_ALPHA")
    assert not is_evaluation_key("TRAINER.LP_FT.LP_EPOCHS") and not is_evaluation_key("TRAINER.FT.PROMPTS")
    assert eval_only("FT", synthetic_root, tmp_path / "other", ft_run, "TRAINER.FT.PROMPTS", "ensemble") == 1
    err = capfd.readouterr().err
    assert "trained with other settings" in err and "TRAINER.FT.PROMPTS 'dataset' -> 'ensemble'" in err


# ------------------------------------------------------------------ grids and the robustness curve

def test_grids_give_each_trained_model_its_wise_stages():
    from croft.sweep.grid import load_grid
    from croft.sweep.identity import plan

    for name, trainer in (("ft_setup2_pacs", "FT"), ("lp_ft_setup2_vlcs", "LP_FT"), ("ft_setup1", "FT")):
        p = plan([load_grid(name)], "/out", root="/data")
        train = [r for r in p.runs if r.stage == "train"]
        assert len(train) == (9 if name.endswith("setup1") else 24) and len(p.runs) == 5 * len(train)
        stages = [r for r in p.runs if r.parent_key == train[0].key]
        assert sorted(r.stage for r in stages) == ["wise_0", "wise_025", "wise_05", "wise_075"]
        for run in stages:
            argv = run.argv()
            assert "--eval-only" in argv and argv[argv.index("--model-dir") + 1].endswith(train[0].key)
            alpha = float(argv[argv.index(f"TRAINER.{trainer}.WISE_ALPHA") + 1])
            assert alpha == {"wise_0": 0.0, "wise_025": 0.25, "wise_05": 0.5, "wise_075": 0.75}[run.stage]


def test_wise_stages_run_and_form_one_robustness_curve(synthetic_root, tmp_path):
    from croft.results.robustness import robustness_data
    from croft.sweep import cli

    grid = tmp_path / "ft_mini.yaml"
    grid.write_text(yaml.safe_dump({
        "_BASE_": str(REPO / "configs/sweeps/ft_setup2_pacs.yaml"), "trainer_configs": ["rn50_ep30"],
        "domains": ["sketch"], "axes": {"seed": [1]},
        "fixed": {"DATASET.NUM_SHOTS": 2, "DATASET.OOD_SETS": [], "OPTIM.MAX_EPOCH": 1, "OPTIM.LR": 1e-3,
                  "DATALOADER.TRAIN_X.BATCH_SIZE": 8, "DATALOADER.TEST.BATCH_SIZE": 32, "DATALOADER.NUM_WORKERS": 0,
                  "TEST.PLOT": False}}, sort_keys=False))
    out = tmp_path / "out"
    assert cli.main(["run", str(grid), "--root", synthetic_root, "--output", str(out), "--backbone", "tiny",
                     "--pretrained", "none", "--no-table"]) == 0
    folders = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("results.json"))
    assert len(folders) == 5 and sum("/wise_" in f for f in folders) == 4
    data = robustness_data([str(out)])
    curves = [c for panel in data.panels for c in panel.curves]
    assert len(curves) == 1 and curves[0].alphas == [0.0, 0.25, 0.5, 0.75, 1.0]


# ------------------------------------------------------------------ the Dassl bridge

def test_ft_runs_in_upstream_dassl_with_croft_engines_numbers(pinned_dassl, ft_run, synthetic_root, tmp_path):
    """CoOp's unchanged train.py through ``croft-dassl`` trains FT and evaluates it (``--eval-only``) with the
    numbers of croft's engine (pinned Dassl/CoOp copies; skipped without them unless CROFT_REQUIRE_DASSL=1)."""
    import subprocess
    import sys

    from croft.testing.third_party import COOP as coop, subprocess_env
    env = subprocess_env()

    def bridge(out, flags=()):
        proc = subprocess.run([sys.executable, "-m", "croft.dassl_bridge", str(coop / "train.py"),
                               *args("FT", synthetic_root, out, *TRAIN, flags=list(flags))],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def same(a, b):
        ra, rb = read_results_json(str(a)), read_results_json(str(b))
        ra.pop("timing"), rb.pop("timing")
        assert ra == rb
        sa, sb = load_scores(str(a)), load_scores(str(b))
        assert set(sa) == set(sb) and all(np.array_equal(sa[k], sb[k]) for k in sa)

    bridge(tmp_path / "train")
    same(ft_run, tmp_path / "train")
    epochs = [[{k: v for k, v in json.loads(line).items() if k != "epoch_s"}
               for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (ft_run, tmp_path / "train")]
    assert epochs[0] == epochs[1]
    bridge(tmp_path / "eval", ["--eval-only", "--model-dir", str(tmp_path / "train")])
    same(tmp_path / "train", tmp_path / "eval")
