#!/usr/bin/env python
"""CoOp's few-shot figure from run folders: accuracy vs shots per dataset and on average, one line per method.

    python tools/plot_fewshot.py OUTPUT_ROOT --output fewshot.png [--columns 3] [--title TEXT]

Reads the runs of CoOp's 11 datasets under OUTPUT_ROOT (every results.json, never log text) into the table of
``tools/collect_results.py --table fewshot`` and draws its means: one panel per dataset plus the average over
datasets (first; rows with every dataset only), zero-shot CLIP as a star at 0 shots
(croft/results/fewshot_plot.py; docs/benchmark.md, "The third benchmark"). The format follows the extension of
--output (png, pdf, svg). Problems with the inputs end with one ``error: ...`` line and exit status 1.
"""
import argparse
import os
import sys

try:
    import croft.results.fewshot_plot  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.results.fewshot_plot import save_fewshot  # noqa: E402
from croft.results.fewshot_tables import fewshot_table  # noqa: E402
from croft.utils.cli import print_error, run_tool  # noqa: E402


def zero_shot_trainers():
    """Registered trainers that train nothing (drawn at 0 shots)."""
    import croft.trainers  # noqa: F401  (registers every trainer)
    from croft.engine.trainer import TRAINER_REGISTRY

    return [n for n in TRAINER_REGISTRY.names() if not TRAINER_REGISTRY.get(n).trains]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", metavar="OUTPUT_ROOT", help="folder that holds the run folders")
    parser.add_argument("--output", "-o", required=True, help="figure file (.png, .pdf or .svg)")
    parser.add_argument("--columns", type=int, default=3, help="panels per row (default 3)")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)
    if args.columns < 1:
        parser.error(f"--columns must be at least 1, got {args.columns}")
    if not os.path.isdir(args.root):
        return print_error(f"OUTPUT_ROOT {args.root} is not a folder"
                           + (" (it does not exist)" if not os.path.exists(args.root) else ""))
    table = fewshot_table(args.root, zero_shot=zero_shot_trainers())
    for path, reason in table.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for line in table.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if not table.rows:
        return print_error(f"no few-shot runs under {args.root} (results.json of CoOp's datasets with "
                           "DATASET.SUBSAMPLE_CLASSES all)")
    partial = [r["method"] for r in table.rows if r["partial"]]
    if partial:
        print(f"note: the average panel leaves out {len(partial)} row(s) without every dataset (e.g. {partial[0]})",
              file=sys.stderr)
    try:
        save_fewshot(table, args.output, columns=args.columns, title=args.title)
    except (OSError, ValueError) as e:
        return print_error(f"cannot write {args.output}: {e}")
    print(f"wrote {args.output} ({len(table.columns)} dataset(s), {len(table.methods())} method(s))", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
