#!/usr/bin/env python
"""Energy histograms and energy ROC curves of one or more runs, one row per run.

    python tools/plot_energy.py RUN_DIR [RUN_DIR ...] --output FILE.png

Reads each run's ``scores.npz`` (written by the final evaluation). Each row is titled by what tells
its run apart from the others given (method, held-out domain, seed, and the recorded settings in which
runs of one method differ, e.g. ``λ2=10``), the figure by what they share. An open-set set has one
colour in every panel.
"""
import argparse
import os
import sys

try:
    import croft.results.io  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.results.io import SCORES_FILE  # noqa: E402
from croft.utils.cli import print_error, run_tool  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders holding scores.npz")
    parser.add_argument("--output", "-o", required=True, help="PNG file to write")
    args = parser.parse_args(argv)

    missing = [d for d in args.run_dirs if not os.path.isfile(os.path.join(d, SCORES_FILE))]
    if missing:
        for d in missing:
            why = "is not a folder" if not os.path.isdir(d) else f"has no {SCORES_FILE}"
            status = print_error(f"run folder {d} {why} (was the run evaluated to the end?)", 2)
        return status
    from croft.results.plots import plot_runs  # matplotlib / scikit-learn: only once the inputs are checked

    plot_runs(args.run_dirs, args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
