"""Checkpoints in Dassl's layout: ``<dir>/<model name>/{model-best.pth.tar, model.pth.tar-<E>, checkpoint}``."""
import os

import torch

from ..utils.atomic import atomic_write, atomic_write_text

BEST_NAME = "model-best.pth.tar"


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


def load_checkpoint(path, map_location="cpu"):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
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
