"""The global random number generators (Python, NumPy, torch CPU and CUDA): save, restore, preserve.

:func:`rng_states` is what a training checkpoint stores (a resumed run draws what the uninterrupted
one would have); :func:`preserved_rng` keeps the caller's streams untouched by work that seeds or
draws (building a seeded backbone, Tip-Adapter's training-free cache).
"""
import contextlib
import random

import numpy as np
import torch


def rng_states(cuda=True):
    """The states of the global generators; with ``cuda``, CUDA's too when it is available."""
    np_state = np.random.get_state()
    # NumPy's key array as a tensor: checkpoints are read back with torch.load(weights_only=True).
    return {"python": random.getstate(), "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()),
                                                    int(np_state[2]), int(np_state[3]), float(np_state[4])),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if cuda and torch.cuda.is_available() else []}


def set_rng_states(states):
    """Restore what :func:`rng_states` returned (also after a round trip through a checkpoint file).

    CUDA states are restored only on a machine with as many CUDA devices as they were saved from.
    """
    # A checkpoint read back may hold the Python state's inner tuple as a list.
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in states["python"]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())
    if states.get("cuda") and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


@contextlib.contextmanager
def preserved_rng(cuda=True):
    """Restore the global generators' states on exit (also when the block raises).

    ``cuda=False`` leaves CUDA alone, so that a CPU-only caller never initialises it.
    """
    states = rng_states(cuda=cuda)
    try:
        yield
    finally:
        set_rng_states(states)
