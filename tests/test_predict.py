"""Prediction with a finished run (``croft.load`` / ``croft-predict``) and the detector thresholds
written at the end of a run (``croft.evaluation.detector``).

On synthetic PACS with the tiny backbone (1 epoch, 2 shots, sketch held out, DTD as the open set),
for every registered trainer: a run restored from its folder alone (its config pointing at a dataset
root that does not exist) predicts the held-out test images with the logits of the evaluation path,
and the energies of the run's ``scores.npz``. The command line writes one row per image, an
unreadable file included, and bad run folders fail with one line.
"""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import croft
import croft.engine.trainer as trainer_module
import croft.trainers  # noqa: F401  (registers every trainer)
from croft.engine.trainer import TRAINER_REGISTRY
from croft.evaluation.detector import (DETECTOR_FILE, KNN_BANK_FILE, VAL_SCORES_FILE, threshold_at,
                                       write_detector)
from croft.evaluation.inference import FINAL
from croft.predict import PredictError, main as predict_main
from croft.results.io import load_scores, shift_key
from croft.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
TRAINERS = TRAINER_REGISTRY.names()
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]
TEST_BATCH = 32


def config_args(name):
    for stem in ("rn50_ep30", "rn50"):
        path = REPO / "configs" / "trainers" / name / f"{stem}.yaml"
        if path.is_file():
            return ["--config-file", str(path)]
    return []


def run_args(name, root, out):
    return ["--root", str(root), "--seed", "1", "--trainer", name,
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"), *config_args(name),
            "--backbone", "tiny", "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json",
            "DATASET.NUM_SHOTS", "2", "DATASET.OOD_SETS", "['DTD']", "OPTIM.MAX_EPOCH", "1",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", str(TEST_BATCH),
            "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "2", *FAST]


def train_keeping_trainer(args):
    """``croft.train.main(args)``, also returning the trainer it built."""
    built = []
    original = trainer_module.build_trainer

    def recording(cfg):
        built.append(original(cfg))
        return built[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "build_trainer", recording)  # croft.train.run imports it at call time
        assert train_main(args) == 0, f"croft.train.main failed for {args}"
    return built[0]


class Run:
    def __init__(self, name, out, trainer, moved):
        self.name, self.out, self.trainer, self.moved = name, out, trainer, moved


@pytest.fixture(scope="module")
def runs(synthetic_root, tmp_path_factory):
    """One trained run per trainer (on first use), and a copy of its folder whose config names a
    dataset root that does not exist (the restore must not read the dataset)."""
    done = {}
    base = tmp_path_factory.mktemp("predict_runs")

    def get(name):
        if name not in done:
            out = base / name
            trainer = train_keeping_trainer(run_args(name, synthetic_root, out))
            if not (out / DETECTOR_FILE).exists():
                # Until TrainerBase.evaluate_and_write_results calls it (docs/predict.md).
                write_detector(trainer)
            moved = base / f"{name}-moved"
            shutil.copytree(out, moved)
            config = (moved / "config.yaml").read_text()
            line = f"  ROOT: {synthetic_root}\n"
            assert line in config
            (moved / "config.yaml").write_text(config.replace(line, f"  ROOT: {base / 'no-such-dataset'}\n"))
            done[name] = Run(name, out, trainer, moved)
        return done[name]

    return get


# ------------------------------------------------------------------------------------------ threshold rule

def test_threshold_rule():
    scores = np.arange(20, dtype=np.float64)                 # 0 .. 19
    assert threshold_at(scores, 0.95) == 1.0                 # ceil(19) = 19 kept: 1 .. 19
    assert threshold_at(scores, 1.0) == 0.0
    assert threshold_at(scores, 0.5) == 10.0
    assert threshold_at(scores, 1e-9) == 19.0                # at least one kept
    assert threshold_at(np.arange(100.0), 0.07) == 93.0      # 0.07 * 100 = 7.000000000000001 in floats
    for n in (1, 7, 13, 100):
        values = np.sort(np.random.default_rng(n).normal(size=n))
        for tpr in (0.05, 0.5, 0.9, 0.95, 1.0):
            kept = (values >= threshold_at(values, tpr)).mean()
            assert kept >= tpr - 1e-12 and kept - 1.0 / n < tpr  # the fewest samples reaching tpr
    with pytest.raises(ValueError):
        threshold_at(values, 0.0)


def test_import_croft_stays_light_and_constants_agree():
    code = "import sys, croft; assert 'torch' not in sys.modules; croft.Predictor; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
    import croft.predict as predict
    from croft.engine.checkpoint import BEST_NAME, epoch_file_name
    from croft.results.io import RESULTS_FILE, SCHEMA_VERSION

    # croft.predict checks run folders without importing torch, so it spells these out
    assert (predict.BEST_NAME, predict.EPOCH_PREFIX + "3") == (BEST_NAME, epoch_file_name(3))
    assert (predict.RESULTS_FILE, predict.SCHEMA_VERSION) == (RESULTS_FILE, SCHEMA_VERSION)


# ------------------------------------------------------------------------------------------ every trainer

@pytest.mark.parametrize("name", TRAINERS)
def test_predict_matches_the_evaluation_path(runs, name):
    run = runs(name)
    trainer, cfg = run.trainer, run.trainer.cfg
    rng_before = torch.get_rng_state()
    predictor = croft.load(run.moved)  # the run's device
    assert torch.equal(torch.get_rng_state(), rng_before), "restoring a run must not touch the global RNG"
    assert isinstance(predictor, croft.Predictor)
    assert predictor.classnames == list(trainer.classnames)

    # The evaluation path: the trained trainer over the run's test loader, final settings.
    trainer.set_model_mode("eval")
    with torch.no_grad():
        batches = [(trainer.inference(b.features, FINAL).logits.float().cpu(), b.impaths) for b in trainer.test_loader]
    expected = torch.cat([logits for logits, _ in batches]).numpy()
    paths = [p for _, impaths in batches for p in impaths]
    assert paths == [item.impath for item in trainer.dataset.test]

    # Same images, same batch composition (DPLCLIP averages its domain prompt over the batch).
    predictions = predictor.predict(paths, batch_size=cfg.DATALOADER.TEST.BATCH_SIZE)
    assert len(predictions) == len(paths) and predictions.errors == [None] * len(paths)
    np.testing.assert_allclose(predictions.logits, expected, rtol=1e-5, atol=1e-5)
    assert predictions.class_index.tolist() == expected.argmax(1).tolist()
    assert predictions.classes == [trainer.classnames[i] for i in expected.argmax(1)]
    probs = torch.softmax(torch.from_numpy(expected).double(), 1).max(1).values.numpy()
    np.testing.assert_allclose(predictions.confidence, probs, rtol=1e-5)
    # ... and the energies the run wrote (logsumexp of its final logits, in test order).
    written = load_scores(run.out)[shift_key("sketch")]
    np.testing.assert_allclose(predictions.scores["energy"], written, rtol=1e-5, atol=1e-5)

    # Detector: every score the run evaluated; thresholds keep 95% of the ID val scores.
    detector = json.loads((run.out / DETECTOR_FILE).read_text())
    assert detector["tpr"] == 0.95 and detector["source"] == "val"
    assert detector["scores"] == ["energy", "mcm", "max_logit", "knn"] == list(cfg.TEST.OOD_SCORES)
    assert detector["classnames"] == list(trainer.classnames)
    assert detector["n_val"] == len(trainer.dataset.val)
    with np.load(run.out / VAL_SCORES_FILE) as data:
        val_scores = {k: data[k] for k in data.files}
    assert set(val_scores) == set(detector["scores"])
    for score, threshold in detector["thresholds"].items():
        values = val_scores[score]
        assert len(values) == detector["n_val"] and np.all(np.diff(values) >= 0)
        assert (values >= threshold).mean() >= 0.95
        assert threshold == threshold_at(values, 0.95) == predictor.threshold(score)
        assert predictor.threshold(score, tpr=0.5) == threshold_at(values, 0.5)
    bank = np.load(run.out / KNN_BANK_FILE)
    assert bank.dtype == np.float32 and bank.shape == (detector["knn"]["bank_size"], trainer.feat_dim)
    assert predictor.score_names == detector["scores"]
    assert all(np.isfinite(predictions.scores[s]).all() for s in predictor.score_names)
    flags = predictions.scores["energy"] < detector["thresholds"]["energy"]
    assert predictions.is_unknown.tolist() == flags.tolist()
    knn = predictor.predict(paths[:5], score="knn", tpr=0.5)
    assert knn.threshold == threshold_at(val_scores["knn"], 0.5)
    assert knn.is_unknown.tolist() == (knn.scores["knn"] < knn.threshold).tolist()


def test_inputs_paths_pil_and_tensors_agree(runs):
    from PIL import Image

    predictor = croft.load(runs("CRoFT").moved, device="cpu")
    paths = [item.impath for item in runs("CRoFT").trainer.dataset.test[:3]]
    by_path = predictor.predict(paths)
    with Image.open(paths[0]) as img:
        pil = predictor.predict([img.copy(), Path(paths[1])])
    tensor = predictor.predict(predictor.transform(Image.open(paths[2]).convert("RGB")))
    np.testing.assert_allclose(pil.logits, by_path.logits[:2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tensor.logits, by_path.logits[2:], rtol=1e-5, atol=1e-5)
    assert pil.paths == [None, paths[1]]
    with pytest.raises(ValueError, match="cannot read"):
        predictor.predict([paths[0], "/no/such/image.jpg"])
    with pytest.raises(PredictError, match="unknown score"):
        predictor.predict(paths, score="nope")


def test_thresholds_of_a_score_whose_definition_changed_are_refused(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs("CRoFT").moved, run)
    detector = json.loads((run / DETECTOR_FILE).read_text())
    assert set(detector["score_probe"]) == set(detector["scores"])
    detector["score_probe"]["mcm"] = [v + 0.5 for v in detector["score_probe"]["mcm"]]  # "computed differently"
    (run / DETECTOR_FILE).write_text(json.dumps(detector))
    predictor = croft.load(run, device="cpu")
    assert predictor.stale_scores == ["mcm"]
    image = runs("CRoFT").trainer.dataset.test[0].impath
    with pytest.raises(PredictError, match="definition of score 'mcm' changed"):
        predictor.predict(image, score="mcm")
    assert predictor.predict(image).threshold == detector["thresholds"]["energy"]


def test_run_without_detector_takes_classes_from_its_dataset(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs("CoOp").out, run)  # config.yaml names the (existing) synthetic root
    for name in (DETECTOR_FILE, VAL_SCORES_FILE, KNN_BANK_FILE):
        (run / name).unlink()
    predictor = croft.load(run, device="cpu")
    assert predictor.detector is None and predictor.score_names == ["energy", "mcm", "max_logit"]
    assert predictor.classnames == list(runs("CoOp").trainer.classnames)
    paths = [item.impath for item in runs("CoOp").trainer.dataset.test[:4]]
    predictions = predictor.predict(paths)
    assert predictions.threshold is None and not predictions.is_unknown.any()
    assert all(row["is_unknown"] is None for row in predictions)
    np.testing.assert_allclose(predictions.logits, croft.load(runs("CoOp").moved, device="cpu").predict(paths).logits,
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ command line

def test_cli_writes_one_row_per_image(runs, synthetic_root, tmp_path, capsys):
    run = runs("CRoFT")
    images = tmp_path / "images"
    groups = {"sketch": [item.impath for item in run.trainer.dataset.test[:10]],
              "dtd": sorted(str(p) for p in Path(synthetic_root, "dtd").rglob("*.jpg"))[:10]}
    for group, files in groups.items():
        (images / group).mkdir(parents=True)
        for i, src in enumerate(files):
            shutil.copy(src, images / group / f"{i:02d}{Path(src).suffix}")
    (images / "corrupt.jpg").write_bytes(b"this is not an image")
    (images / "notes.txt").write_text("not an image extension: skipped")
    out = tmp_path / "preds.csv"
    assert predict_main([str(run.moved), str(images), "--output", str(out), "--device", "cpu",
                         "--batch-size", "4", "--no-progress"]) == 0
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        columns, rows = reader.fieldnames, list(reader)
    scores = ["energy", "mcm", "max_logit", "knn"]
    assert columns == ["path", "class", "class_index", "confidence", *scores, "is_unknown", "error"]
    assert len(rows) == 21
    by_group = {}
    for row in rows:
        group = Path(row["path"]).parent.name if Path(row["path"]).parent != images else "top"
        by_group.setdefault(group, []).append(row)
    assert {g: len(r) for g, r in by_group.items()} == {"sketch": 10, "dtd": 10, "top": 1}
    (bad,) = by_group["top"]
    assert bad["path"].endswith("corrupt.jpg") and bad["error"] and "cannot identify image" in bad["error"]
    assert all(bad[c] == "" for c in columns if c not in ("path", "error"))
    detector = json.loads((run.out / DETECTOR_FILE).read_text())
    classnames = detector["classnames"]
    for row in by_group["sketch"] + by_group["dtd"]:
        assert row["error"] == "" and row["class"] == classnames[int(row["class_index"])]
        assert 0.0 < float(row["confidence"]) <= 1.0
        assert all(math.isfinite(float(row[s])) for s in scores)
        assert row["is_unknown"] == ("true" if float(row["energy"]) < detector["thresholds"]["energy"] else "false")
    assert "21 images, 1 unreadable" in capsys.readouterr().err
    with capsys.disabled():  # a report, not a result to assert (shown with pytest -s)
        print()
        for group in ("sketch", "dtd"):
            rates = {s: np.mean([float(r[s]) < detector["thresholds"][s] for r in by_group[group]]) for s in scores}
            print(f"croft-predict CRoFT, {group} ({len(by_group[group])} images): unknown rate at TPR 0.95 "
                  + ", ".join(f"{s} {rate:.2f}" for s, rate in rates.items()))

    # JSON lines, another score and TPR
    out = tmp_path / "preds.jsonl"
    assert predict_main([str(run.moved), str(images / "dtd"), str(images / "corrupt.jpg"), "--output", str(out),
                         "--score", "max_logit", "--tpr", "0.5", "--device", "cpu", "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 11 and list(rows[0]) == columns
    with np.load(run.out / VAL_SCORES_FILE) as data:
        threshold = threshold_at(data["max_logit"], 0.5)
    assert [r["is_unknown"] for r in rows[:10]] == [r["max_logit"] < threshold for r in rows[:10]]
    assert rows[10]["error"] and rows[10]["is_unknown"] is None and rows[10]["class"] is None


def test_cli_checkpoint_missing_for_one_model(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs("CRoFT").moved, run)
    shutil.rmtree(run / "generator")  # clip_adapter/ is still there: found once the trainer is built
    image = runs("CRoFT").trainer.dataset.test[0].impath
    capsys.readouterr()  # what training printed
    assert predict_main([str(run), image, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: checkpoint not found, ") and "generator" in err


def test_cli_bad_run_folders(runs, tmp_path):
    good = runs("CRoFT").moved
    cases = {}
    cases["a file"] = (good / "results.json", "not a folder")
    cases["missing"] = (tmp_path / "nowhere", "run folder not found")
    (tmp_path / "empty").mkdir()
    cases["empty"] = (tmp_path / "empty", "no config.yaml")
    for case in ("unfinished", "schema", "no-checkpoint"):
        shutil.copytree(good, tmp_path / case)
    (tmp_path / "unfinished" / "results.json").unlink()
    cases["unfinished"] = (tmp_path / "unfinished", "unfinished run")
    results = json.loads((good / "results.json").read_text())
    results["schema_version"] = 1
    (tmp_path / "schema" / "results.json").write_text(json.dumps(results))
    cases["schema"] = (tmp_path / "schema", "results.json of schema_version 1")
    shutil.rmtree(tmp_path / "no-checkpoint" / "clip_adapter")
    shutil.rmtree(tmp_path / "no-checkpoint" / "generator")
    cases["no-checkpoint"] = (tmp_path / "no-checkpoint", "no checkpoint")
    env = {k: v for k, v in os.environ.items() if k != "CROFT_TRACEBACK"}
    for case, (run_dir, what) in cases.items():
        proc = subprocess.run([sys.executable, "-m", "croft.predict", str(run_dir), str(good)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (case, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {what}"), (case, proc.stderr)
        assert lines[0].count(", ") >= 2, (case, lines[0])  # <what>, <where>, <what was expected>
        assert "Traceback" not in proc.stderr and proc.stdout == "", case
