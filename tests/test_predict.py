"""Prediction with a finished run (``croft.load`` / ``croft-predict``) and the detector thresholds
written at the end of a run (``croft.evaluation.detector``).

On synthetic PACS with the tiny backbone (1 epoch, 2 shots, sketch held out, DTD as the open set),
for every registered trainer: a run restored from its folder alone (its config pointing at a dataset
root that does not exist) predicts the held-out test images and the open-set images with the logits
of the evaluation path and every score of the run's ``scores.npz`` (DPLCLIP's MCM included: its text
features vary by batch). The command line writes one row per image, an unreadable file included, and
bad run folders fail with one line.

A run folder whose files do not describe one run (an edited config.yaml, a checkpoint or a
fingerprint.json of another run) is refused, naming the key; a folder of checkpoints in the original
CRoFT code's format loads with the settings given explicitly and gets the run's own thresholds.
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
from croft.evaluation.detector import threshold_at, write_detector
from croft.evaluation.inference import FINAL
from croft.predict import PredictError, main as predict_main
from croft.results.io import id_key, load_scores, ood_key, shift_key
from croft.utils.layout import (DETECTOR_FILE, DETECTOR_KNN_BANK_FILE, DETECTOR_VAL_SCORES_FILE as VAL_SCORES_FILE,
                                  SCORE_CONTEXT_FILE)
from croft.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
TRAINERS = TRAINER_REGISTRY.names()
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]
TEST_BATCH = 32
#: Per-trainer settings of the 1-epoch runs: LP-FT's linear-probe stage needs an epoch of its own.
EXTRA = {"LP_FT": ["OPTIM.MAX_EPOCH", "2", "TRAINER.LP_FT.LP_EPOCHS", "1"]}


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
            "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "2", *FAST, *EXTRA.get(name, [])]


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


def test_import_croft_and_checking_a_run_folder_stay_light(runs):
    """``import croft`` and the run-folder checks of croft-predict import no torch (they answer at once)."""
    code = ("import sys, croft; croft.Predictor; assert 'torch' not in sys.modules; "
            "from croft.predict import check_run_dir; info = check_run_dir(sys.argv[1]); "
            "assert info.results['trainer'] == 'CRoFT' and info.detector['format'] == 1; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(runs("CRoFT").moved)], cwd=REPO, check=True, timeout=60)


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
        batches = [(trainer.inference(b.features if b.features is not None else trainer.encode(b.images, FINAL),
                                      FINAL).logits.float().cpu(), b.impaths) for b in trainer.test_loader]
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

    # Every score the run wrote, for the ID test images (the standard protocol's ID side, in test order)
    # and the open-set images (in the evaluation's order): the same encode, inference and score context.
    written = load_scores(run.out)
    np.testing.assert_allclose(predictions.scores["energy"], written[shift_key("sketch")], rtol=1e-5, atol=1e-5)
    ood_paths = [item.impath for item in trainer.dataset.ood["DTD"]]
    ood = predictor.predict(ood_paths, batch_size=cfg.DATALOADER.TEST.BATCH_SIZE)
    assert predictor.score_names == list(cfg.TEST.OOD_SCORES)
    for score in cfg.TEST.OOD_SCORES:
        np.testing.assert_allclose(predictions.scores[score], written[id_key(score)], rtol=1e-5, atol=1e-5,
                                   err_msg=f"{name} {score} (ID test)")
        np.testing.assert_allclose(ood.scores[score], written[ood_key("DTD", score)], rtol=1e-5, atol=1e-5,
                                   err_msg=f"{name} {score} (DTD)")

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
    # The score context the evaluation used, saved with the run: the val features as the bank, k capped at its size.
    assert not (run.out / DETECTOR_KNN_BANK_FILE).exists()
    with np.load(run.out / SCORE_CONTEXT_FILE) as context:
        bank, k = context["knn_bank"], int(context["knn_k"])
    assert bank.dtype == np.float32 and bank.shape == (detector["knn"]["bank_size"], trainer.feat_dim)
    assert len(bank) == len(trainer.dataset.val) == 14 and detector["knn"]["bank_source"] == "val"
    assert k == min(cfg.TEST.KNN_K, len(bank)) == detector["knn"]["k"] == predictor.knn_k
    assert detector["knn"]["val_k"] == k - 1  # each val image scored leave-one-out, among the 13 others
    np.testing.assert_array_equal(predictor.knn_bank.numpy(), bank)
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
    for name in (DETECTOR_FILE, VAL_SCORES_FILE, SCORE_CONTEXT_FILE):
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


def test_score_context_saved_with_the_run(tmp_path):
    from croft.evaluation.score_context import ScoreContext, load_score_context, save_score_context

    assert load_score_context(tmp_path) is None  # a run written before croft saved it
    bank = torch.randn(5, 3)
    save_score_context(ScoreContext(knn_bank=bank, knn_k=4, mcm_temperature=0.5), tmp_path)
    loaded = load_score_context(tmp_path)
    assert torch.equal(loaded.knn_bank, bank) and loaded.knn_bank.dtype == torch.float32
    assert (loaded.knn_k, loaded.mcm_temperature) == (4, 0.5) and type(loaded.knn_k) is int
    save_score_context(ScoreContext(knn_k=7), tmp_path)  # no KNN bank: nothing saved for it
    loaded = load_score_context(tmp_path)
    assert loaded.knn_bank is None and (loaded.knn_k, loaded.mcm_temperature) == (7, 1.0)
    path = tmp_path / SCORE_CONTEXT_FILE
    np.savez(path, knn_k=np.int64(3), bank=np.zeros(2))
    with pytest.raises(ValueError, match=f"^{path}: unknown score context field 'bank'"):
        load_score_context(tmp_path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=f"^{path}: unreadable score context"):
        load_score_context(tmp_path)


def test_run_written_before_the_score_context_was_saved(runs, tmp_path):
    """The earlier layout: the KNN bank in detector_knn_bank.npy and its k in detector.json, no score_context.npz."""
    new = croft.load(runs("CRoFT").moved, device="cpu")
    paths = [item.impath for item in runs("CRoFT").trainer.dataset.test[:TEST_BATCH]]
    expected = new.predict(paths)
    run = tmp_path / "run"
    shutil.copytree(runs("CRoFT").moved, run)
    (run / SCORE_CONTEXT_FILE).unlink()
    np.save(run / DETECTOR_KNN_BANK_FILE, new.knn_bank.numpy())
    detector = json.loads((run / DETECTOR_FILE).read_text())
    knn = detector["knn"]
    for k in (new.knn_k, knn["val_k"]):
        detector["knn"] = {"k": k, "bank": DETECTOR_KNN_BANK_FILE, "bank_size": knn["bank_size"],
                           "bank_source": "val", "leave_one_out": True}
        (run / DETECTOR_FILE).write_text(json.dumps(detector))
        old = croft.load(run, device="cpu")
        assert old.score_names == new.score_names and old.knn_k == k
        np.testing.assert_array_equal(old.knn_bank.numpy(), new.knn_bank.numpy())
        got = old.predict(paths)
        for score in ("energy", "mcm", "max_logit"):
            np.testing.assert_array_equal(got.scores[score], expected.scores[score])
        same = np.array_equal(got.scores["knn"], expected.scores["knn"])
        assert same == (k == new.knn_k), k  # the stored k is the one used
    (run / SCORE_CONTEXT_FILE).write_bytes(b"not a zip file")
    with pytest.raises(PredictError, match=f"^unreadable score context, {run}, the score_context.npz"):
        croft.load(run, device="cpu")


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


def subprocess_error(args, code=1):
    """``python -m croft.predict ARGS``: one ``error:`` line, exit ``code``, no traceback; returns the line."""
    env = {k: v for k, v in os.environ.items() if k != "CROFT_TRACEBACK"}
    proc = subprocess.run([sys.executable, "-m", "croft.predict", *map(str, args), "--no-progress"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, (args, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == "", (args, proc.stderr)
    return lines[0]


def test_images_of_wide_modes(runs, tmp_path):
    """A 16-bit PNG predicts as its 8-bit original (it read as all white); a float image is a row error."""
    from PIL import Image

    predictor = croft.load(runs("CRoFT").moved, device="cpu")
    source = runs("CRoFT").trainer.dataset.test[0].impath
    with Image.open(source) as img:
        eight = np.asarray(img.convert("L"))
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    Image.fromarray(eight.astype(np.float32) / 255.0).save(tmp_path / "float.tif")
    with Image.open(tmp_path / "sixteen.png") as img:
        assert img.mode == "I;16"
        in_memory = img.copy()
    white = Image.new("L", in_memory.size, 255)
    paths = [tmp_path / "eight.png", tmp_path / "sixteen.png", in_memory, white, tmp_path / "float.tif"]
    preds = predictor.predict(paths, errors="record")
    assert preds.errors[:4] == [None] * 4
    np.testing.assert_array_equal(preds.logits[1], preds.logits[0])
    np.testing.assert_array_equal(preds.logits[2], preds.logits[0])
    assert not np.allclose(preds.logits[3], preds.logits[0], atol=1e-3)  # what the 16-bit file used to read as
    assert "floating-point image (mode F) with values from" in preds.errors[4]


# ------------------------------------------------------------------------------------------ run identity

@pytest.fixture(scope="module")
def seed2_run(synthetic_root, tmp_path_factory):
    """A CRoFT run differing from ``runs("CRoFT")`` in its seed only."""
    out = tmp_path_factory.mktemp("predict_seed2") / "CRoFT"
    args = run_args("CRoFT", synthetic_root, out)
    args[args.index("--seed") + 1] = "2"
    assert train_main(args) == 0
    return out


def edited_config(run_dir, key, value):
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def mixed_runs(runs, seed2_run, tmp_path_factory):
    """Copies of the CRoFT run whose files do not describe one run: ``{case: (folder, message parts)}``."""
    base = tmp_path_factory.mktemp("mixed")
    good = runs("CRoFT").moved
    cases = {}
    for case in ("config", "checkpoint", "epoch", "fingerprint", "unrecorded"):
        shutil.copytree(good, base / case)
    edited_config(base / "config", "TEST.MCM_TEMPERATURE", 2.0)     # changes the mcm scores
    cases["config"] = ["config.yaml does not match results.json: TEST.MCM_TEMPERATURE is 2.0 in config.yaml, 1.0 "
                       "in results.json", str(base / "config" / "config.yaml")]
    shutil.copy(seed2_run / "generator" / BEST, base / "checkpoint" / "generator" / BEST)
    cases["checkpoint"] = [f"checkpoint generator/{BEST} does not match results.json: SEED is 2 in checkpoint "
                           f"generator/{BEST}, 1 in results.json"]
    shutil.copy(seed2_run / "clip_adapter" / "model.pth.tar-1", base / "epoch" / "clip_adapter" / "model.pth.tar-1")
    cases["epoch"] = ["checkpoint clip_adapter/model.pth.tar-1 does not match results.json: SEED is 2"]
    shutil.copy(seed2_run / "fingerprint.json", base / "fingerprint" / "fingerprint.json")
    cases["fingerprint"] = ["fingerprint.json does not match results.json: SEED is 2 in fingerprint.json, 1 in "
                            "results.json"]
    state = torch.load(base / "unrecorded" / "clip_adapter" / BEST, weights_only=True)
    del state["fingerprint"]
    torch.save(state, base / "unrecorded" / "clip_adapter" / BEST)
    cases["unrecorded"] = [f"checkpoint clip_adapter/{BEST} records no fingerprint, unlike results.json"]
    return {case: (base / case, parts) for case, parts in cases.items()}


BEST = "model-best.pth.tar"


def test_files_of_another_run_are_refused(runs, mixed_runs, tmp_path):
    for case, (run_dir, parts) in mixed_runs.items():
        with pytest.raises(PredictError) as info:
            croft.load(run_dir, device="cpu")
        assert all(part in str(info.value) for part in parts), (case, str(info.value))
    # What may differ: where the dataset is (the moved copy names another root), keys excluded from the fingerprint.
    run = tmp_path / "run"
    shutil.copytree(runs("CRoFT").moved, run)
    edited_config(run, "DATALOADER.NUM_WORKERS", 3)
    edited_config(run, "DATASET.ROOT", str(tmp_path / "elsewhere"))
    croft.load(run, device="cpu")


def test_load_epoch(runs):
    run = runs("CRoFT")
    paths = [item.impath for item in run.trainer.dataset.test[:4]]
    by_epoch = croft.load(run.moved, device="cpu", load_epoch=1)   # the run's only epoch, also its best
    assert by_epoch.checkpoint == "model.pth.tar-1"
    best = croft.load(run.moved, device="cpu")
    np.testing.assert_array_equal(by_epoch.predict(paths).logits, best.predict(paths).logits)
    with pytest.raises(PredictError, match=r"not found, .*model.pth.tar-7, model.pth.tar-7 \(load_epoch 7\)"):
        croft.load(run.moved, device="cpu", load_epoch=7)


def test_cli_files_of_another_run(runs, mixed_runs):
    image = runs("CRoFT").trainer.dataset.test[0].impath
    for case in ("config", "checkpoint"):
        run_dir, parts = mixed_runs[case]
        line = subprocess_error([run_dir, image])
        assert all(part in line for part in parts), (case, line)


# ------------------------------------------------------------------------------------------ original format

def original_settings(name, root):
    """The run's settings as ``croft.load`` takes them for a folder without config.yaml."""
    args = run_args(name, root, "unused")
    overrides = args[args.index("--output-dir") + 2:]
    return {"config": config_args(name)[1], "dataset_config": str(REPO / "configs/datasets/PACS.yaml"),
            "root": str(root), "opts": ["SEED", "1", "TRAINER.NAME", name, "MODEL.BACKBONE.NAME", "tiny", *overrides]}


def settings_flags(settings):
    flags = ["--config-file", settings["config"], "--dataset-config-file", settings["dataset_config"],
             "--root", settings["root"]]
    opts = settings["opts"]
    for key, value in zip(opts[0::2], opts[1::2]):
        flags += ["--set", key, value]
    return flags


def write_original_format(run_dir, target):
    """The run's best weights as the original CRoFT code saves them (a pickled LR scheduler object next to
    them), and nothing else: no config.yaml, results.json, fingerprint or detector files."""
    for folder in sorted(run_dir.iterdir()):
        if not (folder / BEST).is_file():
            continue
        state = torch.load(folder / BEST, map_location="cpu", weights_only=True)
        optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.002)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=30)
        (target / folder.name).mkdir(parents=True)
        torch.save({"state_dict": state["state_dict"], "epoch": 1, "optimizer": optim.state_dict(), "scheduler": sched,
                    "val_result": 50.0}, target / folder.name / BEST)
    return target


@pytest.fixture(scope="module")
def original_run(runs, tmp_path_factory):
    return write_original_format(runs("CRoFT").out, tmp_path_factory.mktemp("original") / "run")


def test_original_format_folder_with_explicit_settings(runs, original_run, synthetic_root, tmp_path, monkeypatch):
    run = runs("CRoFT")
    with pytest.raises(PredictError, match="no config.yaml.*--config-file, --dataset-config-file"):
        croft.load(original_run)
    settings = original_settings("CRoFT", synthetic_root)
    monkeypatch.chdir(tmp_path)  # configs/... from another folder: found as croft-train finds it
    predictor = croft.load(original_run, device="cpu", **dict(settings,
                                                                config=os.path.relpath(settings["config"], REPO)))
    reference = croft.load(run.moved, device="cpu")
    assert predictor.classnames == reference.classnames
    paths = [item.impath for item in run.trainer.dataset.test]
    got, expected = predictor.predict(paths, batch_size=TEST_BATCH), reference.predict(paths, batch_size=TEST_BATCH)
    np.testing.assert_allclose(got.logits, expected.logits, rtol=1e-6, atol=1e-6)
    for score in expected.scores:
        np.testing.assert_allclose(got.scores[score], expected.scores[score], rtol=1e-5, atol=1e-5)

    # Thresholds computed now, on the ID val images, as the run computed its detector.json.
    stored = json.loads((run.out / DETECTOR_FILE).read_text())
    assert predictor.detector["source"] == "val" and predictor.detector["n_val"] == stored["n_val"]
    assert predictor.score_names == stored["scores"]
    for score, threshold in stored["thresholds"].items():
        assert predictor.threshold(score) == pytest.approx(threshold, rel=1e-5, abs=1e-5)
    with np.load(run.out / VAL_SCORES_FILE) as data:
        for score in stored["scores"]:
            np.testing.assert_allclose(predictor.val_scores(score), data[score], rtol=1e-5, atol=1e-5)
            assert predictor.threshold(score, tpr=0.5) == pytest.approx(threshold_at(data[score], 0.5), rel=1e-5,
                                                                         abs=1e-5)
    with np.load(run.out / SCORE_CONTEXT_FILE) as context:
        np.testing.assert_allclose(predictor.knn_bank.numpy(), context["knn_bank"], rtol=1e-5, atol=1e-6)
    assert predictor.knn_k == stored["knn"]["k"]
    assert got.threshold is not None and got.is_unknown.tolist() == (got.scores["energy"] < got.threshold).tolist()
    assert sorted(p.name for p in original_run.rglob("*")) == sorted(["clip_adapter", "generator", BEST, BEST])

    # A folder that holds no dataset-free way to its class names needs the dataset.
    with pytest.raises(PredictError, match="class names and detector thresholds unknown.*DATASET.ROOT"):
        croft.load(original_run, device="cpu", **dict(settings, root=str(original_run / "no-data")))


def test_explicit_settings_are_checked_against_recorded_fingerprints(runs, synthetic_root, tmp_path):
    """A croft run's checkpoints without its config.yaml: the settings given must be those it was trained with."""
    folder = tmp_path / "run"
    shutil.copytree(runs("CRoFT").out, folder)
    (folder / "config.yaml").unlink()
    settings = original_settings("CRoFT", synthetic_root)
    with pytest.raises(PredictError, match="does not match the settings given: DATASET.NUM_SHOTS is 2 in .*, 4 in "
                                           "the settings given"):
        croft.load(folder, device="cpu", **dict(settings, opts=settings["opts"] + ["DATASET.NUM_SHOTS", "4"]))
    # Evaluation-only keys may differ, as for croft-train --eval-only --model-dir.
    predictor = croft.load(folder, device="cpu", **dict(settings, opts=settings["opts"] + ["TEST.KNN_K", "3"]))
    assert predictor.cfg.TEST.KNN_K == 3


def test_cli_original_format_folder(runs, original_run, synthetic_root, tmp_path):
    run = runs("CRoFT")
    settings = original_settings("CRoFT", synthetic_root)
    images = [item.impath for item in run.trainer.dataset.test[:6]]
    out = tmp_path / "preds.csv"
    env = {k: v for k, v in os.environ.items() if k != "CROFT_TRACEBACK"}
    proc = subprocess.run([sys.executable, "-m", "croft.predict", str(original_run), *images, "--output", str(out),
                           "--no-progress", *settings_flags(settings)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "6 images, 0 unreadable" in proc.stderr and "ID val images" in proc.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    expected = croft.load(run.moved, device="cpu").predict(images)
    assert [r["class"] for r in rows] == expected.classes
    np.testing.assert_allclose([float(r["energy"]) for r in rows], expected.scores["energy"], rtol=1e-5)
    assert all(r["is_unknown"] in ("true", "false") for r in rows)

    # Errors: no settings; settings for a run with its own config.yaml; a bad key (a config error: exit 2);
    # the dataset missing.
    line = subprocess_error([original_run, images[0]])
    assert line.startswith("error: no config.yaml, ") and "--config-file" in line
    line = subprocess_error([run.moved, images[0], *settings_flags(settings)])
    assert line.startswith("error: settings given for a run that has its own config.yaml, ")
    line = subprocess_error([original_run, images[0], *settings_flags(settings), "--set", "TEST.NO_SUCH_KEY", "1"],
                            code=2)
    assert "TEST.NO_SUCH_KEY" in line
    missing = dict(settings, root=str(tmp_path / "no-data"))
    line = subprocess_error([original_run, images[0], *settings_flags(missing)])
    assert line.startswith("error: class names and detector thresholds unknown (no detector.json), ")
    assert str(tmp_path / "no-data") in line


# ------------------------------------------------------------------------------------------ output, inputs

@pytest.fixture()
def unbuildable_run(runs, tmp_path):
    """A copy of the CRoFT run whose failure shows only once the trainer is built (a model's checkpoint missing)."""
    run = tmp_path / "run"
    shutil.copytree(runs("CRoFT").moved, run)
    shutil.rmtree(run / "generator")
    return run


def test_cli_output_path_is_checked_before_anything_is_built(runs, unbuildable_run, tmp_path):
    image = runs("CRoFT").trainer.dataset.test[0].impath
    (tmp_path / "a-file").write_text("")
    line = subprocess_error([unbuildable_run, image, "--output", tmp_path / "a-file" / "sub" / "preds.csv"])
    assert line.startswith(f"error: cannot create the --output file, {tmp_path / 'a-file' / 'sub' / 'preds.csv'}, ")
    assert f"{tmp_path / 'a-file'} is a file" in line
    (tmp_path / "folder.csv").mkdir()
    line = subprocess_error([unbuildable_run, image, "--output", tmp_path / "folder.csv"])
    assert line.startswith("error: --output is a folder, ")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to read-only folders")
def test_cli_output_into_a_read_only_folder(runs, unbuildable_run, tmp_path):
    image = runs("CRoFT").trainer.dataset.test[0].impath
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        line = subprocess_error([unbuildable_run, image, "--output", locked / "preds.csv"])
        assert line.startswith(f"error: --output folder is not writable, {locked / 'preds.csv'}, ")
        line = subprocess_error([unbuildable_run, image, "--output", locked / "new" / "preds.csv"])
        assert line.startswith("error: --output folder is not writable, ")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_cli_fails_when_no_image_can_be_predicted(runs, tmp_path):
    from PIL import Image

    (tmp_path / "corrupt.jpg").write_bytes(b"not an image")
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "float.tif")
    out = tmp_path / "preds.csv"
    out.write_text("earlier results\n")
    line = subprocess_error([runs("CRoFT").moved, tmp_path / "corrupt.jpg", tmp_path / "float.tif", "--output", out])
    assert line.startswith("error: no image could be predicted (2 unreadable; first: ") and "corrupt.jpg" in line
    assert out.read_text() == "earlier results\n"
