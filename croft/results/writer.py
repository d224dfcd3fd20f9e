"""The results writer: one evaluation -> the run folder's ``scores.npz``, plot and ``results.json``.

The schema of each file is in ``docs/results-schema.md``. ``results.json`` is written last
(atomically), so its presence means the run finished.
"""
import os

from .io import RESULTS_FILE, SCHEMA_VERSION, save_scores, write_results_json
from ..utils.layout import ENERGY_PLOT_FILE


def run_metadata(cfg, dataset, hparams, fingerprint):
    """The identity part of results.json: what was run, on what, and the run's fingerprint."""
    return {
        "schema_version": SCHEMA_VERSION, "setup": dataset.setup,
        "fingerprint": fingerprint["hash"], "training_fingerprint": fingerprint["training_hash"],
        "trainer": cfg.TRAINER.NAME, "dataset": cfg.DATASET.NAME, "backbone": cfg.MODEL.BACKBONE.NAME,
        "pretrained": cfg.MODEL.BACKBONE.PRETRAINED, "seed": cfg.SEED, "shots": cfg.DATASET.NUM_SHOTS,
        "protocol": cfg.TEST.OOD_PROTOCOL, "test_env": cfg.TEST_ENV,
        "source_domains": list(dataset.source_domains), "target_domains": list(dataset.target_domains),
        "ood_sets": list(dataset.ood), "hparams": hparams, "shots_used": shots_used(dataset),
        "fingerprint_values": fingerprint["values"],
    }


def shots_used(dataset):
    """Training images actually used per class name (fewer than NUM_SHOTS when a class has fewer)."""
    counts = {name: 0 for name in dataset.classnames}
    for item in dataset.train_x:
        counts[dataset.classnames[item.label]] += 1
    return counts


def build_results(metadata, evaluation, best_epoch, best_val_accuracy, timing):
    results = dict(metadata)
    results.update({
        "best_epoch": best_epoch,
        "best_val_accuracy": best_val_accuracy,
        "closed_set": evaluation.closed_set,
        "open_set": evaluation.open_set,
        "timing": {k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()},
    })
    return results


def write_run(output_dir, results, arrays, plot_title=None):
    """Write ``scores.npz``, ``energy.png`` (when ``plot_title`` is not None) and, last, ``results.json``."""
    save_scores(output_dir, arrays)
    if plot_title is not None:
        from .plots import plot_run

        plot_run(arrays, os.path.join(output_dir, ENERGY_PLOT_FILE), title=plot_title)
    write_results_json(output_dir, results)
    return os.path.join(output_dir, RESULTS_FILE)
