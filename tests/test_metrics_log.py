"""Per-epoch records: metrics.jsonl, and the same scalars in TensorBoard with TRAIN.TENSORBOARD True."""
import json
from pathlib import Path

import pytest

from croft.train import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def test_metrics_jsonl_and_tensorboard_hold_the_same_scalars(synthetic_root, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    assert main(["--root", str(synthetic_root), "--seed", "1", "--trainer", "CRoFT",
                 "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"),
                 "--config-file", str(REPO / "configs/trainers/CRoFT/rn50_ep30.yaml"), "--backbone", "tiny",
                 "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2",
                 "OPTIM.MAX_EPOCH", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "TRAIN.TENSORBOARD", "True",
                 *FAST]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    # CRoFT reports its loss terms; the first epoch is the constant warm-up LR
    assert records[0]["lr"] == pytest.approx(1e-5) and records[1]["lr"] == pytest.approx(0.002)
    results = json.loads((out / "results.json").read_text())
    best = max(records, key=lambda r: r["val_accuracy"])
    assert results["best_val_accuracy"] == best["val_accuracy"]
    acc = event_accumulator.EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    for meter, value in records[0]["train"].items():
        events = acc.Scalars(f"train/{meter}")
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx([r["train"][meter] for r in records], rel=1e-6)
    assert [e.value for e in acc.Scalars("val/accuracy")] == pytest.approx([r["val_accuracy"] for r in records])
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([r["lr"] for r in records])
