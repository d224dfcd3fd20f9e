"""Command line: ``python -m croft.train`` / ``croft-train``, with CoOp's ``train.py`` flags."""
import argparse
import contextlib
import os
import sys

from .utils.cli import report_error
from .utils.logging import setup_logger


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
    parser.add_argument("--restart", action="store_true",
                        help="move an earlier run's files in the output dir to OUTPUT_DIR/.old/<time>/ and start over")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command line (KEY VALUE pairs)")
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 1 failed run, 2 bad config).

    Every expected failure ends with one line ``error: ...`` on stderr (the traceback goes to
    log.txt only, or to the console with ``CROFT_TRACEBACK=1``).
    """
    args = build_parser().parse_args(argv)
    # Logging first: open_clip's first warning would otherwise configure the root logger.
    logger = setup_logger()
    from .config import ConfigError, setup_cfg
    from .config.locate import locate_config
    from .engine.checks import check_cfg

    try:
        args.config_file = locate_config(args.config_file)
        args.dataset_config_file = locate_config(args.dataset_config_file, "--dataset-config-file")
        cfg = setup_cfg(args)
        check_cfg(cfg)
    except ConfigError as exc:
        return report_error(exc, usage=ConfigError, write=logger.error)
    try:
        with claim_output_dir(cfg.OUTPUT_DIR):
            prepare_folders(cfg, args, logger)
            logger = setup_logger(cfg.OUTPUT_DIR)
            run(cfg, args)
    except Exception as exc:
        return report_error(exc, write=lambda line: (logger.debug("traceback", exc_info=True), logger.error(line)))
    return 0


@contextlib.contextmanager
def claim_output_dir(directory):
    """Hold OUTPUT_DIR for this run (no other croft run may use it meanwhile, docs/reliability.md §5); a
    folder this run created and left empty (a refused run) is removed again."""
    from .engine.run_folder import check_writable_folder, claim_run_folder

    check_writable_folder(directory)
    existed = os.path.isdir(directory)
    claim = claim_run_folder(directory)
    try:
        yield
    finally:
        claim.release()
        if not existed:
            try:
                os.rmdir(directory)  # only when empty
            except OSError:
                pass


def prepare_folders(cfg, args, logger):
    """Check the folders before any work: nothing is written unless every check passes."""
    from .engine.fingerprint import make_fingerprint
    from .engine.run_folder import (
        CLASS_LIST_KEYS, check_output_dir, check_source_dir, remove_stale_temp_files, restart,
    )

    from .engine.trainer import TRAINER_REGISTRY

    trainer_class = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    if args.eval_only and trainer_class.trains and not args.model_dir:
        raise ValueError(f"--eval-only with trainer {cfg.TRAINER.NAME} needs --model-dir (the folder of a trained run)")
    fingerprint = make_fingerprint(cfg)
    if args.eval_only and args.model_dir:
        unseen = getattr(trainer_class, "evaluates_unseen_classes", None)
        check_source_dir(args.model_dir, fingerprint, "--model-dir", logger,
                         may_differ=CLASS_LIST_KEYS if unseen is not None and unseen(cfg) else ())
    if cfg.RESUME:
        check_source_dir(cfg.RESUME, fingerprint, "--resume", logger)
    if args.restart:
        moved = restart(cfg.OUTPUT_DIR)
        if moved:
            logger.info(f"--restart: the earlier run's files were moved to {moved}")
    check_output_dir(cfg.OUTPUT_DIR, fingerprint)
    for path in remove_stale_temp_files(cfg.OUTPUT_DIR):
        logger.info(f"removed {path}: left by an interrupted write")


def save_config(cfg):
    from .engine.fingerprint import make_fingerprint
    from .engine.run_folder import write_fingerprint
    from .utils.layout import CONFIG_FILE
    from .utils.atomic import atomic_write_text

    atomic_write_text(os.path.join(cfg.OUTPUT_DIR, CONFIG_FILE), cfg.dump())
    write_fingerprint(cfg.OUTPUT_DIR, make_fingerprint(cfg))


def run(cfg, args):
    import torch

    from .utils.logging import get_logger
    from .engine.trainer import build_trainer, set_random_seed

    logger = get_logger()
    if cfg.SEED >= 0:
        logger.info(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    logger.info("Command: " + " ".join(sys.argv))
    logger.info(f"Loading trainer: {cfg.TRAINER.NAME}")
    logger.info(f"Loading dataset: {cfg.DATASET.NAME}")
    logger.info(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    trainer = build_trainer(cfg)
    save_config(cfg)
    if args.eval_only:
        if trainer.trains:
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
