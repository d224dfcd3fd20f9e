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
