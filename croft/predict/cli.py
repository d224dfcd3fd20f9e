"""``croft-predict RUN_DIR IMAGES...`` (``python -m croft.predict``): the command line of :mod:`croft.predict`
(docs/predict.md §2). Exit status: 0 done, 1 failed (or no image predicted), 2 bad settings."""
import argparse
import csv
import io
import json
import os
import sys

from ..evaluation.detector import check_tpr
from ..utils.cli import run_tool
from .predictor import DEFAULT_SCORE, Predictor
from .run_dir import PredictError, check_output_path, check_run_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def find_images(inputs):
    """Files given, and image files under folders given (recursive, sorted; hidden entries skipped)."""
    found = []
    for item in inputs:
        if os.path.isdir(item):
            for folder, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(folder, f) for f in sorted(files)
                             if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
        else:
            found.append(item)  # a missing or unreadable file is reported in its row
    return found


def _format(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_predictions(predictions, path=None):
    """CSV (``.csv``, and stdout when ``path`` is None) or JSON lines (``.jsonl``); a file is written atomically."""
    from ..utils.atomic import atomic_write_text

    jsonl = path is not None and path.lower().endswith(".jsonl")
    buffer = io.StringIO()
    if jsonl:
        for row in predictions:
            buffer.write(json.dumps(row) + "\n")
    else:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(predictions.columns)
        for row in predictions:
            writer.writerow([_format(row[c]) for c in predictions.columns])
    if path is None:
        sys.stdout.write(buffer.getvalue())
        sys.stdout.flush()
    else:
        atomic_write_text(path, buffer.getvalue())


def build_parser():
    parser = argparse.ArgumentParser(
        prog="croft-predict",
        description="Classify images with a finished croft run and flag open-set (unknown) images with the "
                    "run's detector thresholds (docs/predict.md).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (OUTPUT_DIR of croft-train)")
    parser.add_argument("images", metavar="IMAGES", nargs="+",
                        help=f"image files, or folders searched recursively for {', '.join(IMAGE_EXTENSIONS)}")
    parser.add_argument("--output", "-o", default=None,
                        help="preds.csv or preds.jsonl (default: CSV on stdout)")
    parser.add_argument("--score", default=DEFAULT_SCORE,
                        help="the open-set score of is_unknown (default: energy)")
    parser.add_argument("--tpr", type=float, default=None,
                        help="keep this fraction of the ID val images (default: the TPR stored in detector.json, 0.95)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", "-v", action="store_true", help="log the restore steps (to stderr)")
    parser.add_argument("--load-epoch", type=int, default=None,
                        help="load model.pth.tar-<epoch> instead of the checkpoint the run evaluated")
    given = parser.add_argument_group(
        "a folder of checkpoints without config.yaml (the original CRoFT code's)",
        "the settings it was trained with, as croft-train --eval-only --model-dir takes them; its class names and "
        "detector thresholds come from its dataset (ID val images) unless the folder holds a detector.json")
    given.add_argument("--config-file", default="", help="trainer config file")
    given.add_argument("--dataset-config-file", default="", help="dataset config file")
    given.add_argument("--root", default="", help="dataset root (DATASET.ROOT)")
    given.add_argument("--seed", type=int, default=None, help="SEED (>= 0)")
    given.add_argument("--trainer", default="", help="TRAINER.NAME")
    given.add_argument("--backbone", default="", help="MODEL.BACKBONE.NAME")
    given.add_argument("--source-domains", nargs="+", default=None, help="DATASET.SOURCE_DOMAINS")
    given.add_argument("--target-domains", nargs="+", default=None, help="DATASET.TARGET_DOMAINS")
    given.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), dest="overrides",
                       help="a config override, as croft-train's trailing KEY VALUE pairs (repeatable)")
    return parser


def explicit_settings(args):
    """``(config, dataset_config, root, opts)`` of the command line's settings for a folder without
    config.yaml; croft-train's flags become overrides in its merge order (flags, then ``--set`` pairs)."""
    opts = []
    if args.seed is not None and args.seed >= 0:
        opts += ["SEED", str(args.seed)]
    if args.source_domains:
        opts += ["DATASET.SOURCE_DOMAINS", repr(list(args.source_domains))]
    if args.target_domains:
        opts += ["DATASET.TARGET_DOMAINS", repr(list(args.target_domains))]
    if args.trainer:
        opts += ["TRAINER.NAME", args.trainer]
    if args.backbone:
        opts += ["MODEL.BACKBONE.NAME", args.backbone]
    for key, value in args.overrides:
        opts += [key, value]
    return args.config_file, args.dataset_config_file, args.root, opts


class _cli_logging:
    """croft's log to stderr (stdout may carry the CSV), at INFO with ``--verbose``, else silent
    (errors are reported by ``main``); the root logger (open_clip's warnings) likewise. The previous
    logging state is restored on exit, so ``main`` can be called in-process."""

    def __init__(self, verbose):
        self.verbose = verbose

    def __enter__(self):
        import logging

        from ..utils.logging import LOGGER_NAME

        self.logger, self.root = logging.getLogger(LOGGER_NAME), logging.getLogger()
        self.saved = (list(self.logger.handlers), self.logger.level, self.logger.propagate, self.root.level)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.handlers = [handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO if self.verbose else logging.CRITICAL + 1)
        self.root.setLevel(logging.WARNING if self.verbose else logging.CRITICAL + 1)
        return self

    def __exit__(self, *exc):
        handlers, level, propagate, root_level = self.saved
        self.logger.handlers = handlers
        self.logger.setLevel(level)
        self.logger.propagate = propagate
        self.root.setLevel(root_level)
        return False


def main(argv=None):
    """The command line; returns the exit status: 0 done, 1 failed (or no image predicted), 2 bad settings."""
    from ..config import ConfigError

    args = build_parser().parse_args(argv)
    return run_tool(lambda _: _main(args), usage=ConfigError, plain=PredictError,
                    expected=(ValueError, RuntimeError, OSError, KeyError))


def _main(args):
    if args.tpr is not None:
        try:
            check_tpr(args.tpr)
        except ValueError:
            raise PredictError(f"invalid --tpr {args.tpr}", "command line", "a number in (0, 1]") from None
    if args.batch_size < 1:
        raise PredictError(f"invalid --batch-size {args.batch_size}", "command line", "an integer >= 1")
    if args.output is not None:
        check_output_path(args.output)
    config, dataset_config, root, opts = explicit_settings(args)
    check_run_dir(args.run_dir, explicit=bool(config or dataset_config or root or opts))  # no torch: fails fast
    images = find_images(args.images)
    if not images:
        raise PredictError("no images", " ".join(args.images), f"image files ({', '.join(IMAGE_EXTENSIONS)}) or "
                                                               "folders holding some")
    with _cli_logging(args.verbose):
        predictor = Predictor.from_run(args.run_dir, device=args.device, config=config, dataset_config=dataset_config,
                                       root=root, opts=opts, load_epoch=args.load_epoch)
    if predictor.detector is None:
        sys.stderr.write(f"warning: {args.run_dir} has no detector.json: no thresholds, is_unknown is empty\n")
    predictions = predictor.predict(images, batch_size=args.batch_size, score=args.score, tpr=args.tpr,
                                    errors="record", progress=not args.no_progress)
    ok = predictions.ok
    if not ok.any():
        first = next(i for i, e in enumerate(predictions.errors) if e is not None)
        raise PredictError(f"no image could be predicted ({len(predictions)} unreadable; first: "
                           f"{predictions.paths[first]}: {predictions.errors[first]})", " ".join(args.images),
                           "image files that PIL can open (nothing was written)")
    write_predictions(predictions, args.output)
    summary = f"{len(predictions)} images, {int((~ok).sum())} unreadable"
    if predictions.threshold is not None:
        det = predictor.detector
        summary += (f"; {int(predictions.is_unknown[ok].sum())} unknown ({args.score} < {predictions.threshold:.6g}, "
                    f"TPR {predictions.tpr:g} of {det['n_val']} ID {det.get('source', 'val')} images)")
    sys.stderr.write(summary + (f"; written to {args.output}" if args.output else "") + "\n")
    return 0
