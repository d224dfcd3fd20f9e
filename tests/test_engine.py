"""Engine behaviour: registries, resume, bad trainer/dataset names on the command line."""
import json
import re
import shutil

import numpy as np
import pytest
import torch

import croft.engine.trainer as trainer_module
from croft.config import setup_cfg
from croft.data.datasets import DATASET_REGISTRY
from croft.engine.trainer import TRAINER_REGISTRY, TrainerBase, build_trainer
from croft.results.io import load_scores
from croft.train import build_parser, main
from croft.utils.registry import Registry

FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def test_registry_lists_registered_names():
    registry = Registry("widget")

    @registry.register()
    class Alpha:
        pass

    assert registry.get("Alpha") is Alpha
    with pytest.raises(KeyError, match="Unknown widget 'Beta'. Registered widgets: Alpha"):
        registry.get("Beta")


def test_unknown_trainer_lists_registered_trainers(synthetic_root):
    import croft.trainers  # noqa: F401

    cfg = setup_cfg(build_parser().parse_args(["--root", synthetic_root, "--trainer", "CRoFTT",
                                               "--dataset-config-file", "configs/datasets/PACS.yaml"]))
    with pytest.raises(KeyError, match=r"Unknown trainer 'CRoFTT'. Registered trainers: .*CRoFT.*ZeroshotCLIP"):
        build_trainer(cfg)
    assert "CRoFT" in TRAINER_REGISTRY and "PACS" in DATASET_REGISTRY


def test_cli_reports_unknown_dataset_and_exits_nonzero(synthetic_root, tmp_path, capsys):
    rc = main(["--root", synthetic_root, "--trainer", "ZeroshotCLIP", "--backbone", "tiny",
               "--output-dir", str(tmp_path / "o"), "DATASET.NAME", "PACZ", *FAST])
    assert rc == 2  # a config error, found before anything is built
    captured = capsys.readouterr()
    message = captured.out + captured.err
    assert "'DATASET.NAME'" in message and "'PACZ'" in message
    assert ", ".join(DATASET_REGISTRY.names()) in message  # every registered dataset, listed
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_reports_unknown_key(tmp_path, capsys):
    rc = main(["--output-dir", str(tmp_path / "o"), "TRAINER.CRoFT.lamda2", "10"])
    assert rc == 2
    captured = capsys.readouterr()
    assert "unknown config key 'TRAINER.CRoFT.lamda2'" in captured.out + captured.err


# ------------------------------------------------------------------ resume

MODELS = ("clip_adapter", "generator")  # CRoFT's registered models
THREE_EPOCHS = ("OPTIM.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_FREQ", "1", "OPTIM.WARMUP_EPOCH", "0")
RESUMED = re.compile(r'Resumed (.+?) from "(.+?)" \(epoch = (\d+)\)')


class _SelectionStub:
    """What ``TrainerBase.after_epoch`` reads of a trainer, with the val accuracies of each epoch given."""

    def __init__(self, final_model="best_val"):
        from croft.config import get_cfg_default
        from croft.utils.logging import get_logger

        self.cfg = get_cfg_default()
        self.cfg.TEST.FINAL_MODEL = final_model
        self.cfg.TRAIN.CHECKPOINT_FREQ = 0
        self.val_loader, self.num_classes, self.max_epoch, self.logger = object(), 3, 5, get_logger()
        self.best_result, self.best_epoch, self.best_val_accuracy = float("-inf"), None, None
        self.saved = []

    def save_model(self, epoch, is_best=False, val_result=None):
        self.saved.append((epoch + 1, is_best, val_result))


def test_best_epoch_needs_a_strict_improvement(monkeypatch):
    """Model selection keeps the earlier epoch on a tie of val accuracy (docs/method.md §4.4)."""
    accuracies = iter([50.0, 60.0, 60.0, 55.0, 60.0])
    monkeypatch.setattr(trainer_module, "run_inference",
                        lambda *args, **kwargs: type("Out", (), {"accuracy": next(accuracies)}))
    stub = _SelectionStub()
    returned = []
    for stub.epoch in range(stub.max_epoch):
        returned.append(TrainerBase.after_epoch(stub))
    assert returned == [50.0, 60.0, 60.0, 55.0, 60.0]
    assert (stub.best_epoch, stub.best_val_accuracy, stub.best_result) == (2, 60.0, 60.0)
    # model-best is written when val accuracy improves, the epoch file of the last epoch at the end
    assert stub.saved == [(1, True, 50.0), (2, True, 60.0), (5, False, None)]


def croft_args(root, out, *extra):
    return ["--root", root, "--seed", "1", "--trainer", "CRoFT", "--dataset-config-file", "configs/datasets/PACS.yaml",
            "--config-file", "configs/trainers/CRoFT/rn50_ep30.yaml", "--backbone", "tiny", "--output-dir", str(out),
            "TEST_ENV", "test_on_cartoon.json", "DATASET.NUM_SHOTS", "2", "DATASET.OOD_SETS", "['DTD']", *FAST,
            *THREE_EPOCHS, *extra]


def crash_in_epoch_2(original_run_epoch):
    def run_epoch(trainer):
        if trainer.epoch == 1:
            raise RuntimeError("simulated crash in epoch 2")
        return original_run_epoch(trainer)
    return run_epoch


@pytest.fixture(scope="module")
def three_epoch_runs(synthetic_root, tmp_path_factory):
    """An uninterrupted 3-epoch run, and the same run crashed in epoch 2 (after epoch 1's checkpoints).

    Tests copy the crashed folder before resuming it."""
    root = tmp_path_factory.mktemp("resume")
    full, crashed = root / "uninterrupted", root / "crashed"
    assert main(croft_args(synthetic_root, full)) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TrainerBase, "run_epoch", crash_in_epoch_2(TrainerBase.run_epoch))
        assert main(croft_args(synthetic_root, crashed)) == 1
    return full, crashed


class Recorder:
    """Runs ``croft.train.main``; keeps the trainer it built, the 0-based epochs it ran and its console output."""

    def __init__(self, monkeypatch, capsys):
        self.capsys = capsys
        self.trainer, self.epochs, self.log = None, [], ""
        original_build, original_run_epoch = trainer_module.build_trainer, TrainerBase.run_epoch
        recorder = self

        def build(cfg):
            recorder.trainer = original_build(cfg)
            return recorder.trainer

        def run_epoch(trainer):
            recorder.epochs.append(trainer.epoch)
            return original_run_epoch(trainer)

        monkeypatch.setattr(trainer_module, "build_trainer", build)  # croft.train.run imports it at call time
        monkeypatch.setattr(TrainerBase, "run_epoch", run_epoch)

    def main(self, args):
        self.capsys.readouterr()
        self.trainer, self.epochs = None, []
        rc = main(args)
        captured = self.capsys.readouterr()
        self.log = captured.out + captured.err
        return rc


def resumed(log):
    """``{model: (path, epoch)}`` from the ``Resumed <models> from "<path>" (epoch = N)`` lines."""
    out = {}
    for names, path, epoch in RESUMED.findall(log):
        for name in names.split(", "):
            out[name] = (path, int(epoch))
    return out


def assert_resumed(log, directory, epoch):
    lines = resumed(log)
    assert set(lines) == set(MODELS), log
    for model, (path, at) in lines.items():
        assert at == epoch and path.startswith(str(directory) + "/"), (model, path, at)


def trained_epochs(log):
    return sorted({int(e) for e in re.findall(r"epoch \[(\d+)/3\]\[", log)})


def final_weights(directory):
    return {m: torch.load(directory / m / "model.pth.tar-3", weights_only=True)["state_dict"] for m in MODELS}


def assert_same_weights(a, b):
    wa, wb = final_weights(a), final_weights(b)
    for model in MODELS:
        assert set(wa[model]) == set(wb[model])
        for key in wa[model]:
            assert torch.equal(wa[model][key], wb[model][key]), (model, key)


def assert_same_results(a, b, keys=("closed_set", "open_set", "best_epoch", "best_val_accuracy")):
    """Bit-identical scores.npz and the same results.json values."""
    sa, sb = load_scores(str(a)), load_scores(str(b))
    assert set(sa) == set(sb)
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    for key in keys:
        assert ra[key] == rb[key], key


def test_a_crash_in_epoch_2_leaves_the_epoch_1_checkpoints(three_epoch_runs):
    _, crashed = three_epoch_runs
    for model in MODELS:  # the state to resume: epoch 1's checkpoint, named by the marker
        assert sorted(p.name for p in (crashed / model).glob("model.pth.tar-*")) == ["model.pth.tar-1"]
        assert (crashed / model / "checkpoint").read_text().strip() == "model.pth.tar-1"
    assert "simulated crash in epoch 2" in (crashed / "log.txt").read_text()
    assert not (crashed / "results.json").exists()


def test_resume_after_a_crash_then_rerun_the_finished_run(synthetic_root, three_epoch_runs, tmp_path, monkeypatch,
                                                          capsys):
    """Rerunning the crashed command resumes at epoch 2 and ends exactly as the uninterrupted run
    (weights, optimizer momentum, LR schedule and best-val record restored); rerunning the finished
    run resumes at MAX_EPOCH and trains nothing."""
    full, crashed = three_epoch_runs
    out = tmp_path / "run"
    shutil.copytree(crashed, out)
    run = Recorder(monkeypatch, capsys)
    assert run.main(croft_args(synthetic_root, out)) == 0
    assert_resumed(run.log, out, 1)
    assert run.trainer.start_epoch == 1 and run.epochs == [1, 2] and trained_epochs(run.log) == [2, 3]
    assert_same_weights(out, full)
    assert_same_results(out, full)

    saved = {m: (out / m / "model.pth.tar-3").read_bytes() for m in MODELS}
    shutil.copytree(out, tmp_path / "before_rerun")
    assert run.main(croft_args(synthetic_root, out)) == 0
    assert_resumed(run.log, out, 3)
    assert run.trainer.start_epoch == 3 and run.epochs == [] and trained_epochs(run.log) == []
    for model in MODELS:
        assert (out / model / "model.pth.tar-3").read_bytes() == saved[model]
    assert_same_results(out, tmp_path / "before_rerun")


def test_resume_from_another_folder(synthetic_root, three_epoch_runs, tmp_path, monkeypatch, capsys):
    """``--resume DIR`` continues DIR's training in a new folder, with a new best-val record."""
    full, crashed = three_epoch_runs
    source, out = tmp_path / "crashed", tmp_path / "other"
    shutil.copytree(crashed, source)
    run = Recorder(monkeypatch, capsys)
    assert run.main(["--resume", str(source), *croft_args(synthetic_root, out)]) == 0
    assert_resumed(run.log, source, 1)
    assert run.trainer.start_epoch == 1 and run.epochs == [1, 2]
    assert_same_weights(out, full)  # the same training as the uninterrupted run
    for model in MODELS:
        assert not (source / model / "model.pth.tar-2").exists()  # the source folder is only read
        assert not (out / model / "model.pth.tar-1").exists()
    # the new record knows only epochs 2 and 3 (ties keep the earlier epoch): the deployed model is one of them
    results = json.loads((out / "results.json").read_text())
    full_best = json.loads((full / "results.json").read_text())["best_epoch"]
    assert results["best_epoch"] in (2, 3)
    if full_best != 1:
        assert results["best_epoch"] == full_best
    best_state = torch.load(out / "clip_adapter" / "model-best.pth.tar", weights_only=True)
    assert best_state["epoch"] == results["best_epoch"] and best_state["val_result"] == results["best_val_accuracy"]
    deployed = torch.load(out / "clip_adapter" / f"model.pth.tar-{results['best_epoch']}", weights_only=True)
    for key, value in best_state["state_dict"].items():
        assert torch.equal(value, deployed["state_dict"][key])


def test_inconsistent_checkpoints_are_refused(synthetic_root, three_epoch_runs, tmp_path, monkeypatch, capsys):
    """A crash between saving the two models leaves checkpoints of different epochs: refused, nothing trained."""
    _, crashed = three_epoch_runs
    out = tmp_path / "bad"
    shutil.copytree(crashed, out)
    (out / "last.pth.tar").unlink(missing_ok=True)  # no rolling checkpoint: the epoch checkpoints decide
    (out / "generator" / "checkpoint").write_text("model.pth.tar-0\n")
    state = torch.load(out / "generator" / "model.pth.tar-1", weights_only=True)
    state["epoch"] = 0
    torch.save(state, out / "generator" / "model.pth.tar-0")
    run = Recorder(monkeypatch, capsys)
    assert run.main(croft_args(synthetic_root, out)) == 1
    assert "latest checkpoints disagree on the epoch ({'clip_adapter': 1, 'generator': 0})" in run.log
    assert run.epochs == [] and not (out / "results.json").exists()
    assert not any((out / m / "model.pth.tar-2").exists() for m in MODELS)
