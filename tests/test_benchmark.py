"""Smoke test of tools/benchmark.py with tiny sizes (the real figures are in docs/benchmark.md)."""
import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_benchmark():
    spec = importlib.util.spec_from_file_location("croft_benchmark", os.path.join(REPO, "tools", "benchmark.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_throughput_and_sweep(tmp_path, capsys):
    benchmark = load_benchmark()
    out = tmp_path / "bench.json"
    rc = benchmark.main(["--output", str(out), "--work-dir", str(tmp_path / "work"), "--domains", "sketch",
                         "--lambda2", "5", "--epochs", "1", "--images-per-class", "3", "--ood-per-class", "4",
                         "--batch-size", "4", "--batches", "1", "--workers", "0"])
    assert rc == 0
    report = json.loads(out.read_text())
    t = report["throughput"]
    assert t["model_only_img_s"] > 0 and t["end_to_end_img_s"] > 0
    assert t["ratio_model_only_over_end_to_end"] > 0
    s = report["sweep"]
    assert set(s) >= {"uncached_s", "cached_cold_s", "cached_warm_s", "speedup_cold", "speedup_warm",
                      "metrics_identical"}
    assert s["runs"] == 1 and s["metrics_identical"] is True
    r = report["runner"]  # one process per run vs the sweep's in-process runner, same runs
    assert r["metrics_identical"] is True and r["per_run_subprocess_s"] > 0 and r["per_run_inprocess_s"] > 0
    assert r["speedup"] == pytest.approx(r["per_run_subprocess_s"] / r["per_run_inprocess_s"], rel=1e-2)
    assert s["per_mode"]["cached_warm"]["feature_cache_misses"] == 0
    assert s["per_mode"]["cached_warm"]["feature_cache_hits"] == s["per_mode"]["cached_cold"]["feature_cache_misses"] > 0
    assert s["per_mode"]["uncached"]["feature_cache_hits"] == 0
    assert (tmp_path / "work" / "runs" / "cached_warm" / "sketch" / "lambda2_5" / "results.json").exists()
    printed = capsys.readouterr().out
    assert "cached, warm cache" in printed and "model only" in printed


def test_compare_logits_measures_the_difference_and_top1_agreement():
    import torch

    compare_logits = load_benchmark().compare_logits
    reference = torch.tensor([[10.0, 9.5, 0.0], [1.0, 2.0, 3.0]])
    other = reference.clone()
    other[0, 1] = 10.5  # sample 0 now predicts class 1
    c = compare_logits(reference, other)
    assert c["samples"] == 2 and c["max_abs_diff"] == 1.0 and c["max_rel_diff"] == pytest.approx(0.1)
    assert c["mean_abs_diff"] == pytest.approx(1.0 / 6) and c["top1_agreement_pct"] == 50.0
    same = compare_logits(reference, reference.half())
    assert same["max_abs_diff"] == 0 and same["top1_agreement_pct"] == 100.0


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="2.5">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_bad" time="0.2"><failure message="assert 1 == 2">...</failure></testcase>
<testcase classname="tests.test_b" name="test_broken_fixture" time="0.0"><error message="fixture"/></testcase>
<testcase classname="tests.test_b" name="test_cuda" time="0.0"><skipped message="needs CUDA"/></testcase>
</testsuite></testsuites>"""


def test_junit_summary_counts_and_names_the_failures(tmp_path):
    junit_summary = load_benchmark().junit_summary
    path = tmp_path / "tests.xml"
    path.write_text(JUNIT)
    s = junit_summary(str(path), exit_code=1)
    assert (s["tests"], s["passed"], s["failed"], s["skipped"], s["exit_code"]) == (4, 1, 2, 1, 1)
    assert s["failures"] == ["tests.test_a::test_bad", "tests.test_b::test_broken_fixture"]
    assert s["skipped_tests"] == ["tests.test_b::test_cuda"] and s["time_s"] == 2.5
    # a test step stopped by its time limit leaves no file: said so, not counted as passed
    missing = junit_summary(str(tmp_path / "none.xml"), exit_code=124)
    assert "tests" not in missing and "did not finish" in missing["error"] and missing["exit_code"] == 124


def test_unknown_section_is_an_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert load_benchmark().main(["--output", str(out), "--only", "throughput,precison"]) == 2
    assert "error: --only throughput,precison: choose sections from throughput,sweep,runner,precision" in \
        capsys.readouterr().err
    assert not out.exists()
