"""Run integrity: bad inputs stop early with one line and leave earlier outputs untouched; the
fingerprint refuses mixed settings; kill -9 then rerun gives the uninterrupted run's results."""
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from croft.train import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def args_for(trainer, root, out, *extra, config="rn50_ep30", dataset="PACS"):
    cfg = "rn50" if trainer == "ZeroshotCLIP" else config
    return ["--root", str(root), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(REPO / f"configs/datasets/{dataset}.yaml"),
            "--config-file", str(REPO / f"configs/trainers/{trainer}/{cfg}.yaml"), "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2",
            "OPTIM.MAX_EPOCH", "1", "OPTIM.WARMUP_EPOCH", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8",
            "DATASET.OOD_SETS", "['DTD']", *FAST, *extra]


def snapshot(folder):
    """{relative path: sha256} of every file under ``folder``."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def finished(synthetic_root, tmp_path_factory):
    """A finished CLIP_Adapter run (1 epoch) whose files must survive every bad input."""
    out = tmp_path_factory.mktemp("reliability") / "adapter"
    assert main(args_for("CLIP_Adapter", synthetic_root, out)) == 0
    return out


def run_and_check(argv, rc, needles, capfd, guarded):
    before = snapshot(guarded)
    assert main(argv) == rc
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert "Traceback" not in err
    assert snapshot(guarded) == before
    return errors[0]


# ------------------------------------------------------------------ config errors (exit 2)

CONFIG_CASES = [
    ("unknown key", ["FOO.BAR", "1"], ["FOO.BAR"]),
    ("wrong type", ["DATASET.NUM_SHOTS", "abc"], ["DATASET.NUM_SHOTS", "abc"]),
    ("zero epochs", ["OPTIM.MAX_EPOCH", "0"], ["OPTIM.MAX_EPOCH", "0"]),
    ("negative epochs", ["OPTIM.MAX_EPOCH", "-1"], ["OPTIM.MAX_EPOCH", "-1"]),
    ("train batch 0", ["DATALOADER.TRAIN_X.BATCH_SIZE", "0"], ["DATALOADER.TRAIN_X.BATCH_SIZE", "0"]),
    ("test batch 0", ["DATALOADER.TEST.BATCH_SIZE", "0"], ["DATALOADER.TEST.BATCH_SIZE"]),
    ("knn k 0", ["TEST.KNN_K", "0"], ["TEST.KNN_K"]),
    ("mcm temperature 0", ["TEST.MCM_TEMPERATURE", "0.0"], ["TEST.MCM_TEMPERATURE"]),
    ("adapter ratio", ["TRAINER.CLIP_Adapter.RATIO", "1.5"], ["TRAINER.CLIP_Adapter.RATIO", "1.5"]),
    ("adapter reduction", ["TRAINER.CLIP_Adapter.REDUCTION", "0"], ["TRAINER.CLIP_Adapter.REDUCTION"]),
    ("protocol", ["TEST.OOD_PROTOCOL", "foo"], ["TEST.OOD_PROTOCOL", "foo"]),
    ("score", ["TEST.OOD_SCORES", "['entropy']"], ["TEST.OOD_SCORES", "entropy"]),
    ("train views", ["CACHE.TRAIN_VIEWS", "0"], ["CACHE.TRAIN_VIEWS"]),
    ("learning rate", ["OPTIM.LR", "0.0"], ["OPTIM.LR"]),
    ("unsupported Dassl key", ["INPUT.NO_TRANSFORM", "True"], ["INPUT.NO_TRANSFORM"]),
    ("subsample", ["DATASET.SUBSAMPLE_CLASSES", "half"], ["DATASET.SUBSAMPLE_CLASSES", "half"]),
    ("autocast", ["MODEL.AUTOCAST", "fp8"], ["MODEL.AUTOCAST", "fp8"]),
    ("dataset name", ["DATASET.NAME", "PACZ"], ["DATASET.NAME", "PACZ"]),
    ("held-out domain", ["TEST_ENV", "test_on_nowhere.json"], ["nowhere"]),
    ("odd overrides", ["DATASET.NUM_SHOTS"], ["KEY VALUE"]),
    ("test split", ["TEST.SPLIT", "train"], ["TEST.SPLIT", "train"]),
    ("val percent", ["DATASET.VAL_PERCENT", "1.5"], ["DATASET.VAL_PERCENT"]),
]


@pytest.mark.parametrize("name, extra, needles", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_errors_stop_before_anything_is_built(name, extra, needles, synthetic_root, finished, capfd):
    run_and_check(args_for("CLIP_Adapter", synthetic_root, finished, *extra), 2, needles, capfd, finished)


@pytest.mark.parametrize("trainer, extra, needles", [
    ("CRoFT", ["TRAINER.CRoFT.ratio", "1.5"], ["TRAINER.CRoFT.ratio", "1.5"]),
    ("CRoFT", ["TRAINER.CRoFT.gen_step", "-1"], ["TRAINER.CRoFT.gen_step"]),
    ("CRoFT", ["TRAINER.CRoFT.EVAL_RATIO", "2.0"], ["TRAINER.CRoFT.EVAL_RATIO"]),
    ("TIP_ADAPTER", ["TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "0"], ["TRAINER.TIP_ADAPTER.AUGMENT_EPOCH"]),
    ("Nope", [], ["TRAINER.NAME", "Nope"]),
])
def test_trainer_config_errors(trainer, extra, needles, synthetic_root, finished, capfd):
    argv = args_for("CLIP_Adapter", synthetic_root, finished, *extra)
    argv[argv.index("CLIP_Adapter")] = trainer
    run_and_check(argv, 2, needles, capfd, finished)


def test_head_flag_is_refused_as_an_unsupported_dassl_key(synthetic_root, finished, capfd):
    run_and_check(["--head", "linear"] + args_for("CLIP_Adapter", synthetic_root, finished), 2,
                  ["MODEL.HEAD.NAME", "linear"], capfd, finished)


# ------------------------------------------------------------------ folders, checkpoints, weights (exit 1)

def test_output_dir_that_is_a_file(synthetic_root, tmp_path, finished, capfd):
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    run_and_check(args_for("CLIP_Adapter", synthetic_root, target), 1, [str(target), "is a file"], capfd, tmp_path)


def test_resume_from_a_missing_folder(synthetic_root, tmp_path, capfd):
    missing = tmp_path / "nowhere"
    run_and_check(args_for("CLIP_Adapter", synthetic_root, tmp_path / "out", "RESUME", str(missing)), 1,
                  ["--resume", str(missing), "does not exist"], capfd, tmp_path)


def test_eval_only_needs_a_model_dir_that_exists(synthetic_root, tmp_path, capfd):
    run_and_check(["--eval-only"] + args_for("CLIP_Adapter", synthetic_root, tmp_path / "a"), 1,
                  ["--model-dir"], capfd, tmp_path)
    missing = tmp_path / "missing"
    run_and_check(["--eval-only", "--model-dir", str(missing)] + args_for("CLIP_Adapter", synthetic_root,
                                                                          tmp_path / "b"),
                  1, ["--model-dir", str(missing)], capfd, tmp_path)


class Payload:
    """Stands for arbitrary code in a pickle: safe loading must refuse it."""

    def __reduce__(self):
        return (os.getcwd, ())


def bad_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.pt").write_bytes(b"")
    good = folder / "good.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 1}, good)
    (folder / "truncated.pt").write_bytes(good.read_bytes()[:100])
    (folder / "text.pt").write_text("this is not a checkpoint\n")
    with open(folder / "pickle.pt", "wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    return {"empty": ("empty.pt", "empty"), "truncated": ("truncated.pt", "truncated or not a torch file"),
            "text": ("text.pt", "truncated or not a torch file"),
            "pickle": ("pickle.pt", "not a plain tensor checkpoint")}


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "pickle"])
def test_bad_checkpoint_given_to_eval_only(kind, synthetic_root, finished, tmp_path, capfd):
    model_dir = tmp_path / "model"
    shutil.copytree(finished, model_dir)
    name, needle = bad_files(tmp_path / "files")[kind]
    shutil.copy(tmp_path / "files" / name, model_dir / "adapter" / "model-best.pth.tar")
    out = tmp_path / "eval"
    run_and_check(["--eval-only", "--model-dir", str(model_dir)] + args_for("CLIP_Adapter", synthetic_root, out),
                  1, [str(model_dir / "adapter" / "model-best.pth.tar"), needle], capfd, model_dir)
    assert not (out / "results.json").exists()


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "pickle"])
def test_bad_pretrained_file(kind, synthetic_root, tmp_path, capfd):
    name, needle = bad_files(tmp_path / "files")[kind]
    path = tmp_path / "files" / name
    argv = args_for("CLIP_Adapter", synthetic_root, tmp_path / "out") + ["MODEL.BACKBONE.PRETRAINED", str(path)]
    run_and_check(argv, 1, ["MODEL.BACKBONE.PRETRAINED", str(path), needle], capfd, tmp_path / "files")


def test_pretrained_file_that_does_not_exist(synthetic_root, tmp_path, capfd):
    path = tmp_path / "weights" / "missing.pt"
    argv = args_for("CLIP_Adapter", synthetic_root, tmp_path / "out") + ["MODEL.BACKBONE.PRETRAINED", str(path)]
    run_and_check(argv, 1, [str(path)], capfd, synthetic_root)


def test_dataset_root_that_does_not_exist(tmp_path, finished, capfd):
    root = tmp_path / "no_data"
    run_and_check(args_for("CLIP_Adapter", root, tmp_path / "out"), 1, [str(root)], capfd, finished)


@pytest.fixture
def pacs_copy(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(Path(synthetic_root) / "PACS", root / "PACS")
    shutil.copytree(Path(synthetic_root) / "dtd", root / "dtd")
    return root


def test_unreadable_image_is_named_with_its_split_file(pacs_copy, tmp_path, capfd):
    split = json.loads((pacs_copy / "PACS" / "test_on_sketch.json").read_text())
    relpath = split["train"][0][0]
    (pacs_copy / "PACS" / "images" / relpath).write_bytes(b"\x00garbage, not an image")
    line = run_and_check(args_for("CLIP_Adapter", pacs_copy, tmp_path / "out"), 1,
                         [relpath, "test_on_sketch.json"], capfd, pacs_copy)
    assert "unreadable image" in line


def test_missing_source_domain_in_the_folder_layout(pacs_copy, tmp_path, capfd):
    for split in (pacs_copy / "PACS").glob("test_on_*.json"):
        split.unlink()
    shutil.rmtree(pacs_copy / "PACS" / "images" / "cartoon")
    run_and_check(args_for("CLIP_Adapter", pacs_copy, tmp_path / "out"), 1, ["cartoon", "source domain"], capfd,
                  pacs_copy)


def test_missing_split_file(pacs_copy, tmp_path, capfd):
    (pacs_copy / "PACS" / "test_on_sketch.json").unlink()
    run_and_check(args_for("CLIP_Adapter", pacs_copy, tmp_path / "out"), 1, ["test_on_sketch.json"], capfd,
                  pacs_copy)


def test_open_set_set_without_images(pacs_copy, tmp_path, capfd):
    shutil.rmtree(pacs_copy / "dtd")
    (pacs_copy / "dtd" / "images").mkdir(parents=True)
    run_and_check(args_for("CLIP_Adapter", pacs_copy, tmp_path / "out"), 1, ["DTD"], capfd, pacs_copy)


# ------------------------------------------------------------------ the fingerprint

@pytest.mark.parametrize("what, extra, key", [
    ("seed", ["--seed", "2"], "SEED"),
    ("method hyper-parameter", ["TRAINER.CLIP_Adapter.RATIO", "0.6"], "TRAINER.CLIP_Adapter.RATIO"),
    ("held-out domain", ["TEST_ENV", "test_on_photo.json"], "TEST_ENV"),
    ("shots", ["DATASET.NUM_SHOTS", "3"], "DATASET.NUM_SHOTS"),
    ("sampler", ["DATASET.FEWSHOT_SAMPLER", "reference_balance"], "DATASET.FEWSHOT_SAMPLER"),
    ("optimiser", ["OPTIM.LR", "0.01"], "OPTIM.LR"),
    ("schedule", ["OPTIM.MAX_EPOCH", "2"], "OPTIM.MAX_EPOCH"),
    ("protocol", ["TEST.OOD_PROTOCOL", "reference"], "TEST.OOD_PROTOCOL"),
])
def test_a_rerun_with_other_settings_is_refused(what, extra, key, synthetic_root, finished, capfd):
    argv = args_for("CLIP_Adapter", synthetic_root, finished)
    if extra[0] == "--seed":
        argv[argv.index("--seed") + 1] = extra[1]
    else:
        argv += extra
    line = run_and_check(argv, 1, [key, "--restart", "--output-dir"], capfd, finished)
    assert "other settings" in line


def test_other_backbone_weights_are_refused(synthetic_root, finished, tmp_path, capfd):
    weights = tmp_path / "weights.pt"
    from croft.clip.backbone import load_clip
    model, _ = load_clip("tiny", pretrained="none")
    torch.save(model.state_dict(), weights)
    argv = args_for("CLIP_Adapter", synthetic_root, finished) + ["MODEL.BACKBONE.PRETRAINED", str(weights)]
    run_and_check(argv, 1, ["weights", "MODEL.BACKBONE.PRETRAINED"], capfd, finished)


def test_eval_only_may_change_evaluation_keys_but_not_training_keys(synthetic_root, finished, tmp_path, capfd):
    out = tmp_path / "eval_reference"
    argv = ["--eval-only", "--model-dir", str(finished)] + args_for(
        "CLIP_Adapter", synthetic_root, out, "TEST.OOD_PROTOCOL", "reference", "TEST.KNN_K", "3")
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == "reference"
    trained = json.loads((finished / "results.json").read_text())
    assert results["training_fingerprint"] == trained["training_fingerprint"]
    assert results["fingerprint"] != trained["fingerprint"]
    run_and_check(["--eval-only", "--model-dir", str(finished)] + args_for(
        "CLIP_Adapter", synthetic_root, tmp_path / "eval_shots", "DATASET.NUM_SHOTS", "4"), 1,
        ["--model-dir", "DATASET.NUM_SHOTS 2 -> 4"], capfd, finished)


def test_restart_moves_the_earlier_run_aside(synthetic_root, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = snapshot(out)
    assert main(["--restart"] + args_for("CLIP_Adapter", synthetic_root, out, "TRAINER.CLIP_Adapter.RATIO",
                                         "0.6")) == 0
    moved = list((out / ".old").iterdir())
    assert len(moved) == 1
    kept = snapshot(moved[0])
    for name in ("results.json", "scores.npz", "adapter/model-best.pth.tar", "config.yaml"):
        assert kept[name] == before[name]
    assert json.loads((out / "results.json").read_text())["hparams"]["ratio"] == 0.6


def test_rerunning_a_finished_run_trains_nothing_and_gives_the_same_numbers(synthetic_root, finished, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(finished, out)
    assert main(args_for("CLIP_Adapter", synthetic_root, out)) == 0
    log = sorted(out.glob("log.txt*"))[-1].read_text()
    assert "Training already complete (1/1 epochs)" in log and "epoch [1/1]" not in log
    a = json.loads((finished / "results.json").read_text())
    b = json.loads((out / "results.json").read_text())
    assert a["closed_set"] == b["closed_set"] and a["open_set"] == b["open_set"]


def test_num_shots_beyond_what_exists_warns_and_records_the_shots_used(synthetic_root, tmp_path, capfd):
    out = tmp_path / "many"
    assert main(args_for("CLIP_Adapter", synthetic_root, out, "DATASET.NUM_SHOTS", "1000")) == 0
    assert "DATASET.NUM_SHOTS 1000" in capfd.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["shots"] == 1000
    # synthetic PACS: 6 images per class and domain, 3 source domains, 80% train
    assert set(results["shots_used"].values()) < set(range(1, 1000))
    assert sum(results["shots_used"].values()) == len(json.loads(
        (Path(synthetic_root) / "PACS" / "test_on_sketch.json").read_text())["train"])


# ------------------------------------------------------------------ subprocess: exit code and stderr of a real process

@pytest.mark.parametrize("argv_extra, rc, needle", [
    (["FOO.BAR", "1"], 2, "FOO.BAR"),
    (["--seed", "7"], 1, "SEED 1 -> 7"),
])
def test_the_process_prints_one_line_and_no_traceback(argv_extra, rc, needle, synthetic_root, finished):
    argv = args_for("CLIP_Adapter", synthetic_root, finished)
    if argv_extra[0] == "--seed":
        argv[argv.index("--seed") + 1] = argv_extra[1]
    else:
        argv += argv_extra
    before = snapshot(finished)
    proc = subprocess.run([sys.executable, "-m", "croft.train", *argv], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == rc
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in proc.stderr
    assert snapshot(finished) == before


def run_tool(tool, *args):
    return subprocess.run([sys.executable, str(REPO / "tools" / tool), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE="1"))


def test_tools_end_with_one_line(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "scores.npz").write_bytes((finished / "scores.npz").read_bytes()[:50])
    cases = [
        (run_tool("plot_energy.py", run, "--output", tmp_path / "e.png"), "scores.npz"),
        (run_tool("plot_energy.py", tmp_path / "nothing", "--output", tmp_path / "e.png"), "nothing"),
        (run_tool("collect_results.py", tmp_path / "no_root"), "no_root"),
        (run_tool("prepare_splits.py", "--dataset-dir", tmp_path / "no_dataset"), "no_dataset"),
    ]
    for proc, needle in cases:
        assert proc.returncode != 0, proc.args
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) >= 1 and needle in " ".join(errors), proc.stderr[-1000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


# ------------------------------------------------------------------ kill -9 during epoch 2 of 3

KILLER = textwrap.dedent("""
    import os, signal, sys
    from croft.engine.trainer import TrainerBase
    original = TrainerBase.run_epoch
    def run_epoch(self):
        if self.epoch == 1:  # epoch 2 of 3: die after its first batch
            forward_backward = self.forward_backward
            def dying(batch):
                out = forward_backward(batch)
                os.kill(os.getpid(), signal.SIGKILL)
                return out
            self.forward_backward = dying
        return original(self)
    TrainerBase.run_epoch = run_epoch
    from croft.train import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_9_during_epoch_2_then_rerun_gives_the_uninterrupted_results(synthetic_root, tmp_path):
    extra = ["OPTIM.MAX_EPOCH", "3", "DATASET.NUM_SHOTS", "4"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # DPLCLIP: dropout draws from the global RNG, so the restored RNG state matters
    proc = subprocess.run([sys.executable, "-c", KILLER, *args_for("DPLCLIP", synthetic_root, killed, *extra)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (killed / "results.json").exists() and (killed / "last.pth.tar").exists()
    assert main(args_for("DPLCLIP", synthetic_root, killed, *extra)) == 0
    log = sorted(killed.glob("log.txt*"))[-1].read_text()
    assert 'last.pth.tar" (epoch = 1)' in log and "Resuming training at epoch 2/3" in log
    assert main(args_for("DPLCLIP", synthetic_root, whole, *extra)) == 0
    a = json.loads((whole / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert a["closed_set"] == b["closed_set"] and a["open_set"] == b["open_set"] and a["best_epoch"] == b["best_epoch"]
    with np.load(whole / "scores.npz") as sa, np.load(killed / "scores.npz") as sb:
        assert sa.files == sb.files
        for key in sa.files:
            assert np.array_equal(sa[key], sb[key]), key
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]


# ------------------------------------------------------------------ one run per folder; stale temporary files

def test_croft_train_into_a_folder_another_run_holds(synthetic_root, finished, tmp_path):
    from croft.engine.run_folder import claim_run_folder

    out = tmp_path / "held"
    shutil.copytree(finished, out)
    with claim_run_folder(str(out)):  # this process stands for a sweep executing the run
        before = snapshot(out)
        proc = subprocess.run([sys.executable, "-m", "croft.train", *args_for("CLIP_Adapter", synthetic_root, out)],
                              capture_output=True, text=True, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        assert snapshot(out) == before
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{out} is in use by another croft run (pid {os.getpid()} on host" in errors[0]
    assert not (out / ".run.lock").exists()  # let go
    assert main(args_for("CLIP_Adapter", synthetic_root, out)) == 0  # free again


def test_a_rerun_removes_only_stale_temporary_files(synthetic_root, finished, tmp_path):
    import time

    from croft.utils.atomic import host_id

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process of this machine that is gone
    me, other, now = host_id(), host_id("another-machine"), time.time()
    files = {  # name: (seconds since written, removed?)
        f".last.pth.tar.{me}-{dead.pid}.0123abcd.tmp": (2, True),  # killed here mid-write
        f"adapter/.model-best.pth.tar.{me}-{dead.pid}.0123abce.tmp": (2, True),  # in a model folder
        f".results.json.{other}-{dead.pid}.0123abcf.tmp": (2, False),  # another machine, maybe still writing
        f".scores.npz.{other}-{dead.pid}.0123abd0.tmp": (3600, True),  # another machine, long untouched
        f".config.yaml.{me}-{os.getpid()}.0123abd1.tmp": (2, False),  # a live writer here
        f".metrics.jsonl.{dead.pid}.0123abd2.tmp": (2, False),  # older croft: no host in the name
        f".metrics.jsonl.{dead.pid}.0123abd3.tmp": (3600, True),
        f"eval_ood-0123abcd/.results.json.{me}-{dead.pid}.0123abd4.tmp": (3600, False),  # a stage's own folder
        "notes.tmp": (3600, False),  # not croft's
    }
    (out / "eval_ood-0123abcd").mkdir()
    (out / "eval_ood-0123abcd" / "stage.json").write_text("{}")
    for name, (age, _) in files.items():
        (out / name).write_bytes(b"partial")
        os.utime(out / name, (now - age, now - age))
    assert main(args_for("CLIP_Adapter", synthetic_root, out)) == 0
    for name, (_, removed) in files.items():
        assert (out / name).exists() != removed, name
