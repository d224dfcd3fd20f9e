#!/usr/bin/env python
"""Results table from run folders: mean ± std over seeds, one row per method and setting.

    python tools/collect_results.py OUTPUT_ROOT [--format md|csv|latex] [--select val]
                                    [--scores energy,mcm] [--output FILE]

Reads every ``results.json`` under OUTPUT_ROOT (never log text); see
``croft/results/collect.py`` for the aggregation rules. Malformed results.json files and
unfinished run folders are listed in separate sections (and malformed ones on stderr).
"""
import argparse
import os
import sys

try:
    import croft.results.collect  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.results.collect import FORMATS, collect, format_table  # noqa: E402
from croft.results.io import write_text_atomic  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", metavar="OUTPUT_ROOT", help="folder that holds the run folders")
    parser.add_argument("--format", default="md", choices=FORMATS, help="table format (default: md)")
    parser.add_argument("--select", choices=["val"], default=None,
                        help="keep only the hyper-parameter setting with the best mean validation accuracy "
                             "per (trainer, dataset, backbone, pretrained, shots, protocol)")
    parser.add_argument("--scores", default=None,
                        help="comma-separated open-set scores to show (default: all, e.g. energy,mcm,max_logit,knn)")
    parser.add_argument("--output", default=None, help="write the table to FILE instead of stdout")
    args = parser.parse_args(argv)

    if not os.path.isdir(args.root):
        parser.error(f"OUTPUT_ROOT {args.root} is not a folder")
    rows = collect(args.root, select=args.select)
    scores = [s.strip() for s in args.scores.split(",") if s.strip()] if args.scores else None
    text = format_table(rows, args.format, scores=scores)
    for path, reason in rows.malformed:
        print(f"skipped malformed {path}: {reason}", file=sys.stderr)
    if not rows:
        print(f"no finished runs (results.json) under {args.root}", file=sys.stderr)
    if args.output:
        write_text_atomic(args.output, text)
        print(f"wrote {args.output} ({len(rows)} rows, {len(rows.incomplete)} incomplete, "
              f"{len(rows.malformed)} malformed)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
