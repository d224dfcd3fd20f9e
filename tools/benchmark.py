#!/usr/bin/env python
"""Measure what the feature cache (docs/architecture.md, "Feature cache") buys: encoder throughput and a mini-sweep.

    python tools/benchmark.py [--backbone tiny|RN50|ViT-B/16] [--device cpu|cuda] [--pretrained none]
                              --output FILE.json [--work-dir DIR] [--domains ...] [--lambda2 ...] [--epochs E]
                              [--only throughput,sweep,runner,precision] [--runner-runs N]
                              [--tests-junit FILE --tests-exit-code N]

1. Throughput of the image encoder in images/s: model-only (random tensors already on the device)
   against end-to-end (JPEG files read, decoded and transformed by a DataLoader, then encoded),
   and the ratio model-only / end-to-end.
2. A mini-sweep of CRoFT on synthetic PACS (held-out domains × lambda2 values), run in this process
   through ``croft.train.main``: uncached (``CACHE.ENABLED False``), cached from a cold cache,
   then cached from the warm cache into new output folders. Wall times, speed-ups, and whether the
   three sweeps wrote the same metrics (``metrics_identical``: every closed-set and open-set number
   of results.json within ``--tolerance`` percentage points, same best epoch).
3. ``runner``: the same N warm-cache runs (the first N (domain, lambda2) pairs, ``--runner-runs``)
   once as one ``python -m croft.train`` process per run and once through the sweep's in-process
   runner (``croft.sweep.runner``: one process, ``croft.train.main`` per run, frozen backbone and
   features shared): seconds per run of each, the speed-up, and whether both wrote the same metrics
   and bit-identical scores.npz (``metrics_identical``).

4. ``precision`` (only when named in ``--only``): zero-shot CLIP built twice from the same seed, its
   frozen image encoder under ``MODEL.AUTOCAST fp32`` and under ``--precision-compare`` (fp16 autocast by
   default), evaluated end to end on the same held-out domain (the first of ``--domains``) with DTD as the
   open-set set: logit agreement (largest absolute and relative difference, top-1 agreement) and the
   energy AUROC / FPR95 of each. On a CPU autocast is off, so both sides are fp32 (``effective`` says so).

``--only runner`` (or ``--only sweep,runner``) runs only those sections. ``--tests-junit FILE`` adds the
summary of a pytest JUnit XML file (``scripts/gpu_check.sh`` passes its CUDA-marked tests) as ``tests``.

Writes ``{"machine": ..., "config": ..., "throughput": {...}, "sweep": {"uncached_s", "cached_cold_s",
"cached_warm_s", "speedup_cold", "speedup_warm", "metrics_identical", ...}, "runner": {"runs",
"per_run_subprocess_s", "per_run_inprocess_s", "speedup", "metrics_identical", ...}}`` and prints a table.
"""
import argparse
import contextlib
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import croft  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.utils.atomic import atomic_write_text  # noqa: E402
from croft.utils.cli import print_error, run_tool  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
TRAINER_YAML = os.path.join(REPO, "configs", "trainers", "CRoFT", "rn50_ep30.yaml")
DATASET_YAML = os.path.join(REPO, "configs", "datasets", "PACS.yaml")
ZEROSHOT_YAML = os.path.join(REPO, "configs", "trainers", "ZeroshotCLIP", "rn50.yaml")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="tiny", help="tiny, RN50, ViT-B/16, ... (default: tiny)")
    p.add_argument("--pretrained", default="none", help="MODEL.BACKBONE.PRETRAINED (default: none = random init)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--autocast", default=None, choices=["fp32", "fp16", "bf16"],
                   help="MODEL.AUTOCAST on CUDA (default fp16 on cuda; always fp32 on cpu)")
    p.add_argument("--output", required=True, help="JSON file to write")
    p.add_argument("--work-dir", default="", help="folder for data, cache and runs (default: a temp dir, removed)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="DataLoader workers")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads of this process (default 1: the loader workers use the other "
                        "cores, and the adapters' small matrix ops are fastest single-threaded; 0 = torch default)")
    p.add_argument("--image-size", type=int, default=64, help="side of the synthetic JPEGs")
    p.add_argument("--images-per-class", type=int, default=12, help="synthetic PACS images per class and domain")
    p.add_argument("--ood-per-class", type=int, default=12, help="synthetic DTD images per class")
    # throughput
    p.add_argument("--batch-size", type=int, default=32, help="throughput batch size")
    p.add_argument("--batches", type=int, default=8, help="throughput: timed batches")
    p.add_argument("--skip-throughput", action="store_true")
    # sweep
    p.add_argument("--domains", nargs="+", default=list(PACS_DOMAINS), help="held-out PACS domains")
    p.add_argument("--lambda2", nargs="+", type=float, default=[1.0, 5.0, 10.0], help="lambda2 values")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--shots", type=int, default=-1, help="DATASET.NUM_SHOTS (-1 = all)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=1e-3, help="metrics_identical tolerance (percentage points)")
    p.add_argument("--skip-sweep", action="store_true")
    # runner
    p.add_argument("--runner-runs", type=int, default=4, help="runner section: number of runs (default 4)")
    p.add_argument("--skip-runner", action="store_true")
    # precision
    p.add_argument("--precision-compare", default="fp16", choices=["fp16", "bf16"],
                   help="precision section: the MODEL.AUTOCAST compared with fp32 (default fp16)")
    p.add_argument("--only", default=None,
                   help="comma-separated sections to run, from throughput,sweep,runner,precision "
                        "(default: throughput,sweep,runner)")
    # a test run to attach (scripts/gpu_check.sh)
    p.add_argument("--tests-junit", default="", help="pytest JUnit XML file whose summary goes into the JSON")
    p.add_argument("--tests-exit-code", type=int, default=None, help="pytest's exit status, recorded with it")
    return p


SECTIONS = ("throughput", "sweep", "runner", "precision")


def machine_description(device):
    import torch

    desc = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device}
    try:
        desc["load_average_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    if device == "cuda" and torch.cuda.is_available():
        desc.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1),
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return desc


def make_data(root, images_per_class, ood_per_class, image_size):
    from croft.testing.synthetic import write_dtd, write_pacs

    write_pacs(root, 0, images_per_class, image_size)
    write_dtd(root, 0, ood_per_class, image_size)


def _sync(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def throughput(args, data_root, autocast):
    """Model-only vs end-to-end encoder throughput (images/s)."""
    import glob

    import torch
    from torch.utils.data import DataLoader

    from croft.clip import load_clip
    from croft.config import get_cfg_default, merge_from_file
    from croft.data.images import DatumDataset
    from croft.data.datum import Datum
    from croft.data.transforms import build_transform

    device = torch.device(args.device)
    model, _ = load_clip(args.backbone, pretrained=args.pretrained, device=device)
    cfg = get_cfg_default()
    merge_from_file(cfg, TRAINER_YAML)  # croft's merge: the trainer YAMLs inherit with _BASE_
    transform = build_transform(cfg, is_train=False)
    size = tuple(cfg.INPUT.SIZE)
    amp = (torch.autocast("cuda", dtype=torch.float16 if autocast == "fp16" else torch.bfloat16)
           if args.device == "cuda" and autocast != "fp32" else contextlib.nullcontext())

    def encode(images):
        with torch.no_grad(), amp:
            return model.encode_image(images).float()

    bs, n = args.batch_size, args.batches
    x = torch.randn(bs, 3, *size, device=device)
    encode(x)
    _sync(args.device)
    started = time.perf_counter()
    for _ in range(n):
        encode(x)
    _sync(args.device)
    model_only = bs * n / (time.perf_counter() - started)

    files = sorted(glob.glob(os.path.join(data_root, "PACS", "images", "*", "*", "*.jpg")))
    files += sorted(glob.glob(os.path.join(data_root, "dtd", "images", "*", "*.jpg")))
    files = files[:bs * (n + 1)]
    items = [Datum(impath=f) for f in files]
    cuda = args.device == "cuda"
    loader = DataLoader(DatumDataset(items, transform), batch_size=bs, shuffle=False, num_workers=args.workers,
                        pin_memory=cuda, generator=torch.Generator())
    count, started = 0, None
    for i, batch in enumerate(loader):
        if i == 1:  # the first batch pays for worker start-up; time the steady state
            _sync(args.device)
            started = time.perf_counter()
        encode(batch["img"].to(device, non_blocking=cuda))
        if i >= 1:
            count += len(batch["img"])
    _sync(args.device)
    end_to_end = count / (time.perf_counter() - started) if started and count else float("nan")
    return {"backbone": args.backbone, "pretrained": args.pretrained, "device": args.device,
            "precision": autocast if cuda else "fp32", "batch_size": bs, "input_size": list(size),
            "jpeg_size": args.image_size, "workers": args.workers,
            "model_only_img_s": round(model_only, 2), "end_to_end_img_s": round(end_to_end, 2),
            "ratio_model_only_over_end_to_end": round(model_only / end_to_end, 3)}


def _run_args(args, data_root, out_dir, domain, lambda2, autocast, extra):
    return ["--root", data_root, "--seed", str(args.seed), "--trainer", "CRoFT",
            "--dataset-config-file", DATASET_YAML, "--config-file", TRAINER_YAML,
            "--backbone", args.backbone, "--output-dir", out_dir,
            "TEST_ENV", f"test_on_{domain}.json", "DATASET.NUM_SHOTS", str(args.shots),
            "DATASET.OOD_SETS", "['DTD']", "TRAINER.CRoFT.lambda2", str(lambda2),
            "OPTIM.MAX_EPOCH", str(args.epochs), "MODEL.BACKBONE.PRETRAINED", args.pretrained,
            "MODEL.AUTOCAST", autocast, "USE_CUDA", str(args.device == "cuda"),
            "DATALOADER.NUM_WORKERS", str(args.workers), "TEST.PLOT", "False", *extra]


def run_sweep(args, data_root, runs_dir, cache_dir, mode, autocast):
    """Run every (domain, lambda2) in this process; returns (wall seconds, {run name: results})."""
    from croft.train import main

    extra = ["CACHE.ENABLED", "False"] if mode == "uncached" else ["CACHE.ENABLED", "True", "CACHE.DIR", cache_dir]
    results = {}
    started = time.perf_counter()
    for domain in args.domains:
        for lambda2 in args.lambda2:
            name = f"{domain}/lambda2_{lambda2:g}"
            out = os.path.join(runs_dir, mode, name)
            argv = _run_args(args, data_root, out, domain, lambda2, autocast, extra)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                rc = main(argv)
            if rc != 0:
                with open(os.path.join(out, "log.txt")) as f:
                    tail = f.read()[-2000:]
                raise RuntimeError(f"{mode} run {name} failed (rc {rc}):\n{tail}")
            with open(os.path.join(out, "results.json")) as f:
                results[name] = json.load(f)
    return time.perf_counter() - started, results


def _metric_leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _metric_leaves(v, f"{prefix}/{k}")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def compare_metrics(reference, other):
    """Largest absolute difference over closed-set/open-set numbers, and whether best epochs agree."""
    worst, same_epochs = 0.0, True
    for name, ref in reference.items():
        got = other[name]
        same_epochs &= ref.get("best_epoch") == got.get("best_epoch")
        a = dict(_metric_leaves({"closed_set": ref["closed_set"], "open_set": ref["open_set"]}))
        b = dict(_metric_leaves({"closed_set": got["closed_set"], "open_set": got["open_set"]}))
        if a.keys() != b.keys():
            return float("inf"), False
        for key, value in a.items():
            if value != value and b[key] != b[key]:  # both NaN
                continue
            worst = max(worst, abs(value - b[key]))
    return worst, same_epochs


def sweep(args, data_root, work, autocast):
    runs_dir = os.path.join(work, "runs")
    cache_dir = os.path.join(work, "cache")
    shutil.rmtree(runs_dir, ignore_errors=True)
    shutil.rmtree(cache_dir, ignore_errors=True)
    uncached_s, uncached = run_sweep(args, data_root, runs_dir, cache_dir, "uncached", autocast)
    cold_s, cold = run_sweep(args, data_root, runs_dir, cache_dir, "cached_cold", autocast)
    warm_s, warm = run_sweep(args, data_root, runs_dir, cache_dir, "cached_warm", autocast)
    diff_cold, epochs_cold = compare_metrics(uncached, cold)
    diff_warm, epochs_warm = compare_metrics(uncached, warm)
    max_diff = max(diff_cold, diff_warm)
    timing = {mode: {"feature_cache_hits": sum(r["timing"].get("feature_cache_hits", 0) for r in res.values()),
                     "feature_cache_misses": sum(r["timing"].get("feature_cache_misses", 0) for r in res.values()),
                     "train_s": round(sum(r["timing"]["train_s"] for r in res.values()), 3),
                     "eval_s": round(sum(r["timing"]["eval_s"] for r in res.values()), 3)}
              for mode, res in (("uncached", uncached), ("cached_cold", cold), ("cached_warm", warm))}
    return {"runs": len(uncached), "domains": list(args.domains), "lambda2": list(args.lambda2),
            "epochs": args.epochs, "shots": args.shots, "seed": args.seed,
            "uncached_s": round(uncached_s, 3), "cached_cold_s": round(cold_s, 3), "cached_warm_s": round(warm_s, 3),
            "speedup_cold": round(uncached_s / cold_s, 2), "speedup_warm": round(uncached_s / warm_s, 2),
            "metrics_identical": bool(max_diff <= args.tolerance and epochs_cold and epochs_warm),
            "max_metric_abs_diff": max_diff, "tolerance": args.tolerance, "per_mode": timing}


def _same_run(a_dir, b_dir):
    """Same closed-set/open-set numbers and best epoch, and bit-identical scores.npz."""
    import numpy as np

    from croft.results.io import load_scores, read_results_json

    a, b = read_results_json(a_dir), read_results_json(b_dir)
    if any(a.get(k) != b.get(k) for k in ("closed_set", "open_set", "best_epoch", "fingerprint")):
        return False
    sa, sb = load_scores(a_dir), load_scores(b_dir)
    return sorted(sa) == sorted(sb) and all(np.array_equal(sa[k], sb[k]) for k in sa)


def runner_section(args, data_root, work, autocast):
    """N warm-cache runs: one ``python -m croft.train`` process each, then the in-process runner."""
    from croft.config import setup_cfg
    from croft.engine import shared
    from croft.engine.fingerprint import make_fingerprint
    from croft.sweep.identity import RunSpec
    from croft.sweep.runner import run_chains
    from croft.train import build_parser, main

    runs_dir = os.path.join(work, "runs", "runner")
    cache_dir = os.path.join(work, "cache_runner")
    shutil.rmtree(runs_dir, ignore_errors=True)
    pairs = [(d, l2) for d in args.domains for l2 in args.lambda2][:max(1, args.runner_runs)]
    extra = ["CACHE.ENABLED", "True", "CACHE.DIR", cache_dir]

    def argv_of(mode, domain, lambda2):
        out = os.path.join(runs_dir, mode, f"{domain}/lambda2_{lambda2:g}")
        return out, _run_args(args, data_root, out, domain, lambda2, autocast, extra)

    # 1. warm the feature cache (a plain in-process pass, no sharing: not timed)
    shared.disable_sharing()
    for domain, lambda2 in pairs:
        out, argv = argv_of("warmup", domain, lambda2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            rc = main(argv)
        if rc != 0:
            raise RuntimeError(f"runner warm-up run {out} failed (rc {rc}); see {out}/log.txt")
    # 2. one process per run
    env = dict(os.environ, HF_HUB_OFFLINE="1", CROFT_CACHE_DIR=cache_dir)
    if args.threads > 0:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    sub_dirs = []
    started = time.perf_counter()
    for domain, lambda2 in pairs:
        out, argv = argv_of("subprocess", domain, lambda2)
        proc = subprocess.run([sys.executable, "-m", "croft.train", *argv], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"runner subprocess run {out} failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
        sub_dirs.append(out)
    subprocess_s = time.perf_counter() - started
    # 3. the in-process runner (what croft-sweep's local launcher executes)
    specs = []
    parser = build_parser()
    for domain, lambda2 in pairs:
        out, argv = argv_of("inprocess", domain, lambda2)
        fingerprint = make_fingerprint(setup_cfg(parser.parse_args(argv)))["hash"]
        flags = [a for i, a in enumerate(argv) if not (a == "--output-dir" or (i and argv[i - 1] == "--output-dir"))]
        specs.append(RunSpec(key=out, out_dir=out, root="", flags=flags, opts=[], fingerprint=fingerprint,
                             stage="train", parent_key=None))
    outcomes = []
    started = time.perf_counter()
    try:
        run_chains([[spec] for spec in specs], outcomes.append)
    finally:
        shared.disable_sharing()
    inprocess_s = time.perf_counter() - started
    failed = [o for o in outcomes if o["state"] != "done"]
    if failed:
        raise RuntimeError(f"runner in-process run {failed[0]['key']} failed: {failed[0]['message']}")
    identical = all(_same_run(a, spec.out_dir) for a, spec in zip(sub_dirs, specs))
    n = len(pairs)
    return {"runs": n, "epochs": args.epochs, "shots": args.shots, "threads": args.threads,
            "subprocess_s": round(subprocess_s, 3), "inprocess_s": round(inprocess_s, 3),
            "per_run_subprocess_s": round(subprocess_s / n, 3), "per_run_inprocess_s": round(inprocess_s / n, 3),
            "speedup": round(subprocess_s / inprocess_s, 2), "metrics_identical": bool(identical)}


def _zeroshot_outputs(args, data_root, out_dir, autocast):
    """Build zero-shot CLIP under ``autocast`` and evaluate it: (test logits, open_set dict, arrays, weights sum)."""
    import torch

    import croft.trainers  # noqa: F401  (registers the trainers)
    from croft.config import setup_cfg
    from croft.engine.trainer import build_trainer, set_random_seed
    from croft.evaluation.evaluator import Evaluator
    from croft.evaluation.inference import FINAL
    from croft.train import build_parser

    argv = ["--root", data_root, "--seed", str(args.seed), "--trainer", "ZeroshotCLIP",
            "--dataset-config-file", DATASET_YAML, "--config-file", ZEROSHOT_YAML, "--backbone", args.backbone,
            "--output-dir", out_dir, "TEST_ENV", f"test_on_{args.domains[0]}.json", "DATASET.OOD_SETS", "['DTD']",
            "MODEL.BACKBONE.PRETRAINED", args.pretrained, "MODEL.AUTOCAST", autocast,
            "USE_CUDA", str(args.device == "cuda"), "CACHE.ENABLED", "False",
            "DATALOADER.NUM_WORKERS", str(args.workers), "TEST.PLOT", "False"]
    cfg = setup_cfg(build_parser().parse_args(argv))
    set_random_seed(cfg.SEED)
    croft_logger = logging.getLogger("croft")
    level = croft_logger.level
    croft_logger.setLevel(logging.WARNING)  # the run's info lines; its warnings still show
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer = build_trainer(cfg)
            evaluator = Evaluator(cfg, trainer.dataset, trainer.dm, trainer, FINAL)
            closed, test_out, val_out, _ = evaluator.closed_set()
            open_set, arrays = evaluator.open_set(test_out, val_out)
    finally:
        croft_logger.setLevel(level)
    # both sides must be the same random model, or the comparison measures the initialisation
    weights = [float(p.detach().double().sum()) for p in trainer.clip_model.state_dict().values()]
    del trainer
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return test_out.logits, closed["test_accuracy"], open_set, arrays, weights


def compare_logits(reference, other):
    """How far ``other`` (N x C) is from ``reference``: largest absolute and relative difference, top-1 agreement."""
    reference, other = reference.double(), other.double()
    diff = (reference - other).abs()
    scale = float(reference.abs().max()) or 1.0
    return {"samples": int(reference.shape[0]), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "max_rel_diff": float(diff.max()) / scale,
            "top1_agreement_pct": 100.0 * float((reference.argmax(1) == other.argmax(1)).double().mean())}


def precision_section(args, data_root, work):
    """fp32 against ``--precision-compare`` autocast of the frozen image encoder, same model and images."""
    import numpy as np

    from croft.engine import shared
    from croft.results.io import id_key, ood_key

    shared.disable_sharing()  # each side builds its own model and encodes its own features
    low = args.precision_compare
    effective = {mode: (mode if args.device == "cuda" else "fp32") for mode in ("fp32", low)}
    started = time.perf_counter()
    ref_logits, ref_acc, ref_open, ref_arrays, ref_weights = _zeroshot_outputs(
        args, data_root, os.path.join(work, "runs", "precision", "fp32"), "fp32")
    low_logits, low_acc, low_open, low_arrays, low_weights = _zeroshot_outputs(
        args, data_root, os.path.join(work, "runs", "precision", low), low)
    if ref_weights != low_weights:
        raise RuntimeError("precision section: the two zero-shot models differ in their weights (seeding)")
    ref_energy, low_energy = ref_open["DTD"]["energy"], low_open["DTD"]["energy"]
    energy_diff = max(float(np.max(np.abs(ref_arrays[k].astype(np.float64) - low_arrays[k].astype(np.float64))))
                      for k in (id_key(), ood_key("DTD")))
    return {"backbone": args.backbone, "pretrained": args.pretrained, "device": args.device,
            "trainer": "ZeroshotCLIP", "held_out": args.domains[0], "ood_set": "DTD",
            "reference": "fp32", "compared": low, "effective": [effective["fp32"], effective[low]],
            "logits": compare_logits(ref_logits, low_logits),
            "test_accuracy": {"fp32": ref_acc, low: low_acc},
            "energy_max_abs_diff": energy_diff,
            "energy_auroc": {"fp32": ref_energy["auroc"], low: low_energy["auroc"],
                             "abs_diff": abs(ref_energy["auroc"] - low_energy["auroc"])},
            "energy_fpr95": {"fp32": ref_energy["fpr95"], low: low_energy["fpr95"],
                             "abs_diff": abs(ref_energy["fpr95"] - low_energy["fpr95"])},
            "seconds": round(time.perf_counter() - started, 3)}


def junit_summary(path, exit_code=None):
    """Counts of a pytest JUnit XML file (``--junitxml``) and the names of the tests that failed."""
    import xml.etree.ElementTree as ET

    summary = {"junit": path, "exit_code": exit_code}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        summary["error"] = f"no readable JUnit file ({exc}); the test step did not finish"
        return summary
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    cases = [case for suite in suites for case in suite.iter("testcase")]
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in cases
              if c.find("failure") is not None or c.find("error") is not None]
    skipped = [f"{c.get('classname')}::{c.get('name')}" for c in cases
               if c.find("skipped") is not None and c.find("failure") is None and c.find("error") is None]
    summary.update(tests=len(cases), passed=len(cases) - len(failed) - len(skipped), failed=len(failed),
                   skipped=len(skipped), failures=failed, skipped_tests=skipped,
                   time_s=round(sum(float(s.get("time", 0) or 0) for s in suites), 3))
    return summary


def format_table(report):
    lines = []
    c = report.get("tests")
    if c:
        if "error" in c:
            lines += [f"Tests ({c['junit']}): {c['error']} (exit status {c['exit_code']})", ""]
        else:
            lines += [f"Tests: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped in "
                      f"{c['time_s']:.1f} s (exit status {c['exit_code']})"]
            lines += [f"  failed: {name}" for name in c["failures"]] + [""]
    t = report.get("throughput")
    if t:
        lines += [f"Encoder throughput ({t['backbone']}, {t['pretrained']}, {t['device']}, {t['precision']}, "
                  f"batch {t['batch_size']}, {t['input_size'][0]} px, {t['workers']} workers)",
                  "| measure | images/s |", "|---|---:|",
                  f"| model only (tensors on device) | {t['model_only_img_s']:.1f} |",
                  f"| end to end (JPEG → transform → encoder) | {t['end_to_end_img_s']:.1f} |",
                  f"| ratio model-only / end-to-end | {t['ratio_model_only_over_end_to_end']:.2f} |", ""]
    s = report.get("sweep")
    if s:
        lines += [f"Mini-sweep: CRoFT, synthetic PACS, {len(s['domains'])} held-out domains × "
                  f"{len(s['lambda2'])} lambda2 values = {s['runs']} runs, {s['epochs']} epochs",
                  "| sweep | wall s | speed-up | cache hits | cache misses |", "|---|---:|---:|---:|---:|"]
        for mode, label, speed in (("uncached", "uncached (CACHE.ENABLED False)", 1.0),
                                   ("cached_cold", "cached, cold cache", s["speedup_cold"]),
                                   ("cached_warm", "cached, warm cache", s["speedup_warm"])):
            m = s["per_mode"][mode]
            lines.append(f"| {label} | {s[mode + '_s']:.1f} | {speed:.1f}× | {m['feature_cache_hits']} | "
                         f"{m['feature_cache_misses']} |")
        lines.append(f"metrics identical: {s['metrics_identical']} (max |diff| {s['max_metric_abs_diff']:.2g} "
                     f"percentage points, tolerance {s['tolerance']:g})")
    r = report.get("runner")
    if r:
        if lines:
            lines.append("")
        lines += [f"Runner: {r['runs']} warm-cache CRoFT runs ({r['epochs']} epochs), one process per run vs the "
                  "in-process runner (croft-sweep)",
                  "| runner | s per run | speed-up |", "|---|---:|---:|",
                  f"| one `python -m croft.train` process per run | {r['per_run_subprocess_s']:.2f} | 1.0× |",
                  f"| in-process (croft.sweep.runner) | {r['per_run_inprocess_s']:.2f} | {r['speedup']:.1f}× |",
                  f"metrics identical (and scores.npz bit-identical): {r['metrics_identical']}"]
    pr = report.get("precision")
    if pr:
        low, lg = pr["compared"], pr["logits"]
        if lines:
            lines.append("")
        lines += [f"Precision: zero-shot CLIP ({pr['backbone']}, {pr['pretrained']}, {pr['device']}), fp32 vs {low} "
                  f"autocast (effective: {' vs '.join(pr['effective'])}), held-out {pr['held_out']}, "
                  f"open-set {pr['ood_set']}",
                  "| measure | fp32 | " + low + " | |diff| |", "|---|---:|---:|---:|",
                  f"| test accuracy % | {pr['test_accuracy']['fp32']:.2f} | {pr['test_accuracy'][low]:.2f} | "
                  f"{abs(pr['test_accuracy']['fp32'] - pr['test_accuracy'][low]):.2f} |",
                  f"| energy AUROC % | {pr['energy_auroc']['fp32']:.3f} | {pr['energy_auroc'][low]:.3f} | "
                  f"{pr['energy_auroc']['abs_diff']:.3f} |",
                  f"| energy FPR95 % | {pr['energy_fpr95']['fp32']:.3f} | {pr['energy_fpr95'][low]:.3f} | "
                  f"{pr['energy_fpr95']['abs_diff']:.3f} |",
                  f"logits ({lg['samples']} test images): max |diff| {lg['max_abs_diff']:.3g} (relative "
                  f"{lg['max_rel_diff']:.2g}), top-1 agreement {lg['top1_agreement_pct']:.2f}%; "
                  f"energy max |diff| {pr['energy_max_abs_diff']:.3g}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from croft.utils.logging import setup_logger

    setup_logger()  # before open_clip configures the root logger
    root_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # open_clip's "no pretrained weights" warning, once per run
    try:
        return _main(args)
    finally:
        logging.getLogger().setLevel(root_level)


def _main(args):
    import torch

    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args):
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        return print_error("--device cuda but CUDA is not available", 2)
    autocast = "fp32" if args.device == "cpu" else (args.autocast or "fp16")
    if args.only:
        sections = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = [x for x in sections if x not in SECTIONS]
        if unknown or not sections:
            return print_error(f"--only {args.only}: choose sections from {','.join(SECTIONS)}", 2)
    else:
        skipped = {"throughput": args.skip_throughput, "sweep": args.skip_sweep, "runner": args.skip_runner}
        sections = [x for x in SECTIONS if not skipped.get(x, True)]
    work = args.work_dir or tempfile.mkdtemp(prefix="croft_benchmark_")
    os.makedirs(work, exist_ok=True)
    report = {"machine": machine_description(args.device), "config": vars(args).copy()}
    if args.tests_junit:
        report["tests"] = junit_summary(args.tests_junit, args.tests_exit_code)
    started = time.perf_counter()
    try:
        data_root = os.path.join(work, "data")
        t0 = time.perf_counter()
        make_data(data_root, args.images_per_class, args.ood_per_class, args.image_size)
        report["data_s"] = round(time.perf_counter() - t0, 3)
        if "throughput" in sections:
            report["throughput"] = throughput(args, data_root, autocast)
        if "sweep" in sections:
            report["sweep"] = sweep(args, data_root, work, autocast)
        if "runner" in sections:
            report["runner"] = runner_section(args, data_root, work, autocast)
        if "precision" in sections:
            report["precision"] = precision_section(args, data_root, work)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    report["total_s"] = round(time.perf_counter() - started, 3)
    atomic_write_text(args.output, json.dumps(report, indent=2) + "\n")
    sys.stdout.write(format_table(report))
    print(f"total {report['total_s']:.1f} s; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
