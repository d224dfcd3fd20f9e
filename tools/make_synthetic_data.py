#!/usr/bin/env python
"""Write croft's small synthetic datasets in the real layouts (docs/method.md §7.6).

    python tools/make_synthetic_data.py --root DIR [--seed N]
    python tools/make_synthetic_data.py --root DIR --demo [--seed N]

writes DIR/PACS, DIR/VLCS, DIR/dtd, DIR/food-101, DIR/caltech-101 and an ImageNet tree (DIR/imagenet
and its variants imagenetv2, imagenet-sketch, imagenet-adversarial, imagenet-rendition; see
croft/testing/synthetic.py), and the rest of CoOp's 11 few-shot datasets: DIR/oxford_pets,
DIR/oxford_flowers, DIR/fgvc_aircraft, DIR/eurosat, DIR/stanford_cars, DIR/sun397, DIR/ucf101
(croft/testing/fewshot_trees.py; dtd, food-101, caltech-101 and imagenet serve both). With --demo it
writes the demo benchmark instead (croft/testing/demo_data.py: DIR/PACS, DIR/dtd, DIR/food-101,
DIR/caltech-101 and the pretraining pool DIR/pretrain/PACS; see docs/demo.md); the count options then
default to the demo's sizes.
"""
import argparse
import os
import sys
import time

try:
    import croft  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.testing.demo_data import DEMO_DEFAULTS, make_demo_data  # noqa: E402
from croft.testing.synthetic import make_synthetic_data  # noqa: E402
from croft.testing.fewshot_trees import make_fewshot_trees  # noqa: E402
from croft.utils.cli import print_error, run_tool  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--demo", action="store_true",
                        help="write the demo benchmark (make_demo_data, docs/demo.md) instead of the test datasets")
    parser.add_argument("--per-class-domain", type=int, default=None,
                        help="PACS/VLCS images per (domain, class), ImageNet train/val images per class "
                             f"(default 6; --demo: {DEMO_DEFAULTS['per_class_domain']})")
    parser.add_argument("--ood-per-class", type=int, default=None,
                        help=f"open-set images per class (default 8; --demo: {DEMO_DEFAULTS['ood_per_class']})")
    parser.add_argument("--pretrain-per-class-domain", type=int, default=None,
                        help="--demo only: pretraining-pool images per (source domain, class) "
                             f"(default {DEMO_DEFAULTS['pretrain_per_class_domain']})")
    parser.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    args = parser.parse_args(argv)
    if args.pretrain_per_class_domain is not None and not args.demo:
        parser.error("--pretrain-per-class-domain needs --demo")
    start = time.time()
    try:
        if args.demo:
            counts = {k: v for k, v in (("per_class_domain", args.per_class_domain),
                                        ("ood_per_class", args.ood_per_class),
                                        ("pretrain_per_class_domain", args.pretrain_per_class_domain))
                      if v is not None}
            paths = make_demo_data(args.root, seed=args.seed, image_size=args.image_size, **counts)
        else:
            paths = make_synthetic_data(args.root, seed=args.seed,
                                        per_class_domain=6 if args.per_class_domain is None else args.per_class_domain,
                                        image_size=args.image_size,
                                        ood_per_class=8 if args.ood_per_class is None else args.ood_per_class)
            paths.update(make_fewshot_trees(args.root, seed=args.seed, image_size=args.image_size))
    except (OSError, ValueError) as exc:
        return print_error(exc, 2)
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"done in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
