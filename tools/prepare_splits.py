#!/usr/bin/env python
"""Write the leave-one-domain-out split files of a multi-domain image folder.

    python tools/prepare_splits.py --dataset-dir $DATA/PACS [--val-fraction 0.2] [--seed 1]

reads <dir>/images/<domain>/<class>/<image> (or <dir>/<domain>/<class>/<image>) and writes
<dir>/test_on_<domain>.json for every domain: test = the whole held-out domain, train/val = the
other domains, each (domain, class) folder split at random (seeded) into val_fraction val and the
rest train. Labels are the sorted class-folder names. See croft/data/splits.py and datasets/README.md.
"""
import argparse
import os
import sys

try:
    import croft  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.data.splits import DEFAULT_SEED, DEFAULT_VAL_FRACTION, write_domain_splits  # noqa: E402
from croft.utils.cli import print_error, run_tool  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-dir", required=True, help="the dataset folder, e.g. $DATA/PACS")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                        help=f"share of each source (domain, class) folder used for val (default {DEFAULT_VAL_FRACTION})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"split seed (default {DEFAULT_SEED})")
    parser.add_argument("--out-dir", default="", help="where to write the JSON files (default: the dataset folder)")
    args = parser.parse_args(argv)
    try:
        written = write_domain_splits(args.dataset_dir, args.val_fraction, args.seed, args.out_dir or None)
    except (OSError, ValueError) as exc:
        return print_error(exc, 2)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
