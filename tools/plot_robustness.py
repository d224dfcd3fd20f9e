#!/usr/bin/env python
"""The effective-robustness plot: ID accuracy against OOD accuracy on logit axes, one point per setting.

    python tools/plot_robustness.py RUN_DIR [RUN_DIR ...] [--output robustness.png|x.pdf]
                                    [--baseline TRAINER[,TRAINER]] [--every-run] [--per-domain] [--title TEXT]

RUN_DIR: run folders or folders above them (every results.json below is read). Setup-I: x = ID test
accuracy, y = mean accuracy of the covariate-shifted variants; Setup-II: x = source-domain val
accuracy, y = held-out domain accuracy. Points average a setting's runs over seeds (and held-out
domains); the line is a fit in logit space through the baseline trainers' points (default
ZeroshotCLIP); WiSE-FT runs (TRAINER.<NAME>.WISE_ALPHA) are connected in the order of α. Prints the
plotted points with their effective robustness. docs/robustness.md says more.
"""
import argparse
import os
import sys

try:
    import croft.results.robustness  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.results.robustness import OUTPUT_FORMATS, OptionError, RobustnessError  # noqa: E402
from croft.utils.cli import print_error, run_tool  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, or folders above them")
    parser.add_argument("--output", "-o", default="robustness.png",
                        help="file to write: .png (default robustness.png), .pdf or .svg")
    parser.add_argument("--baseline", default=None, metavar="TRAINER[,TRAINER]",
                        help="trainers whose points the line is fitted through (default: ZeroshotCLIP)")
    parser.add_argument("--every-run", action="store_true", help="one point per run instead of per setting")
    parser.add_argument("--per-domain", action="store_true",
                        help="one panel per held-out domain (Setup-II) or variant (Setup-I)")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)

    ext = os.path.splitext(args.output)[1].lower().lstrip(".")
    if ext not in OUTPUT_FORMATS:
        return print_error(f"--output {args.output}: expected a file name ending in "
                           f"{', '.join('.' + f for f in OUTPUT_FORMATS)}", 2)
    baselines = None
    if args.baseline is not None:
        baselines = [b.strip() for b in args.baseline.split(",") if b.strip()]
        if not baselines:
            return print_error(f"--baseline {args.baseline!r}: expected one or more trainer names, e.g. ZeroshotCLIP",
                               2)

    from croft.results.robustness import format_points, plot_robustness  # matplotlib: once the options are checked

    warnings = []
    try:
        _, data = plot_robustness(args.run_dirs, args.output, baselines, args.every_run, args.per_domain,
                                  args.title, warnings)
    except RobustnessError as e:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return print_error(e, 2 if isinstance(e, OptionError) else 1)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(format_points(data))
    n = sum(len(p.points) for p in data.panels)
    print(f"wrote {args.output} ({n} point(s) in {len(data.panels)} panel(s))", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
