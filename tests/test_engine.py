"""Engine behaviour: registries, resume, bad trainer/dataset names on the command line."""
import json

import pytest

from croft.config import setup_cfg
from croft.data.datasets import DATASET_REGISTRY
from croft.engine.trainer import TRAINER_REGISTRY, build_trainer
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
    assert rc == 1
    assert "Unknown dataset 'PACZ'. Registered datasets:" in capsys.readouterr().out
    assert "Unknown dataset 'PACZ'" in (tmp_path / "o" / "log.txt").read_text()
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_reports_unknown_key(tmp_path, capsys):
    rc = main(["--output-dir", str(tmp_path / "o"), "TRAINER.CRoFT.lamda2", "10"])
    assert rc == 2
    assert "unknown config key 'TRAINER.CRoFT.lamda2'" in capsys.readouterr().out


def test_resume_from_existing_output_dir(synthetic_root, tmp_path):
    out = tmp_path / "run"
    base = ["--root", synthetic_root, "--seed", "1", "--trainer", "CRoFT", "--dataset-config-file",
            "configs/datasets/PACS.yaml", "--config-file", "configs/trainers/CRoFT/rn50_ep30.yaml",
            "--backbone", "tiny", "--output-dir", str(out), "TEST_ENV", "test_on_cartoon.json",
            "DATASET.NUM_SHOTS", "2", *FAST]
    assert main(base + ["OPTIM.MAX_EPOCH", "1"]) == 0
    (out / "results.json").unlink()
    assert main(base + ["OPTIM.MAX_EPOCH", "2"]) == 0
    logs = "".join(p.read_text() for p in out.glob("log.txt*"))
    assert 'Resumed clip_adapter from' in logs and "(epoch = 1)" in logs
    assert "epoch [1/2]" not in logs and "epoch [2/2]" in logs
    assert (out / "clip_adapter" / "model.pth.tar-2").exists()
    assert json.loads((out / "results.json").read_text())["trainer"] == "CRoFT"


def test_resume_from_another_folder_and_inconsistent_checkpoints(synthetic_root, tmp_path):
    first = tmp_path / "first"
    flags = ["--root", synthetic_root, "--seed", "1", "--trainer", "CRoFT", "--dataset-config-file",
             "configs/datasets/PACS.yaml", "--config-file", "configs/trainers/CRoFT/rn50_ep30.yaml", "--backbone", "tiny"]
    opts = ["TEST_ENV", "test_on_cartoon.json", "DATASET.NUM_SHOTS", "2", *FAST]
    assert main(flags + ["--output-dir", str(first), *opts, "OPTIM.MAX_EPOCH", "1"]) == 0
    second = tmp_path / "second"
    assert main(flags + ["--output-dir", str(second), "--resume", str(first), *opts, "OPTIM.MAX_EPOCH", "2"]) == 0
    assert (second / "clip_adapter" / "model-best.pth.tar").exists()
    assert json.loads((second / "results.json").read_text())["best_epoch"] == 2
    # A crash between saving the two models leaves checkpoints of different epochs.
    (first / "generator" / "checkpoint").write_text("model.pth.tar-0\n")
    import shutil
    shutil.copy(first / "generator" / "model.pth.tar-1", first / "generator" / "model.pth.tar-0")
    state = __import__("torch").load(first / "generator" / "model.pth.tar-0", weights_only=True)
    state["epoch"] = 0
    __import__("torch").save(state, first / "generator" / "model.pth.tar-0")
    (first / "results.json").unlink()
    assert main(flags + ["--output-dir", str(first), *opts, "OPTIM.MAX_EPOCH", "2"]) == 1
    assert "latest checkpoints disagree on the epoch" in "".join(p.read_text() for p in first.glob("log.txt*"))
