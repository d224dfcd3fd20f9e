"""croft-sweep (croft/sweep, docs/sweeps.md): grids, run identity, states, launchers, stages, precompute.

A reduced grid (CRoFT, synthetic PACS, the tiny backbone with random weights, 1 shot, 1 epoch, one
held-out domain, two trainer configs, an ``eval_ood`` stage: 2 training runs + 2 evaluation runs)
runs end to end through ``local`` (this process), ``local --workers 2`` and ``submitit``
(submitit's LocalExecutor: real jobs as local processes) with bit-identical ``scores.npz``; the
in-process runner matches ``python -m croft.train`` subprocess runs of other trainers, including a
run after a failed run in the same process.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from croft.results.collect import collect, format_table
from croft.results.io import load_scores, read_results_json
from croft.sweep import cli
from croft.sweep.grid import GridError, load_grid
from croft.sweep.identity import plan
from croft.sweep.state import run_state

REPO = Path(__file__).resolve().parents[1]
FAST = {"DATALOADER.NUM_WORKERS": 0, "TEST.PLOT": False, "OPTIM.MAX_EPOCH": 1, "DATALOADER.TRAIN_X.BATCH_SIZE": 8,
        "DATALOADER.TEST.BATCH_SIZE": 64, "DATASET.NUM_SHOTS": 1, "DATASET.OOD_SETS": ["DTD"]}
MINI = {"trainer": "CRoFT", "dataset_config": "PACS", "trainer_configs": ["rn50_ep30", "rn50_ep30_pacs"],
        "domains": ["sketch"], "fixed": FAST, "axes": {"seed": [1]},
        "stages": [{"name": "eval_ood", "overrides": {"TRAINER.CRoFT.EVAL_RATIO": 0.5,
                                                      "TRAINER.CRoFT.EVAL_RATIO_TEXT": 0.0}}]}


@pytest.fixture(scope="module", autouse=True)
def no_sharing_afterwards():
    yield
    from croft.engine import shared

    shared.disable_sharing()


def write_grid(path, tree):
    path = Path(path)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return str(path)


def sweep(*args):
    return cli.main([str(a) for a in args])


def common(root, out):
    return ["--root", root, "--output", out, "--backbone", "tiny", "--pretrained", "none"]


def results_of(out):
    """{run folder relative to out: results dict} of every results.json under ``out`` (dot-folders skipped)."""
    found = {}
    for folder, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if "results.json" in files:
            found[os.path.relpath(folder, out)] = read_results_json(folder)
    return found


def assert_same_runs(a, b):
    """Same run folders, same metrics and bit-identical scores.npz."""
    ra, rb = results_of(a), results_of(b)
    assert sorted(ra) == sorted(rb)
    for key in ra:
        for section in ("closed_set", "open_set", "best_epoch", "fingerprint"):
            assert ra[key][section] == rb[key][section], (key, section)
        sa, sb = load_scores(os.path.join(a, key)), load_scores(os.path.join(b, key))
        assert sorted(sa) == sorted(sb)
        for name in sa:
            assert np.array_equal(sa[name], sb[name]), (key, name)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return write_grid(tmp_path_factory.mktemp("grids") / "mini.yaml", MINI)


@pytest.fixture(scope="module")
def local_out(mini, synthetic_root, tmp_path_factory):
    """The reduced grid run once through the local launcher in this process."""
    out = str(tmp_path_factory.mktemp("sweep_local"))
    assert sweep("run", mini, *common(synthetic_root, out), "--no-table") == 0
    return out


# ---------------------------------------------------------------------------------------------
# grids and identity (no runs)

def test_paper_grids_expand_to_the_reference_grids():
    counts = {}
    for path in sorted((REPO / "configs" / "sweeps").glob("*.yaml")):
        p = plan([load_grid(str(path))], "/tmp/out")
        counts[path.stem] = (sum(r.stage == "train" for r in p.runs), len(p.runs))
        assert len({r.key for r in p.runs}) == len(p.runs)
        assert len({r.fingerprint for r in p.runs}) == len(p.runs)
    assert counts["croft_setup1"] == (225, 225)
    assert counts["croft_setup2_pacs"] == (120, 240)  # + the eval_ood stage of each run
    assert counts["croft_setup2_vlcs"] == (1080, 2160)
    for method in ("coop", "cocoop", "clip_adapter", "tip_adapter", "dplclip", "zsclip"):
        assert counts[f"{method}_setup1"] == (9, 9)
        assert counts[f"{method}_setup2_pacs"] == counts[f"{method}_setup2_vlcs"] == (24, 24)


def test_run_folder_is_readable_path_plus_fingerprint_hash():
    from croft.config import setup_cfg
    from croft.engine.fingerprint import make_fingerprint
    from croft.train import build_parser

    p = plan([load_grid("croft_setup2_vlcs")], "/out", root="/data",
             filters=["seed=2", "lambda2=10", "lambda1=5", "domain=sun"])
    train = [r for r in p.runs if r.stage == "train"]
    assert len(train) == 2 * 3  # 2 configs x 3 (ratio, ratio_text) pairs
    run = train[0]
    assert run.key.startswith("CRoFT/VLCS/rn50_ep30_vlcs/lambda2_10/lambda1_5/ratio_0.2_ratio_text_0.5/"
                              "test_on_sun/seed2-")
    # the hash is that of croft-train's own fingerprint of the run's command line
    for r in p.runs[:4]:
        cfg = setup_cfg(build_parser().parse_args(r.argv()))
        assert make_fingerprint(cfg)["hash"] == r.fingerprint
        assert r.key.endswith(r.fingerprint[:8])
    stage = [r for r in p.runs if r.parent_key == run.key][0]
    assert stage.key.startswith(run.key + "/eval_ood-") and "--eval-only" in stage.argv()


def test_any_setting_change_gives_new_folders_and_only_for_affected_runs():
    grid = load_grid("coop_setup2_pacs")
    base = plan([grid], "/out")
    keys = {r.key for r in base.runs}
    # a setting that changes numbers: every folder changes
    lr = plan([grid], "/out", sets=[("OPTIM.LR", "0.003")])
    assert not keys & {r.key for r in lr.runs} and len(lr.runs) == len(base.runs)
    # settings that do not change numbers (or belong to another trainer): same folders
    same = plan([grid], "/out", sets=[("DATALOADER.NUM_WORKERS", "3"), ("TRAINER.CRoFT.lambda1", "7.0")])
    assert {r.key for r in same.runs} == keys
    # the dataset folder is part of the fingerprint (augmented views are seeded by absolute image paths)
    assert not keys & {r.key for r in plan([grid], "/out", root="/elsewhere").runs}
    # a value the trainer configs already have: nothing changes
    ctx = plan([grid], "/out", sets=[("OPTIM.MAX_EPOCH", "30")])
    assert {r.key for r in ctx.runs} == keys
    # --set on an axis key collapses the axis
    one_seed = plan([grid], "/out", sets=[("seed", "2")])
    assert {r.axes["seed"] for r in one_seed.runs} == {2} and len(one_seed.runs) == 8


def test_filters_domains_and_errors(tmp_path):
    p = plan([load_grid("croft_setup2_pacs")], "/out", filters=["seed=1", "TEST_ENV=test_on_sketch.json"])
    assert {r.axes["domain"] for r in p.runs} == {"sketch"} and {r.axes["seed"] for r in p.runs} == {1}
    assert len(p.runs) == 2 * 5 * 2
    two_seeds = plan([load_grid("croft_setup2_pacs")], "/out", filters=["seed=1,2", "stage=train"])
    assert len(two_seeds.runs) == 2 * 5 * 4 * 2
    domains = {r.axes["domain"] for r in plan([load_grid("coop_setup2_vlcs")], "/out").runs}
    assert domains == {"caltech", "labelme", "pascal", "sun"}  # from the dataset, not from a list
    with pytest.raises(GridError, match="no axis or key"):
        plan([load_grid("coop_setup1")], "/out", filters=["lamda2=1"])
    bad = dict(MINI, stages=[{"name": "eval", "overrides": {"OPTIM.LR": 0.1}}])
    with pytest.raises(GridError, match="stage eval overrides settings of training"):
        plan([load_grid(write_grid(tmp_path / "bad.yaml", bad))], "/out")
    with pytest.raises(GridError, match="unknown key"):
        load_grid(write_grid(tmp_path / "typo.yaml", dict(MINI, axis={"seed": [1]})))
    assert sweep("status", write_grid(tmp_path / "k.yaml", MINI), "--set", "OPTIM.NOPE", "1") == 2


# ---------------------------------------------------------------------------------------------
# running

def test_local_run_end_to_end_then_everything_is_skipped(mini, local_out, synthetic_root, capsys):
    runs = results_of(local_out)
    assert len(runs) == 4
    stages = [k for k in runs if os.path.basename(k).startswith("eval_ood-")]
    assert len(stages) == 2
    for key in stages:
        stage = json.loads(Path(local_out, key, "stage.json").read_text())
        assert stage["stage"] == "eval_ood" and stage["stage_of"] == ".."
        assert runs[key]["hparams"]["eval_ratio"] == 0.5
    mtimes = {k: os.path.getmtime(os.path.join(local_out, k, "results.json")) for k in runs}
    capsys.readouterr()
    assert sweep("run", mini, *common(synthetic_root, local_out)) == 0
    out = capsys.readouterr().out
    assert "4 done" in out and "nothing to run" in out
    assert {k: os.path.getmtime(os.path.join(local_out, k, "results.json")) for k in runs} == mtimes
    assert sweep("status", mini, *common(synthetic_root, local_out)) == 0
    status = capsys.readouterr().out
    assert "stage train" in status and "stage eval_ood" in status and "config=rn50_ep30_pacs" in status


def test_stages_combine_in_the_table(local_out, capsys):
    rows = collect(local_out)
    assert len(rows) == 2  # one row per training setting; stage results are folded in
    runs = results_of(local_out)
    for row in rows:
        (train_path,) = row["run_paths"]
        train_key = os.path.relpath(os.path.dirname(train_path), local_out)
        (stage_key,) = [k for k in runs if k.startswith(train_key + "/eval_ood-")]
        assert row["per_domain"]["sketch"]["mean"] == runs[train_key]["closed_set"]["test_accuracy"]
        stage_open = runs[stage_key]["open_set"]["DTD"]["energy"]["auroc"]
        assert row["open_set"]["DTD"]["energy"]["auroc"]["mean"] == stage_open
        assert row["stages"] == [("open_set", "eval_ood",
                                  "TRAINER.CRoFT.EVAL_RATIO 0.5, TRAINER.CRoFT.EVAL_RATIO_TEXT 0")]
    text = " ".join(format_table(rows).split())
    assert "come from stage eval_ood" in text and "closed-set accuracy comes from the training runs" in text


def test_stage_without_results_leaves_the_open_set_out(local_out, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(local_out, out)
    stage_dir = next(Path(out).rglob("eval_ood-*"))
    (stage_dir / "results.json").unlink()
    rows = collect(out)
    assert len(rows) == 2
    assert sum(1 for r in rows if r["open_set"]) == 1
    assert any("stage eval_ood have no results yet" in w for w in rows.warnings)


def test_set_reruns_exactly_the_affected_runs(mini, local_out, synthetic_root, tmp_path, capsys):
    out = str(tmp_path / "copy")
    shutil.copytree(local_out, out)
    before = set(results_of(out))
    capsys.readouterr()
    # rn50_ep30_pacs already has gen_step 0: only the rn50_ep30 run (and its stage) change
    assert sweep("run", mini, *common(synthetic_root, out), "--set", "TRAINER.CRoFT.gen_step", "0", "--no-table") == 0
    printed = capsys.readouterr().out
    new = set(results_of(out)) - before
    assert len(new) == 2 and all(k.startswith("CRoFT/PACS/rn50_ep30/") for k in new)
    assert "2 done" in printed and "2 pending" in printed


def test_empty_or_foreign_results_json_is_not_done(mini, local_out, synthetic_root, tmp_path, capsys):
    out = str(tmp_path / "copy")
    shutil.copytree(local_out, out)
    p = plan([load_grid(mini)], out, root=synthetic_root, backbone="tiny", pretrained="none")
    a, b = [r for r in p.runs if r.stage == "train"]
    stage_of_a = next(r for r in p.runs if r.parent_key == a.key)
    Path(a.out_dir, "results.json").write_text("")  # 0 bytes
    shutil.copy(os.path.join(stage_of_a.out_dir, "results.json"), os.path.join(b.out_dir, "results.json"))  # foreign
    assert run_state(a)[0] == "incomplete" and run_state(b)[0] == "incomplete"
    capsys.readouterr()
    assert sweep("run", mini, *common(synthetic_root, out), "--no-table") == 0
    assert "2 done" in capsys.readouterr().out
    assert run_state(a)[0] == run_state(b)[0] == "done"
    assert list(Path(a.out_dir, ".old").iterdir())  # the bad files were moved aside, not deleted
    assert_same_runs(local_out, out)


def test_workers_and_submitit_give_the_same_results(mini, local_out, synthetic_root, tmp_path, capsys):
    pytest.importorskip("submitit")
    workers = str(tmp_path / "workers")
    assert sweep("run", mini, *common(synthetic_root, workers), "--workers", "2", "--no-table") == 0
    assert_same_runs(local_out, workers)
    jobs = str(tmp_path / "submitit")
    args = ["run", mini, *common(synthetic_root, jobs), "--launcher", "submitit", "--submitit-local",
            "--runs-per-job", "2", "--no-table"]
    capsys.readouterr()
    assert sweep(*args) == 0
    assert "submitted 2 job(s)" in capsys.readouterr().out
    assert_same_runs(local_out, jobs)
    assert sweep(*args) == 0  # rerunning submits only what is not done: nothing
    out = capsys.readouterr().out
    assert "nothing to run" in out and "submitted" not in out


def test_local_workers_own_one_gpu_each():
    from croft.sweep.launchers import LocalLauncher

    launcher = LocalLauncher(workers=None, gpus="3,5")
    assert launcher.workers == 2
    results = []
    launcher.run("croft.sweep.launchers:probe", [{"unit": i, "sleep": 1} for i in range(4)], results.append)
    assert sorted(r["payload"]["unit"] for r in results) == [0, 1, 2, 3]
    gpu_of = {}
    for r in results:
        assert gpu_of.setdefault(r["pid"], r["cuda_visible_devices"]) == r["cuda_visible_devices"]
    assert os.getpid() not in gpu_of  # worker processes, not this one
    assert len(set(gpu_of.values())) == len(gpu_of) and set(gpu_of.values()) <= {"3", "5"}  # one GPU each
    assert not any(r["torch_imported"] for r in results)  # the GPU was set before torch could be imported


def test_submitit_slurm_parameters_from_grid_and_command_line(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")  # submitit then sees a SLURM cluster
    grid = write_grid(tmp_path / "g.yaml", dict(MINI, slurm={"partition": "gpu", "mem_gb": 32, "runs_per_job": 8,
                                                              "array_parallelism": 16}))
    args = cli.build_parser().parse_args(["run", grid, "--launcher", "submitit", "--partition", "big",
                                          "--time-min", "90", "--gpus-per-job", "2"])
    launcher = cli.make_launcher(args, [load_grid(grid)], str(tmp_path / "out"))
    assert launcher.runs_per_job == 8
    params = launcher.executor()._executor.parameters
    assert params["partition"] == "big" and params["time"] == 90 and params["gpus_per_node"] == 2
    assert params["mem"] == "32GB" and params["array_parallelism"] == 16
    assert launcher.pack([[1, 2, 3], [4, 5, 6], [7, 8, 9]], len) == [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9]]]


def test_in_process_equals_subprocess_and_survives_a_failed_run(synthetic_root, tmp_path, capsys):
    grids = tmp_path / "grids"
    grids.mkdir()
    base = {"dataset_config": "PACS", "domains": ["sketch"], "fixed": FAST, "axes": {"seed": [2]}}
    failing = write_grid(grids / "fail.yaml", dict(base, trainer="CLIP_Adapter", trainer_configs=["rn50_ep30"],
                                                   fixed=dict(FAST, **{"OPTIM.LR": 1e38, "OPTIM.WARMUP_EPOCH": 0,
                                                                       "DATALOADER.TRAIN_X.BATCH_SIZE": 4})))
    coop = write_grid(grids / "coop.yaml", dict(base, trainer="CoOp", trainer_configs=["rn50_ep30"]))
    zs = write_grid(grids / "zs.yaml", dict(base, trainer="ZeroshotCLIP", trainer_configs=["rn50"]))
    out = str(tmp_path / "inprocess")
    capsys.readouterr()
    assert sweep("run", failing, coop, zs, *common(synthetic_root, out), "--no-table") == 1
    printed = capsys.readouterr().out
    assert "1 failed" in printed and "2 done" in printed
    p = plan([load_grid(g) for g in (failing, coop, zs)], out, root=synthetic_root, backbone="tiny", pretrained="none")
    failed, coop_run, zs_run = p.runs
    error = Path(failed.out_dir, "error.txt").read_text().strip()
    assert error.startswith("error: ") and "non-finite" in error and "\n" not in error
    assert "Traceback" in Path(failed.out_dir, "log.txt").read_text()
    assert run_state(failed)[0] == "failed"

    # the same runs as python -m croft.train subprocesses (in parallel)
    procs, dirs = [], []
    for spec in (coop_run, zs_run):
        sub_dir = str(tmp_path / "subprocess" / spec.trainer)
        argv = spec.argv()
        argv[argv.index("--output-dir") + 1] = sub_dir
        procs.append(subprocess.Popen([sys.executable, "-m", "croft.train", *argv], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True, cwd=str(REPO)))
        dirs.append((spec.out_dir, sub_dir))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    for in_dir, sub_dir in dirs:
        a, b = read_results_json(in_dir), read_results_json(sub_dir)
        for section in ("closed_set", "open_set", "best_epoch", "best_val_accuracy", "fingerprint"):
            assert a[section] == b[section], section
        sa, sb = load_scores(in_dir), load_scores(sub_dir)
        assert sorted(sa) == sorted(sb) and all(np.array_equal(sa[k], sb[k]) for k in sa)

    # a failed run is skipped with a note (the exit status still says that the sweep has a failed run)
    capsys.readouterr()
    assert sweep("run", failing, *common(synthetic_root, out), "--no-table") == 1
    printed = capsys.readouterr().out
    assert "failed run(s) skipped" in printed and "nothing to run" in printed
    assert sweep("status", failing, coop, *common(synthetic_root, out)) == 0
    status = capsys.readouterr().out
    assert "failed" in status and "non-finite" in status


def test_precompute_makes_the_runs_pure_cache_hits(mini, synthetic_root, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CROFT_CACHE_DIR", str(cache))
    out = str(tmp_path / "out")
    assert sweep("precompute", mini, *common(synthetic_root, out)) == 0
    assert "1 data setting(s) to precompute for 2 run(s)" in capsys.readouterr().out
    assert any(cache.rglob("*.safetensors"))
    assert sweep("run", mini, *common(synthetic_root, out), "--no-table") == 0
    runs = results_of(out)
    assert len(runs) == 4
    assert all(r["timing"]["feature_cache_misses"] == 0 for r in runs.values())


# ---------------------------------------------------------------------------------------------
# one run per folder; damaged marker files; runs with other settings (issue 18)

def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "croft.sweep", *map(str, args)], capture_output=True, text=True,
                          cwd=str(REPO), **kw)


# Both sweeps slow their first run down: A waits inside its first run (holding its folder) until B has
# started one of its own, so the two certainly overlap.
RACER = """
import os, sys, time
import croft.train as train
role, flags = sys.argv[1], sys.argv[2]
original = train.run
def run(cfg, args):
    mine = os.path.join(flags, role)
    if not os.path.exists(mine):
        open(mine, "w").close()
        if role == "A":
            deadline = time.time() + 300
            while not os.path.exists(os.path.join(flags, "B")) and time.time() < deadline:
                time.sleep(0.1)
    return original(cfg, args)
train.run = run
from croft.sweep.cli import main
sys.exit(main(sys.argv[3:]))
"""


def test_two_sweeps_on_one_grid_run_each_run_once(mini, synthetic_root, tmp_path):
    out, flags = tmp_path / "out", tmp_path / "flags"
    flags.mkdir()
    argv = ["run", mini, *common(synthetic_root, out), "--no-table"]

    def start(role):
        return subprocess.Popen([sys.executable, "-c", RACER, role, str(flags), *argv], cwd=str(REPO),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    a = start("A")
    deadline = time.time() + 300
    while not (flags / "A").exists() and a.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    b = start("B")  # A now holds its first run
    out_a, err_a = a.communicate(timeout=600)
    out_b, err_b = b.communicate(timeout=600)
    assert a.returncode == 0 and b.returncode == 0, (err_a[-2000:], err_b[-2000:])
    assert (flags / "B").exists()  # B executed a run while A held its first one
    assert "1 run(s) running in another process (e.g. pid" in out_b
    p = plan([load_grid(mini)], str(out), root=synthetic_root, backbone="tiny", pretrained="none")
    assert len(p.runs) == 4
    for spec in p.runs:
        assert run_state(spec)[0] == "done"
        logs = [f for f in os.listdir(spec.out_dir) if f.startswith("log.txt")]
        assert len(logs) == 1, (spec.key, logs)  # one execution
        assert not os.path.exists(os.path.join(spec.out_dir, ".run.lock"))  # let go when the run ended
        if spec.stage == "train":
            epochs = [json.loads(line)["epoch"] for line in Path(spec.out_dir, "metrics.jsonl").read_text().splitlines()]
            assert epochs == [1]


def test_damaged_markers_and_running_runs_in_status_then_retry(mini, local_out, synthetic_root, tmp_path, capsys):
    from croft.engine.run_folder import claim_run_folder

    out = str(tmp_path / "copy")
    shutil.copytree(local_out, out)
    p = plan([load_grid(mini)], out, root=synthetic_root, backbone="tiny", pretrained="none")
    a, b = [r for r in p.runs if r.stage == "train"]
    stage_b = next(r for r in p.runs if r.parent_key == b.key)
    Path(a.out_dir, "submitted.json").write_text("[1, 2]\n")  # JSON, but not the object croft-sweep writes
    Path(b.out_dir, "results.json").unlink()
    Path(b.out_dir, "error.txt").write_bytes(b"error: bad \xff\xfe bytes\n")
    Path(stage_b.out_dir, "results.json").unlink()
    with claim_run_folder(stage_b.out_dir):  # another process (this one) is executing the stage
        proc = run_cli("status", mini, *common(synthetic_root, out), "--verbose")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert os.path.join(a.out_dir, "submitted.json") in warnings[0] and "expected a JSON object" in warnings[0]
    assert f"failed: {b.key}: error: bad \ufffd\ufffd bytes" in proc.stdout
    assert f"running: {stage_b.key}: pid {os.getpid()} on host" in proc.stdout
    capsys.readouterr()
    assert sweep("run", mini, *common(synthetic_root, out), "--retry-failed", "--no-table") == 0
    assert "2 done" in capsys.readouterr().out
    assert_same_runs(local_out, out)


def test_status_and_list_report_the_runs_with_other_settings(mini, local_out, synthetic_root, capsys):
    # local_out was run with --backbone tiny --pretrained none: the default settings' folders are all pending
    capsys.readouterr()
    assert sweep("status", mini, "--root", synthetic_root, "--output", local_out) == 0
    text = capsys.readouterr().out
    assert "plus 4 done run(s) of these grid(s) with other settings: --backbone tiny --pretrained none" in text
    assert sweep("list", mini, "--root", synthetic_root, "--output", local_out, "--set", "OPTIM.MAX_EPOCH", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "plus 4 done run(s) of these grid(s) with other settings: --backbone tiny --pretrained none" in lines
    listed = [line.split()[1] for line in lines if line.startswith("  done ")]
    assert sorted(listed) == sorted(results_of(local_out))
    # with the settings of the run: nothing else to report
    assert sweep("status", mini, *common(synthetic_root, local_out)) == 0
    assert "other settings" not in capsys.readouterr().out


def test_duplicate_note_counts_the_selected_runs_only():
    # --backbone tiny makes CoOp's RN50 and ViT-B/16 configs equal: 12 of the 24 PACS runs are left out
    grids = [load_grid("coop_setup2_pacs"), load_grid("coop_setup2_vlcs")]
    assert plan(grids[:1], "/out", backbone="tiny").notes[0].startswith("12 selected run(s) have the same settings")
    assert plan(grids[:1], "/out", backbone="tiny", filters=["seed=1"]).notes[0].startswith("4 selected run(s)")
    # the VLCS grid's 12 left-out runs are not in the selection (no domain sketch there)
    (note,) = plan(grids, "/out", backbone="tiny", filters=["domain=sketch"]).notes
    assert note.startswith("3 selected run(s)") and "CoOp/PACS/ViT_ep30/test_on_sketch/seed1-" in note
    # a selection that holds only such runs says so, instead of "selects no run"
    with pytest.raises(GridError, match="selects no run.*1 selected run.*is the same run as CoOp/PACS/rn50_ep30"):
        plan(grids[:1], "/out", backbone="tiny", filters=["config=ViT_ep30", "seed=1", "domain=sketch"])


def test_precompute_says_why_there_is_nothing_to_do(mini, local_out, synthetic_root, capsys):
    capsys.readouterr()
    assert sweep("precompute", mini, *common(synthetic_root, local_out)) == 0
    assert "0 data setting(s) to precompute: all 2 training run(s) of the selection are done (--all" in \
        capsys.readouterr().out
    assert sweep("precompute", mini, *common(synthetic_root, local_out), "--only", "stage=eval_ood") == 0
    assert "evaluation stages only" in capsys.readouterr().out
