"""Checkpoints written by the original CRoFT code (Dassl's layout, with pickled objects) load in croft.

The original code saves, per model, ``{"state_dict", "epoch", "optimizer", "scheduler",
"val_result"}`` where ``scheduler`` is a pickled LR scheduler *object* (or a warm-up scheduler's
state dict that holds its successor scheduler object). ``torch.load(weights_only=True)`` refuses
such files; croft reads them with a restricted unpickler that never runs the pickled code
(croft/engine/checkpoint.py). Here, on synthetic PACS with the tiny backbone:

- the weights of a croft run, saved in the original's format, evaluate with bit-identical logits
  (and the same scores.npz) as the same weights saved by croft; the folder has no fingerprint, so
  ``--model-dir`` warns and goes on;
- ``--resume`` from such a folder continues at the checkpoint's epoch with the LR schedule
  replayed to it (the scheduler object is not loaded);
- a pickle whose ``__reduce__`` calls ``os.system`` / ``eval`` is refused, and nothing runs.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from croft.config import setup_cfg
from croft.engine.checkpoint import DROPPED_KEY, load_checkpoint
from croft.utils.logging import setup_logger
from croft.engine.optim import lr_factor
from croft.engine.trainer import build_trainer, set_random_seed
from croft.evaluation.inference import FINAL, run_inference
from croft.results.io import load_scores
from croft.train import build_parser, main
from croft.utils.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]
MODELS = ("clip_adapter", "generator")


def croft_args(root, out, *extra, flags=()):
    """croft-train's arguments; ``flags`` (``--eval-only`` ...) go before the ``KEY VALUE`` overrides."""
    return ["--root", str(root), "--seed", "1", "--trainer", "CRoFT",
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"),
            "--config-file", str(REPO / "configs/trainers/CRoFT/rn50_ep30.yaml"),
            "--backbone", "tiny", "--output-dir", str(out), *flags, "TEST_ENV", "test_on_sketch.json",
            "DATASET.NUM_SHOTS", "2", "DATASET.OOD_SETS", "['DTD']", "OPTIM.MAX_EPOCH", "2",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "32", "DATALOADER.NUM_WORKERS", "0",
            "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False", *extra]


def build(root, out, *extra):
    setup_logger()
    cfg = setup_cfg(build_parser().parse_args(croft_args(root, out, *extra)))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


class Payload:
    """Arbitrary code in a pickle: ``__reduce__`` calls ``os.system``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


def original_scheduler(module, kind):
    """A real torch optimizer and LR scheduler over ``module``, stepped 3 epochs, as the original code holds."""
    optim = torch.optim.SGD(module.parameters(), lr=0.002, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=30)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    for _ in range(3):
        optim.step()
        sched.step()
    if kind == "object":
        return optim, sched
    # Dassl's warm-up scheduler: a state dict whose "successor" entry is the scheduler object.
    return optim, {"last_epoch": 3, "_step_count": 4, "successor": sched, "warmup_epoch": 1, "cons_lr": 1e-5}


def write_original(trainer, source_dir, target_dir, kind="object", epoch=3):
    """The weights of ``source_dir/<model>/model-best.pth.tar`` in the original CRoFT code's format."""
    for name in MODELS:
        state = torch.load(source_dir / name / "model-best.pth.tar", map_location="cpu", weights_only=True)
        module = trainer._models[name]
        optim, sched = original_scheduler(type(module)(trainer.feat_dim), kind)
        folder = target_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        original = {"state_dict": state["state_dict"], "epoch": epoch, "optimizer": optim.state_dict(),
                    "scheduler": sched, "val_result": 91.2}
        for file_name in ("model-best.pth.tar", f"model.pth.tar-{epoch}"):
            torch.save(original, folder / file_name)
        (folder / "checkpoint").write_text(f"model.pth.tar-{epoch}\n")


@pytest.fixture(scope="module")
def croft_run(synthetic_root, tmp_path_factory):
    """A 2-epoch CRoFT run saved by croft."""
    out = tmp_path_factory.mktemp("croft_saved") / "run"
    assert main(croft_args(synthetic_root, out)) == 0
    return out


@pytest.mark.parametrize("kind", ["object", "successor"])
def test_original_format_reads_tensors_only(kind, synthetic_root, croft_run, tmp_path):
    trainer = build(synthetic_root, tmp_path / "build")
    write_original(trainer, croft_run, tmp_path / "original", kind)
    state = load_checkpoint(str(tmp_path / "original" / "clip_adapter" / "model-best.pth.tar"))
    saved = torch.load(croft_run / "clip_adapter" / "model-best.pth.tar", weights_only=True)["state_dict"]
    assert set(state["state_dict"]) == set(saved)
    assert all(torch.equal(state["state_dict"][k], saved[k]) for k in saved)
    assert state["epoch"] == 3 and state["val_result"] == 91.2
    assert isinstance(state["optimizer"], dict) and "param_groups" in state["optimizer"]
    assert "scheduler" not in state
    assert "CosineAnnealingLR" in state[DROPPED_KEY]["scheduler"]


def test_original_format_evaluates_with_identical_logits(synthetic_root, croft_run, tmp_path, capfd):
    trainer = build(synthetic_root, tmp_path / "build")
    original = tmp_path / "original"
    write_original(trainer, croft_run, original)

    trainer.load_model(str(croft_run))
    by_croft = run_inference(trainer, trainer.test_loader, FINAL, "test").logits
    trainer.load_model(str(original))
    assert trainer.best_epoch == 3 and trainer.best_val_accuracy == 91.2
    by_original = run_inference(trainer, trainer.test_loader, FINAL, "test").logits
    assert torch.equal(by_croft, by_original)

    # The command line: --eval-only --model-dir of each folder gives the same files' numbers.
    capfd.readouterr()
    assert main(croft_args(synthetic_root, tmp_path / "eval_original",
                           flags=["--eval-only", "--model-dir", str(original)])) == 0
    err = capfd.readouterr().err
    assert "records no fingerprint" in err and str(original) in err
    assert main(croft_args(synthetic_root, tmp_path / "eval_croft",
                           flags=["--eval-only", "--model-dir", str(croft_run)])) == 0
    a, b = load_scores(str(tmp_path / "eval_croft")), load_scores(str(tmp_path / "eval_original"))
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    ra = json.loads((tmp_path / "eval_croft" / "results.json").read_text())
    rb = json.loads((tmp_path / "eval_original" / "results.json").read_text())
    assert ra["closed_set"] == rb["closed_set"] and ra["open_set"] == rb["open_set"]
    assert rb["best_epoch"] == 3 and rb["best_val_accuracy"] == 91.2


def test_resume_from_original_checkpoints_replays_the_schedule(synthetic_root, croft_run, tmp_path, capfd):
    trainer = build(synthetic_root, tmp_path / "build")
    original = tmp_path / "original"
    write_original(trainer, croft_run, original, epoch=3)
    out = tmp_path / "resumed"
    capfd.readouterr()
    assert main(croft_args(synthetic_root, out, "OPTIM.MAX_EPOCH", "4", flags=["--resume", str(original)])) == 0
    captured = capfd.readouterr()
    assert "records no fingerprint" in captured.err
    assert "LR schedule replayed to epoch 3" in captured.out
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [4]
    cfg = trainer.cfg.clone()
    cfg.defrost()
    cfg.OPTIM.MAX_EPOCH = 4
    # The 4th epoch runs at the schedule's LR of epoch index 3, not at the warm-up LR of a restarted schedule.
    assert epochs[0]["lr"] == pytest.approx(cfg.OPTIM.LR * lr_factor(3, cfg.OPTIM), rel=1e-9)
    assert epochs[0]["lr"] != pytest.approx(cfg.OPTIM.LR * lr_factor(0, cfg.OPTIM))
    assert (out / "results.json").is_file()


@pytest.mark.parametrize("payload", [Payload, EvalPayload])
@pytest.mark.parametrize("where", ["scheduler", "state_dict"])
def test_malicious_pickle_is_refused_without_running(payload, where, synthetic_root, croft_run, tmp_path, capfd):
    marker = tmp_path / "code_ran"
    model_dir = tmp_path / "model"
    state = torch.load(croft_run / "clip_adapter" / "model-best.pth.tar", weights_only=True)
    for name in MODELS:
        (model_dir / name).mkdir(parents=True)
        bad = {"state_dict": dict(state["state_dict"]), "epoch": 1, "val_result": 50.0}
        if where == "scheduler":
            bad["scheduler"] = payload(marker)
        else:
            bad["state_dict"]["weight"] = payload(marker)
        torch.save(bad, model_dir / name / "model-best.pth.tar")
    path = model_dir / "clip_adapter" / "model-best.pth.tar"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(str(path))
    assert "not a plain tensor checkpoint" in str(info.value) and "refused without running it" in str(info.value)
    assert ("system" in str(info.value)) if payload is Payload else ("eval" in str(info.value))
    assert not marker.exists()

    out = tmp_path / "eval"
    capfd.readouterr()
    assert main(croft_args(synthetic_root, out, flags=["--eval-only", "--model-dir", str(model_dir)])) == 1
    assert "not a plain tensor checkpoint" in capfd.readouterr().err
    assert not marker.exists() and not (out / "results.json").exists()
