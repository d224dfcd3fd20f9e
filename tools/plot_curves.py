#!/usr/bin/env python
"""Training curves of one or more runs: one panel per metric, one line per run.

    python tools/plot_curves.py RUN_DIR [RUN_DIR ...] --output curves.png
                                [--metrics loss,acc,lr,val_accuracy | all] [--title TEXT]

Reads each run's ``metrics.jsonl`` (one JSON record per trained epoch; docs/results-schema.md §4),
also while the run is still training. Metric names: ``lr``, ``val_accuracy``, ``epoch_s`` and the
trainer's ``train`` meters (``loss``, ``acc``, CRoFT's loss terms, ...); ``all`` draws every one.
Default: loss, acc, lr and val_accuracy (those that have values). Problems with the inputs are
reported as one ``error: ...`` line each, with exit status 1.
"""
import argparse
import os
import sys

try:
    import croft.results.curves  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.results.curves import (DEFAULT_METRICS, METRICS_FILE, available_metrics, curve_series,  # noqa: E402
                                  metrics_path, read_metrics, run_labels)
from croft.utils.cli import print_error, run_tool  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help=f"run folders holding {METRICS_FILE} "
                                                                       "(or the metrics.jsonl files)")
    parser.add_argument("--output", "-o", required=True, help="PNG file to write")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated metrics, one panel each, or 'all' "
                             f"(default: {','.join(DEFAULT_METRICS)})")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)

    failed = False
    for run in args.run_dirs:
        if not os.path.exists(run):
            failed = print_error(f"run folder {run} does not exist")
        elif os.path.isdir(run) and not os.path.isfile(metrics_path(run)):
            failed = print_error(f"run folder {run} has no {METRICS_FILE} (it is written per epoch by training; "
                                 "evaluation-only runs have none)")
    if failed:
        return 1
    warnings, runs = [], []
    for run, label in zip(args.run_dirs, run_labels(args.run_dirs)):
        try:
            runs.append((label, read_metrics(run, warnings)))
        except (OSError, ValueError) as e:
            failed = print_error(str(e))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if failed:
        return 1

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics is not None else None
    if metrics is not None and not metrics:
        return print_error("--metrics: give at least one metric name, or 'all'")
    series = curve_series(runs, metrics)
    available = available_metrics(runs)
    empty = [name for name, lines in series.items() if not lines]
    if not series or len(empty) == len(series):
        wanted = ", ".join(metrics) if metrics else ", ".join(DEFAULT_METRICS)
        return print_error(f"no values for {wanted} in any run (available: {', '.join(available) or 'none'})")
    for name in empty:
        print(f"warning: no values for metric {name} in any run (available: {', '.join(available)})",
              file=sys.stderr)

    from croft.results.curves import plot_curves  # matplotlib: only once the inputs are checked

    try:
        plot_curves(series, args.output, title=args.title, labels=[label for label, _ in runs])
    except OSError as e:
        return print_error(f"cannot write {args.output}: {e}")
    print(f"wrote {args.output} ({len(series)} panel(s), {len(runs)} run(s))", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
