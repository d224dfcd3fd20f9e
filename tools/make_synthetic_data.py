#!/usr/bin/env python
"""Write croft's small synthetic datasets in the real layouts (docs/method.md §7.6).

    python tools/make_synthetic_data.py --root DIR [--seed N]

writes DIR/PACS, DIR/VLCS, DIR/dtd, DIR/food-101, DIR/caltech-101 and an ImageNet tree (DIR/imagenet
and its variants imagenetv2, imagenet-sketch, imagenet-adversarial, imagenet-rendition; see
croft/data/synthetic.py).
"""
import argparse
import os
import sys
import time

try:
    import croft  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.data.synthetic import make_synthetic_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--per-class-domain", type=int, default=6,
                        help="PACS/VLCS images per (domain, class), ImageNet train/val images per class "
                             "(default 6)")
    parser.add_argument("--ood-per-class", type=int, default=8, help="open-set images per class (default 8)")
    parser.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        paths = make_synthetic_data(args.root, seed=args.seed, per_class_domain=args.per_class_domain,
                                    image_size=args.image_size, ood_per_class=args.ood_per_class)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"done in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    from croft.utils.cli import run_tool

    sys.exit(run_tool(main))
