"""Checkpoints in Dassl's layout, ``<dir>/<model name>/{model-best.pth.tar, model.pth.tar-<E>, checkpoint}``,
plus croft's rolling ``<dir>/last.pth.tar``: every model, optimizer, scheduler, the best-so-far record
and the RNG states after the last completed epoch, in one atomically written file, so a run killed
at any point resumes from its last completed epoch with the same numbers as an uninterrupted run.

Files are read with ``torch.load(weights_only=True)``: plain tensors and containers only, no code.
"""
import os
import pickle
import zipfile

import torch

from ..utils.atomic import atomic_write, atomic_write_text
from ..utils.errors import CheckpointError

BEST_NAME = "model-best.pth.tar"
LAST_NAME = "last.pth.tar"


def epoch_file_name(epoch):
    return f"model.pth.tar-{epoch}"


def save_checkpoint(state, model_dir, is_best=False, file_name=None):
    """Write ``state`` atomically; ``checkpoint`` names the latest epoch file."""
    os.makedirs(model_dir, exist_ok=True)
    file_name = BEST_NAME if is_best else (file_name or epoch_file_name(state["epoch"]))
    path = os.path.join(model_dir, file_name)
    atomic_write(path, lambda f: torch.save(state, f), binary=True)
    if not is_best:
        atomic_write_text(os.path.join(model_dir, "checkpoint"), file_name + "\n")
    return path


def safe_torch_load(path, map_location="cpu", what="checkpoint"):
    """``torch.load(weights_only=True)`` with one clear error for every file it cannot read."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes); expected a file written by torch.save")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{what} {path} is not a plain tensor checkpoint: it needs code to load ({reason[:160]}); croft loads "
            "only tensors and plain containers. Load only files you trust (docs/reliability.md)") from None
    except Exception as exc:  # noqa: BLE001  (torch.load of a damaged file raises many kinds)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{what} {path} is truncated or not a torch file ({reason[:160]}); expected a "
                              "file written by torch.save") from None


def load_checkpoint(path, map_location="cpu"):
    state = safe_torch_load(path, map_location)
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint {path} holds no 'state_dict'; expected a Dassl-style checkpoint "
                              "(a dict with 'state_dict', 'epoch', ...)")
    # Checkpoints written from DataParallel models carry a "module." prefix (docs/method.md §4.4).
    state["state_dict"] = {k[len("module."):] if k.startswith("module.") else k: v
                           for k, v in state["state_dict"].items()}
    return state


def latest_checkpoint(model_dir):
    """Path of the file named in ``<model_dir>/checkpoint``, or None."""
    marker = os.path.join(model_dir, "checkpoint")
    if not os.path.isfile(marker):
        return None
    with open(marker) as f:
        name = f.read().strip()
    path = os.path.join(model_dir, name)
    return path if os.path.isfile(path) else None


def save_last(state, directory):
    """Write the rolling ``last.pth.tar`` of a run atomically."""
    return atomic_write(os.path.join(directory, LAST_NAME), lambda f: torch.save(state, f), binary=True)


def load_last(directory, map_location="cpu"):
    """The state of ``<directory>/last.pth.tar``, or None when there is none."""
    path = os.path.join(directory, LAST_NAME)
    if not os.path.isfile(path):
        return None
    state = safe_torch_load(path, map_location, what="last checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("models"), dict):
        raise CheckpointError(f"last checkpoint {path} holds no 'models'; expected the file croft writes after "
                              "each epoch")
    return state
