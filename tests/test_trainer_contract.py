"""The contract every registered trainer keeps, checked for each name of ``TRAINER_REGISTRY``.

On synthetic PACS with the tiny backbone (1 epoch, 2 shots, DTD as the open set):

- one training step moves every learnt parameter of every registered model;
- training leaves the loaded CLIP bit-identical (the zero-shot weights; no learnt module shares a
  tensor with it); a trainer that trains its image encoder (``frozen_encoder = False``) trains a
  registered copy of it, whose weights move, and its ``zero_shot_state()`` gives CLIP's back;
- ``--eval-only --model-dir`` of the trained run gives a bit-identical ``scores.npz`` and the same
  ``results.json`` metrics; for evaluation-only trainers (``trains = False``) the plain run and
  ``--eval-only`` agree bit for bit.

A trainer added to the registry is checked without editing this file (its config is the first of
``configs/trainers/<name>/{rn50_ep30,rn50}.yaml`` that exists, else the defaults).
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import croft.engine.trainer as trainer_module
import croft.trainers  # noqa: F401  (registers every trainer)
from croft.config import setup_cfg
from croft.engine.checkpoint import epoch_file_name, load_checkpoint
from croft.utils.logging import setup_logger
from croft.engine.trainer import TRAINER_REGISTRY, build_trainer, set_random_seed
from croft.results.io import correct_key, load_scores
from croft.train import build_parser, main

REPO = Path(__file__).resolve().parents[1]
TRAINERS = TRAINER_REGISTRY.names()
# trainers that train (ZeroshotCLIP has trains = False: nothing to train)
TRAINING = [name for name in TRAINERS if TRAINER_REGISTRY.get(name).trains]
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]

# Per trainer, overrides its contract runs need: LP_FT fine-tunes everything only after its linear-probe epochs.
EXTRA = {"LP_FT": ["OPTIM.MAX_EPOCH", "2", "TRAINER.LP_FT.LP_EPOCHS", "1"]}

# Learnt parameters that legitimately do not move in one step (trainer -> {"<model>.<param>": why}).
# Found by running the step, not assumed: with OPTIM.WEIGHT_DECAY 0 every parameter of every
# registered trainer gets a non-zero gradient on the first batch, so the set is empty.
CANNOT_MOVE_IN_ONE_STEP = {}


def config_args(name):
    for stem in ("rn50_ep30", "rn50"):
        path = REPO / "configs" / "trainers" / name / f"{stem}.yaml"
        if path.is_file():
            return ["--config-file", str(path)]
    return []


def run_args(name, root, out, *extra):
    return ["--root", str(root), "--seed", "1", "--trainer", name,
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"), *config_args(name),
            "--backbone", "tiny", "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json",
            "DATASET.NUM_SHOTS", "2", "DATASET.OOD_SETS", "['DTD']", "OPTIM.MAX_EPOCH", "1",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "32",
            "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "2", *FAST, *EXTRA.get(name, []), *extra]


def clip_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.clip_model.state_dict().items()}


def main_keeping_trainer(args):
    """``croft.train.main(args)``, also returning the trainer it built and its CLIP state at build time."""
    built = []
    original = trainer_module.build_trainer

    def recording(cfg):
        trainer = original(cfg)
        built.append((trainer, clip_state(trainer)))
        return trainer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "build_trainer", recording)  # croft.train.run imports it at call time
        rc = main(args)
    assert rc == 0, f"croft.train.main failed for {args}"
    assert len(built) == 1
    return built[0]


class Run:
    def __init__(self, name, train_dir, eval_dir, trainer, clip_before):
        self.name, self.train_dir, self.eval_dir = name, train_dir, eval_dir
        self.trainer, self.clip_before = trainer, clip_before


@pytest.fixture(scope="module")
def runs(synthetic_root, tmp_path_factory):
    """Per trainer, made on first use: the training run (or the plain run of an evaluation-only
    trainer) into ``train``, then ``--eval-only`` (``--model-dir train`` when it trains) into ``eval``."""
    made = {}
    root = tmp_path_factory.mktemp("contract_runs")

    def get(name):
        if name not in made:
            train_dir, eval_dir = root / name / "train", root / name / "eval"
            trainer, clip_before = main_keeping_trainer(run_args(name, synthetic_root, train_dir))
            eval_args = run_args(name, synthetic_root, eval_dir)
            at = eval_args.index("--output-dir") + 2
            eval_args[at:at] = ["--eval-only"] + (["--model-dir", str(train_dir)] if trainer.trains else [])
            main_keeping_trainer(eval_args)
            made[name] = Run(name, train_dir, eval_dir, trainer, clip_before)
        return made[name]

    return get


def test_registry_is_not_empty():
    assert {"CRoFT", "ZeroshotCLIP"} <= set(TRAINERS) and "ZeroshotCLIP" not in TRAINING and "CRoFT" in TRAINING


@pytest.mark.parametrize("name", TRAINING)
def test_one_training_step_moves_every_learnt_parameter(name, synthetic_root, tmp_path):
    """Every parameter with ``requires_grad`` of every registered model changes in one step.

    A large LR makes any non-zero gradient visible; weight decay 0 makes a change mean a gradient
    (with weight decay an unused parameter would shrink, and pass, too).
    """
    out = tmp_path / "step"
    setup_logger(str(out))
    cfg = setup_cfg(build_parser().parse_args(run_args(
        name, synthetic_root, out, "OPTIM.LR", "0.5", "OPTIM.WARMUP_EPOCH", "0", "OPTIM.WEIGHT_DECAY", "0")))
    set_random_seed(cfg.SEED)
    trainer = build_trainer(cfg)
    trainer.before_train()  # as train(): resume check, and sizing hooks (Tip-Adapter builds its cache here)
    assert trainer.start_epoch == 0
    trainer.set_model_mode("train")
    trainer.dm.set_epoch(0)
    batch = next(iter(trainer.train_loader_x))

    before = {f"{model_name}.{key}": p.detach().clone()
              for model_name, model in trainer._models.items()
              for key, p in model.named_parameters() if p.requires_grad}
    assert before, f"{name} trains but registers no parameter with requires_grad"
    stats = trainer.forward_backward(batch)
    assert "loss" in stats and all(np.isfinite(v) for v in stats.values()), stats

    after = {f"{model_name}.{key}": p.detach()
             for model_name, model in trainer._models.items() for key, p in model.named_parameters()}
    unmoved = {key for key, value in before.items() if torch.equal(value, after[key])}
    assert unmoved == set(CANNOT_MOVE_IN_ONE_STEP.get(name, {})), f"{name}: parameters that did not move: {unmoved}"


@pytest.mark.parametrize("name", TRAINING)
def test_training_leaves_clip_bit_identical(name, runs):
    run = runs(name)
    trainer = run.trainer
    after = trainer.clip_model.state_dict()
    assert set(after) == set(run.clip_before)
    for key, value in after.items():
        before = run.clip_before[key]
        assert value.dtype == before.dtype and torch.equal(value, before), f"{name}: CLIP tensor {key} changed"
    assert not any(p.requires_grad for p in trainer.clip_model.parameters())
    # no learnt module holds (hence checkpoints or updates) a CLIP tensor
    clip_storage = {p.untyped_storage().data_ptr() for p in trainer.clip_model.parameters()}
    for model_name, model in trainer._models.items():
        for key, p in model.named_parameters():
            assert p.untyped_storage().data_ptr() not in clip_storage, f"{name}: {model_name}.{key} is a CLIP tensor"
    visual = {key[len("visual."):]: value for key, value in run.clip_before.items() if key.startswith("visual.")}
    encoders = [model_name for model_name, model in trainer._models.items() if set(model.state_dict()) == set(visual)]
    if trainer.frozen_encoder:
        assert not encoders, f"{name} declares a frozen image encoder but registers a copy of it: {encoders}"
        return
    # a trained encoder: one registered model is CLIP's image encoder, and the last epoch's weights moved
    assert len(encoders) == 1, f"{name}: registered models {list(trainer._models)}, none (or several) an image encoder"
    last = load_checkpoint(str(run.train_dir / encoders[0] / epoch_file_name(trainer.max_epoch)))["state_dict"]
    moved = [key for key, value in last.items() if value.is_floating_point() and not torch.equal(value, visual[key])]
    floating = [key for key, value in last.items() if value.is_floating_point()]
    assert len(moved) == len(floating), f"{name}: encoder tensors that did not move: {set(floating) - set(moved)}"
    # ... and the zero-shot weights are CLIP's, bit for bit
    zero_shot = trainer.zero_shot_state()
    assert set(zero_shot) == set(trainer._models)
    assert set(zero_shot[encoders[0]]) == set(visual)
    for key, value in zero_shot[encoders[0]].items():
        assert torch.equal(value, visual[key]), f"{name}: zero-shot encoder tensor {key} is not CLIP's"


@pytest.mark.parametrize("name", TRAINERS)
def test_eval_only_reproduces_the_run_bit_for_bit(name, runs):
    run = runs(name)
    trained = json.loads((run.train_dir / "results.json").read_text())
    evaluated = json.loads((run.eval_dir / "results.json").read_text())
    a, b = load_scores(str(run.train_dir)), load_scores(str(run.eval_dir))
    assert set(a) == set(b) and "energy/ood/DTD" in a and "energy/shift/sketch" in a
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), f"{name}: scores.npz[{key!r}] differs"
    assert evaluated["closed_set"] == trained["closed_set"]
    assert evaluated["open_set"] == trained["open_set"]
    assert evaluated["best_epoch"] == trained["best_epoch"] and evaluated["hparams"] == trained["hparams"]
    if run.trainer.trains:  # the evaluation loaded the trained weights of every registered model
        log = (run.eval_dir / "log.txt").read_text()
        for model_name in run.trainer._models:
            best = run.train_dir / model_name / "model-best.pth.tar"
            assert f'Loading weights to {model_name} from "{best}"' in log
    # the accuracy is the share of correct predictions (standard protocol: the ID side is the test set)
    correct = a[correct_key()]
    assert correct.dtype == bool and len(correct) == len(a["energy/shift/sketch"])
    assert trained["closed_set"]["test_accuracy"] == 100.0 * int(correct.sum()) / len(correct)
    assert trained["closed_set"]["per_domain"] == {"sketch": trained["closed_set"]["test_accuracy"]}
