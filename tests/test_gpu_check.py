"""scripts/gpu_check.sh on a CPU (dry run, bad arguments, a tiny CPU run), and the CUDA-marked tests it runs.

The tests marked ``cuda`` run only where CUDA is available (``pytest -m cuda``, scripts/gpu_check.sh):
the same tiny CRoFT run on the CPU and on the GPU, a CPU checkpoint evaluated on the GPU, and fp16
image features kept apart from fp32 ones in the feature cache.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from croft.results.io import load_scores
from croft.train import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "gpu_check.sh")
no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def gpu_check(*args, cwd=None):
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, PYTHON=sys.executable))


def test_dry_run_prints_the_two_steps_and_runs_nothing(tmp_path):
    proc = gpu_check("--dry-run", "--output", "out.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    tests = next(line for line in lines if line.startswith("1. "))
    bench = next(line for line in lines if line.startswith("2. "))
    assert "-m pytest -q -m cuda --junitxml" in tests and tests.endswith(os.path.join(REPO, "tests"))
    for part in ("tools/benchmark.py", "--backbone ViT-B/16", "--pretrained none", "--device cuda",
                 "--only throughput,runner,precision", f"--output {tmp_path / 'out.json'}"):
        assert part in bench
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "error: --device tpu: expected cuda or cpu"),
    (["--output"], "error: --output needs a value"),
    (["--frobnicate"], "error: unknown argument '--frobnicate'"),
    (["--output", "/nonexistent/dir/x.json"], "error: --output /nonexistent/dir/x.json: folder /nonexistent/dir"),
])
def test_bad_arguments_are_one_error_line(args, message):
    proc = gpu_check(*args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_no_cuda_is_one_error_line(tmp_path):
    proc = gpu_check("--output", str(tmp_path / "x.json"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --device cuda: torch.cuda.is_available() is False")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "x.json").exists()


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """The whole script on the CPU with the tiny backbone and tiny sizes, CUDA tests from this file."""
    work = tmp_path_factory.mktemp("gpu_check")
    proc = gpu_check("--device", "cpu", "--backbone", "tiny", "--quick", "--tests", __file__,
                     "--work-dir", str(work / "work"), "--output", str(work / "report.json"))
    return proc, work


def test_cpu_run_writes_one_json_with_every_section(cpu_run):
    proc, work = cpu_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((work / "report.json").read_text())
    # this file's CUDA tests were selected by the marker, and skipped on a CPU
    tests = report["tests"]
    cuda_tests = {"test_cuda_run_matches_the_cpu_run", "test_cpu_checkpoint_evaluates_on_cuda",
                  "test_fp16_features_are_cached_apart_from_fp32"}
    assert tests["exit_code"] == 0 and tests["failed"] == 0
    assert {name.split("::")[1] for name in tests["skipped_tests"]} == cuda_tests
    assert tests["tests"] == tests["skipped"] == len(cuda_tests)
    assert report["machine"]["device"] == "cpu" and report["config"]["backbone"] == "tiny"
    t = report["throughput"]
    assert t["model_only_img_s"] > 0 and t["end_to_end_img_s"] > 0
    assert report["runner"]["metrics_identical"] is True
    p = report["precision"]
    assert p["effective"] == ["fp32", "fp32"]  # no autocast on a CPU: both sides are the same computation
    assert p["logits"]["max_abs_diff"] == 0 and p["logits"]["top1_agreement_pct"] == 100
    assert p["energy_auroc"]["abs_diff"] == 0 and 0 <= p["energy_auroc"]["fp32"] <= 100
    assert "wrote " + str(work / "report.json") in proc.stdout


def test_cpu_run_keeps_its_work_dir(cpu_run):
    proc, work = cpu_run
    assert (work / "work" / "cuda_tests.xml").is_file()
    assert (work / "work" / "benchmark" / "data" / "PACS").is_dir()


# ---------------------------------------------------------------- CUDA-marked (pytest -m cuda)

def _run(root, out, *extra):
    argv = ["--root", root, "--seed", "1", "--trainer", "CRoFT",
            "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "PACS.yaml"),
            "--config-file", os.path.join(REPO, "configs", "trainers", "CRoFT", "rn50_ep30.yaml"),
            "--backbone", "tiny", "--output-dir", str(out), *extra,
            "MODEL.BACKBONE.PRETRAINED", "none", "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2",
            "DATASET.OOD_SETS", "['DTD']", "OPTIM.MAX_EPOCH", "1", "DATALOADER.NUM_WORKERS", "0", "TEST.PLOT", "False"]
    assert main(argv) == 0
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f), load_scores(str(out))


def _assert_close_runs(a, b, energy_rtol, images=2, auroc=1.0):
    """Energies within ``energy_rtol`` (relative to the largest), test accuracy within ``images`` images,
    energy AUROC within ``auroc`` points. The tiny random CLIP has nearly tied logits, so round-off
    may flip a prediction or two: the energies are the sharp comparison."""
    (ra, sa), (rb, sb) = a, b
    assert sorted(sa) == sorted(sb)
    n = len(sa["energy/id"])
    assert abs(ra["closed_set"]["test_accuracy"] - rb["closed_set"]["test_accuracy"]) <= 100.0 * images / n + 1e-9
    assert abs(ra["open_set"]["DTD"]["energy"]["auroc"] - rb["open_set"]["DTD"]["energy"]["auroc"]) <= auroc
    for key in ("energy/id", "energy/ood/DTD", "energy/val"):
        x, y = sa[key].astype(np.float64), sb[key].astype(np.float64)
        assert np.all(np.isfinite(y))
        assert np.max(np.abs(x - y)) <= energy_rtol * max(1.0, np.max(np.abs(x))), key


@pytest.fixture(scope="module")
def cpu_reference(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda_check") / "cpu"
    return out, _run(synthetic_root, out, "USE_CUDA", "False", "CACHE.ENABLED", "False")


@pytest.mark.cuda
@no_cuda
def test_cuda_run_matches_the_cpu_run(synthetic_root, cpu_reference, tmp_path):
    cpu_dir, cpu = cpu_reference
    # fp32 on the GPU: float round-off (and TF32 convolutions) only
    gpu = _run(synthetic_root, tmp_path / "gpu", "USE_CUDA", "True", "MODEL.AUTOCAST", "fp32", "CACHE.ENABLED", "False")
    assert gpu[0]["fingerprint"] == cpu[0]["fingerprint"] and gpu[0]["best_epoch"] == cpu[0]["best_epoch"]
    _assert_close_runs(cpu, gpu, energy_rtol=1e-2)


@pytest.mark.cuda
@no_cuda
def test_cpu_checkpoint_evaluates_on_cuda(synthetic_root, cpu_reference, tmp_path):
    cpu_dir, cpu = cpu_reference
    gpu = _run(synthetic_root, tmp_path / "eval", "--eval-only", "--model-dir", str(cpu_dir),
               "USE_CUDA", "True", "MODEL.AUTOCAST", "fp32", "CACHE.ENABLED", "False")
    _assert_close_runs(cpu, gpu, energy_rtol=1e-2)


@pytest.mark.cuda
@no_cuda
def test_fp16_features_are_cached_apart_from_fp32(synthetic_root, cpu_reference, tmp_path):
    cpu_dir, cpu = cpu_reference
    cache = ["CACHE.ENABLED", "True", "CACHE.DIR", str(tmp_path / "cache"), "USE_CUDA", "True"]
    fp32 = _run(synthetic_root, tmp_path / "fp32", *cache, "MODEL.AUTOCAST", "fp32")
    fp16 = _run(synthetic_root, tmp_path / "fp16", *cache, "MODEL.AUTOCAST", "fp16")
    again = _run(synthetic_root, tmp_path / "fp32_again", *cache, "MODEL.AUTOCAST", "fp32")
    misses = fp32[0]["timing"]["feature_cache_misses"]
    # fp16 reads none of the fp32 entries: it encodes the same views anew under its own key
    assert misses > 0 and fp16[0]["timing"]["feature_cache_misses"] == misses
    assert again[0]["timing"]["feature_cache_misses"] == 0
    _assert_close_runs(fp32, again, energy_rtol=1e-5, images=0, auroc=1e-6)
    # fp16 autocast of the encoder stays close to fp32 (the adapters train in fp32)
    _assert_close_runs(fp32, fp16, energy_rtol=5e-2, images=len(fp32[1]["energy/id"]), auroc=5.0)
