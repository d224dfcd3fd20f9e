"""Command line: ``python -m croft.train`` / ``croft-train``, with CoOp's ``train.py`` flags."""
import argparse
import os
import sys

from .engine.logger import setup_logger


def build_parser():
    parser = argparse.ArgumentParser(
        prog="croft-train",
        description="Train or evaluate a CLIP fine-tuning method (CoOp/Dassl-compatible command line). "
                    "Trailing KEY VALUE pairs override config keys, e.g. DATASET.NUM_SHOTS 16.")
    parser.add_argument("--root", type=str, default="", help="path to the dataset root (DATASET.ROOT)")
    parser.add_argument("--output-dir", type=str, default="", help="output directory (OUTPUT_DIR)")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from (RESUME)")
    parser.add_argument("--seed", type=int, default=-1, help="random seed; >= 0 sets SEED")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains (DATASET.SOURCE_DOMAINS)")
    parser.add_argument("--target-domains", type=str, nargs="+", help="held-out domains (DATASET.TARGET_DOMAINS)")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation (INPUT.TRANSFORMS)")
    parser.add_argument("--config-file", type=str, default="", help="trainer config file (merged after the dataset one)")
    parser.add_argument("--dataset-config-file", type=str, default="", help="dataset config file")
    parser.add_argument("--trainer", type=str, default="", help="name of the trainer (TRAINER.NAME)")
    parser.add_argument("--backbone", type=str, default="", help="CLIP backbone (MODEL.BACKBONE.NAME)")
    parser.add_argument("--head", type=str, default="", help="name of the head (MODEL.HEAD.NAME)")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load the model from this directory (with --eval-only)")
    parser.add_argument("--load-epoch", type=int, help="load model.pth.tar-<epoch> instead of model-best.pth.tar")
    parser.add_argument("--no-train", action="store_true", help="build the trainer but do not train")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command line (KEY VALUE pairs)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    # Logging first: open_clip's first warning would otherwise configure the root logger.
    logger = setup_logger()
    from .config import ConfigError, setup_cfg

    try:
        cfg = setup_cfg(args)
    except ConfigError as exc:
        logger.error(f"error: {exc}")
        return 2
    from .engine.checks import check_cfg
    from .utils.errors import NonFiniteLossError

    try:
        check_cfg(cfg)
    except ConfigError as exc:
        logger.error(f"error: {exc}")
        return 2
    logger = setup_logger(cfg.OUTPUT_DIR)
    try:
        run(cfg, args)
    except (KeyError, ValueError, FileNotFoundError, NotADirectoryError, RuntimeError, NonFiniteLossError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        if os.environ.get("CROFT_TRACEBACK"):
            raise
        logger.error(f"error: {message} (set CROFT_TRACEBACK=1 for the traceback)")
        return 1
    return 0


def save_config(cfg):
    from .utils.atomic import atomic_write_text

    atomic_write_text(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), cfg.dump())


def run(cfg, args):
    import torch

    from . import data, trainers  # noqa: F401  (registers datasets and trainers)
    from .data import datasets  # noqa: F401
    from .engine.logger import get_logger
    from .engine.trainer import build_trainer, set_random_seed

    logger = get_logger()
    if cfg.SEED >= 0:
        logger.info(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    logger.info("Command: " + " ".join(sys.argv))
    logger.info(f"Loading trainer: {cfg.TRAINER.NAME}")
    logger.info(f"Loading dataset: {cfg.DATASET.NAME}")
    save_config(cfg)
    logger.info(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    trainer = build_trainer(cfg)
    if args.eval_only:
        if trainer.trains:
            if not args.model_dir:
                raise SystemExit(f"--eval-only with trainer {cfg.TRAINER.NAME} needs --model-dir")
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.evaluate_and_write_results()
        return trainer
    if args.no_train:
        return trainer
    if not trainer.trains:
        trainer.evaluate_and_write_results()
        return trainer
    trainer.train()
    return trainer


if __name__ == "__main__":
    sys.exit(main())
