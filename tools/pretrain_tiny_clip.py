#!/usr/bin/env python
"""Pretrain the ``tiny`` CLIP contrastively on croft's synthetic data and save an OpenAI-format checkpoint.

    python tools/pretrain_tiny_clip.py --data DIR --output FILE.pt [--steps N] [--seed S]
                                       [--datasets PACS [VLCS]] [--eval-data ROOT]

DIR is a root written by ``tools/make_synthetic_data.py --root DIR``. The held-out PACS domain
(``--holdout``, default sketch) and the open-set sets are never read. Use the file with
``--backbone tiny MODEL.BACKBONE.PRETRAINED FILE.pt``. See croft/testing/toy_pretrain.py.

The demo (scripts/demo.sh, docs/demo.md) pretrains on the pool of ``make_synthetic_data.py --demo``
(``--data ROOT/pretrain --datasets PACS``) and checks zero-shot accuracy on the benchmark
(``--eval-data ROOT``).
"""
import argparse
import logging
import os
import sys
import time

try:
    import croft  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.utils.cli import print_error, run_tool  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the network


def main(argv=None):
    from croft.testing import toy_pretrain as tp

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="synthetic data root (tools/make_synthetic_data.py --root)")
    parser.add_argument("--output", required=True, help="checkpoint file to write (.pt)")
    parser.add_argument("--steps", type=int, default=tp.DEFAULT_STEPS,
                        help=f"optimiser steps (default {tp.DEFAULT_STEPS})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=tp.DEFAULT_BATCH_SIZE,
                        help=f"image-caption pairs per step (default {tp.DEFAULT_BATCH_SIZE})")
    parser.add_argument("--lr", type=float, default=tp.DEFAULT_LR, help=f"peak learning rate (default {tp.DEFAULT_LR})")
    parser.add_argument("--holdout", nargs="+", default=list(tp.DEFAULT_HOLDOUT), metavar="DOMAIN",
                        help="PACS domains never read (default: sketch)")
    parser.add_argument("--datasets", nargs="+", default=list(tp.SOURCES), choices=sorted(tp.SOURCES),
                        metavar="NAME", help=f"dataset folders of --data to read (default: {' '.join(tp.SOURCES)})")
    parser.add_argument("--eval-data", default=None, metavar="ROOT",
                        help="root whose PACS domains the zero-shot check reads (default: --data)")
    parser.add_argument("--threads", type=int, default=tp.DEFAULT_THREADS,
                        help=f"torch threads (default {tp.DEFAULT_THREADS}; the weights depend on it)")
    parser.add_argument("--no-eval", action="store_true", help="skip the zero-shot check at the end")
    args = parser.parse_args(argv)

    log = logging.getLogger("croft.toy_pretrain")
    log.setLevel(logging.INFO)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.propagate = False

    start = time.perf_counter()
    try:
        result = tp.pretrain_tiny_clip(args.data, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                                       lr=args.lr, holdout=tuple(args.holdout), datasets=tuple(args.datasets),
                                       threads=args.threads)
    except (OSError, ValueError) as exc:
        return print_error(exc, 2)
    tp.save_openai_checkpoint(result.model, args.output)
    total = time.perf_counter() - start
    first, last = result.losses[:10], result.losses[-10:]
    print(f"wrote {args.output}: {result.num_pairs} image-caption pairs, {args.steps} steps, "
          f"loss {sum(first) / len(first):.3f} -> {sum(last) / len(last):.3f}, "
          f"training {result.seconds:.1f} s, total {total:.1f} s")
    if not args.no_eval:
        eval_data = args.eval_data or args.data
        # "seen in pretraining" names the style; with --eval-data the images themselves are other ones
        seen_words = "style seen in pretraining" if args.eval_data else "seen in pretraining"
        try:
            for domain in list(args.holdout) + ([] if "photo" in args.holdout else ["photo"]):
                seen = "held out" if domain in args.holdout else seen_words
                accuracy = tp.zero_shot_accuracy(result.model, eval_data, domain)
                print(f"zero-shot accuracy, PACS {domain} ({seen}), 'a photo of a {{}}.': {accuracy:.1f}% "
                      f"(chance {100 / 7:.1f}%)")
        except OSError as exc:
            return print_error(f"zero-shot check: {exc} (the checkpoint {args.output} was written)", 2)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
