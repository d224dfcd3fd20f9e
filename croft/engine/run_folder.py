"""What a run may do with the folders it is given, decided before any work.

- ``OUTPUT_DIR`` holding an earlier run (checkpoints or results.json) is resumed or re-evaluated
  only when that run's fingerprint equals this run's; otherwise the run stops and names every
  differing key. ``--restart`` moves the earlier run's files into ``OUTPUT_DIR/.old/<time>/``
  (never deletes them) and starts over.
- ``--resume DIR`` and ``--eval-only --model-dir DIR`` must name folders that exist; their
  checkpoints' training-side fingerprint must equal this run's.
Nothing here writes into a folder before its checks have passed.
"""
import glob
import json
import os
import shutil
import time

from ..utils.atomic import atomic_write_text
from .checkpoint import BEST_NAME, LAST_NAME, load_checkpoint
from .fingerprint import describe, differences

FINGERPRINT_FILE = "fingerprint.json"
OLD_DIR = ".old"
RESULTS_FILES = ("results.json", "scores.npz", "energy.png", "metrics.jsonl", "detector.json",
                 "detector_val_scores.npz", "detector_knn_bank.npy", "config.yaml", FINGERPRINT_FILE, LAST_NAME)


class RunFolderError(RuntimeError):
    """A folder that this run may not use as asked (the message says why and the ways out)."""


def model_folders(directory):
    """Sub-folders that hold checkpoints (``<name>/model-best.pth.tar`` or a ``checkpoint`` marker)."""
    found = []
    for sub in sorted(glob.glob(os.path.join(directory, "*"))):
        if os.path.isdir(sub) and not os.path.basename(sub).startswith(".") and (
                os.path.isfile(os.path.join(sub, BEST_NAME)) or os.path.isfile(os.path.join(sub, "checkpoint"))
                or glob.glob(os.path.join(sub, "model.pth.tar-*"))):
            found.append(sub)
    return found


def has_run(directory):
    return os.path.isdir(directory) and (
        os.path.isfile(os.path.join(directory, "results.json")) or os.path.isfile(os.path.join(directory, LAST_NAME))
        or bool(model_folders(directory)))


def read_fingerprint(directory):
    """``(fingerprint, source)`` of the run in ``directory``, or ``(None, None)`` when none is recorded."""
    path = os.path.join(directory, FINGERPRINT_FILE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f), path
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{path} is unreadable ({exc}); expected the JSON fingerprint croft writes. "
                                 "Move the folder aside or use another --output-dir") from None
    for sub in model_folders(directory):
        best = os.path.join(sub, BEST_NAME)
        if os.path.isfile(best):
            state = load_checkpoint(best)
            if state.get("fingerprint"):
                return state["fingerprint"], best
    return None, None


def write_fingerprint(directory, fingerprint):
    atomic_write_text(os.path.join(directory, FINGERPRINT_FILE), json.dumps(fingerprint, indent=2, default=str) + "\n")


def check_writable_folder(directory, what="OUTPUT_DIR"):
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise RunFolderError(f"{what} {directory} is a file; expected a folder (or a path that does not exist yet)")
    probe = directory
    while not os.path.exists(probe):
        parent = os.path.dirname(os.path.abspath(probe))
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise RunFolderError(f"{what} {directory}: {probe} is a file; expected a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"{what} {directory} is not writable ({probe}); expected a folder you can write to")


def restart(directory):
    """Move an earlier run's files into ``directory/.old/<time>/``; return that folder (or None)."""
    if not has_run(directory):
        return None
    target = os.path.join(directory, OLD_DIR, time.strftime("%Y-%m-%d-%H-%M-%S"))
    suffix = 1
    while os.path.exists(target):
        target = f"{target.rstrip('0123456789-')}-{suffix}"
        suffix += 1
    os.makedirs(target)
    moved = [p for p in (os.path.join(directory, n) for n in RESULTS_FILES) if os.path.exists(p)]
    moved += model_folders(directory)
    moved += glob.glob(os.path.join(directory, "tip_adapter_cache"))
    for path in moved:
        shutil.move(path, os.path.join(target, os.path.basename(path)))
    return target


def _mismatch(directory, source, diffs, what):
    return RunFolderError(
        f"{what} {directory} holds a run with other settings ({source}): {describe(diffs)}; use another "
        "--output-dir, or --restart to move the earlier run's files aside and start over")


def check_output_dir(directory, fingerprint):
    """Refuse to resume or overwrite an earlier run in ``directory`` whose settings differ."""
    check_writable_folder(directory)
    if not has_run(directory):
        return
    stored, source = read_fingerprint(directory)
    if stored is None:
        raise RunFolderError(
            f"OUTPUT_DIR {directory} holds checkpoints or results without a fingerprint (written by an older croft), "
            "so croft cannot check that they match these settings; use another --output-dir, or --restart to move "
            "them aside")
    diffs = differences(stored, fingerprint)
    if diffs:
        raise _mismatch(directory, source, diffs, "OUTPUT_DIR")


def check_source_dir(directory, fingerprint, what, logger=None):
    """``--resume DIR`` / ``--model-dir DIR``: exists; training-side settings equal (when recorded)."""
    if not os.path.isdir(directory):
        raise RunFolderError(f"{what} {directory} does not exist or is not a folder; expected the output folder "
                             "of a croft run")
    stored, source = read_fingerprint(directory)
    if stored is None:
        if logger is not None:
            logger.warning(f"warning: {what} {directory} records no fingerprint (an older croft or another code "
                           "base); its settings cannot be checked against this run's")
        return
    diffs = differences(stored, fingerprint, training_only=True)
    if diffs:
        raise RunFolderError(
            f"{what} {directory} was trained with other settings ({source}): {describe(diffs)}; pass the settings "
            f"it was trained with (see {os.path.join(directory, 'config.yaml')}), or train anew")
