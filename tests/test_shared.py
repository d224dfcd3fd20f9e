"""Sharing between runs in one process: reused backbones and features give the numbers of fresh runs."""
import json
from pathlib import Path

import numpy as np
import pytest

from croft.engine import shared
from croft.train import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def args_for(trainer, root, out, seed="1"):
    return ["--root", str(root), "--seed", seed, "--trainer", trainer,
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"),
            "--config-file", str(REPO / f"configs/trainers/{trainer}/rn50_ep30.yaml"), "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2",
            "OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATASET.OOD_SETS", "['DTD']", *FAST]


def outcome(out):
    results = json.loads((out / "results.json").read_text())
    with np.load(out / "scores.npz") as scores:
        arrays = {k: scores[k] for k in scores.files}
    return results["closed_set"], results["open_set"], arrays


@pytest.fixture
def sharing():
    shared.enable_sharing(max_backbones=2, max_feature_mb=64)
    yield
    shared.disable_sharing()


def test_shared_runs_equal_fresh_runs(synthetic_root, tmp_path, sharing):
    # CoOp draws its context from the global torch RNG right after the backbone is built: a reused
    # backbone must leave the RNG exactly where loading it would have
    runs = [("CoOp", "1"), ("CoOp", "1"), ("CLIP_Adapter", "2"), ("CoOp", "2")]
    for i, (trainer, seed) in enumerate(runs):
        assert main(args_for(trainer, synthetic_root, tmp_path / f"shared{i}", seed)) == 0
    assert len(shared._BACKBONES) == 2  # bounded: seeds 1 and 2
    shared.disable_sharing()
    for i, (trainer, seed) in enumerate(runs):
        assert main(args_for(trainer, synthetic_root, tmp_path / f"fresh{i}", seed)) == 0
        a, b = outcome(tmp_path / f"shared{i}"), outcome(tmp_path / f"fresh{i}")
        assert a[0] == b[0] and a[1] == b[1]
        assert a[2].keys() == b[2].keys() and all(np.array_equal(a[2][k], b[2][k]) for k in a[2])


def test_tensor_lru_is_bounded():
    import torch

    lru = shared.TensorLRU(max_bytes=3 * 400)
    for i in range(5):
        lru[i] = torch.zeros(100)  # 400 bytes each
    assert len(lru) == 3 and 0 not in lru and 4 in lru
    lru[2]  # touch: now most recent
    lru[5] = torch.zeros(100)
    assert 2 in lru and 3 not in lru
