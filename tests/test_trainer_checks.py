"""Every trainer's value checks run in its ``check_cfg``: a bad value exits 2 with one ``error:`` line
naming the key, before any work (no dataset read, no model built, nothing written)."""
import subprocess
import sys
from pathlib import Path

import pytest

from croft.config import setup_cfg
from croft.engine.trainer import TRAINER_REGISTRY
from croft.train import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def cli_args(trainer, root, out, *extra):
    return ["--root", str(root), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"),
            "--config-file", str(REPO / f"configs/trainers/{trainer}/rn50_ep30.yaml"), "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", *extra]


@pytest.mark.parametrize("trainer, key, value, expected", [
    ("DPLCLIP", "TRAINER.DPLCLIP.MLP_DEPTH", "1", "expected >= 2"),
    ("CoCoOp", "TRAINER.COCOOP.TEXT_CHUNK", "0", "expected >= 1"),
    ("CoOp", "TRAINER.COOP.CLASS_TOKEN_POSITION", "left", "expected one of ['end', 'middle', 'front']"),
])
def test_croft_train_exits_2_with_one_line_before_any_work(trainer, key, value, expected, tmp_path):
    """A fresh ``python -m croft.train``: the check runs before the dataset (its root does not exist) and
    the backbone are touched, and before OUTPUT_DIR is made."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "croft.train",
                           *cli_args(trainer, tmp_path / "no_data_here", out, key, value)],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    shown = f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == 2, shown
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"'{key}': {value if value.isdigit() else repr(value)}" in errors[0], shown
    assert expected in errors[0], shown
    assert "Traceback" not in proc.stderr and "Loading trainer" not in proc.stdout + proc.stderr, shown
    assert not out.exists()


@pytest.mark.parametrize("trainer, key, value, expected", [
    ("CoOp", "TRAINER.COOP.PREC", "bf16", "expected one of ['fp16', 'fp32', 'amp']"),
    ("CoOp", "TRAINER.COOP.N_CTX", "0", "expected >= 1 (or words in TRAINER.COOP.CTX_INIT)"),
    ("CoCoOp", "TRAINER.COCOOP.PREC", "fp8", "expected one of"),
    ("CoCoOp", "TRAINER.COCOOP.CLASS_TOKEN_POSITION", "start", "expected one of"),
    ("DPLCLIP", "TRAINER.DPLCLIP.N_CTX", "0", "expected >= 1"),
    ("DPLCLIP", "TRAINER.DPLCLIP.MLP_WIDTH", "0", "expected >= 1"),
    ("DPLCLIP", "TRAINER.DPLCLIP.MLP_DROPOUT", "1.0", "expected a probability in [0, 1)"),
    ("DPLCLIP", "TRAINER.DPLCLIP.CLASS_TOKEN_POSITION", "left", "expected one of"),
    ("BCAL", "TRAINER.BCAL.N_CTX", "0", "expected >= 1"),
])
def test_prompt_learners_check_their_keys_first(trainer, key, value, expected, tmp_path, capfd):
    out = tmp_path / "out"
    assert main(cli_args(trainer, tmp_path / "no_data_here", out, key, value)) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"'{key}'" in err[0] and expected in err[0], err
    assert not out.exists()


def _cfg(trainer, *opts):
    return setup_cfg(build_parser().parse_args(["--trainer", trainer, "--config-file",
                                                str(REPO / f"configs/trainers/{trainer}/rn50_ep30.yaml"), *opts]))


def test_good_values_pass_and_ctx_init_stands_for_n_ctx():
    for trainer in ("CoOp", "CoCoOp", "DPLCLIP", "BCAL"):
        TRAINER_REGISTRY.get(trainer).check_cfg(_cfg(trainer))
    TRAINER_REGISTRY.get("CoOp").check_cfg(_cfg("CoOp", "TRAINER.COOP.N_CTX", "0",
                                                "TRAINER.COOP.CTX_INIT", "a_photo_of_a"))
    with pytest.raises(ValueError, match="TRAINER.COOP.N_CTX"):
        TRAINER_REGISTRY.get("CoOp").check_cfg(_cfg("CoOp", "TRAINER.COOP.N_CTX", "0", "TRAINER.COOP.CTX_INIT", "_"))
    # a trainer checks its own group only: CoOp's run does not read CoCoOp's keys
    TRAINER_REGISTRY.get("CoOp").check_cfg(_cfg("CoOp", "TRAINER.COCOOP.TEXT_CHUNK", "0",
                                                "TRAINER.DPLCLIP.MLP_DEPTH", "1"))
