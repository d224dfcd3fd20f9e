"""The score context of a run: what the open-set scores need besides a sample's own outputs.

A :class:`~croft.evaluation.scores.ScoreContext` holds the state of the stateful scores (the KNN
bank and its ``k``) and their settings (the MCM temperature). It is set up **once** per run, from
the run's ID features, by :func:`setup_score_context`, the one place that fills it:

- the evaluator scores the ID test samples and every open-set set with it (``scores.npz``);
- the detector thresholds (:mod:`.detector`) score the ID val samples with it, and write it into
  the run folder, ``score_context.npz`` (:func:`save_score_context`);
- ``croft.predict`` scores new images with the saved context (:func:`load_score_context`), so a
  predicted score equals the one the evaluation wrote for the same image.

A score that needs new state adds a field to ``ScoreContext`` and fills it in
:func:`setup_score_context`; a field that holds an array (a tensor) or a number is saved and loaded
with the run as it is.
"""
import dataclasses
import os
import zipfile

import numpy as np

from ..utils.layout import SCORE_CONTEXT_FILE
from ..utils.atomic import atomic_write
from .scores import ScoreContext

__all__ = ["ScoreContext", "SCORE_CONTEXT_FILE", "setup_score_context", "save_score_context", "load_score_context"]


def setup_score_context(cfg, protocol, dataset, val_out, infer, logger=None):
    """The run's :class:`ScoreContext` under ``cfg.TEST``: the MCM temperature, and for ``knn`` (when in
    ``TEST.OOD_SCORES``) the protocol's bank (``protocol.knn_bank(dataset, val_out, infer)``, the val
    features themselves for ``TEST.KNN_BANK val``) with ``k = min(TEST.KNN_K, bank size)``."""
    context = ScoreContext(knn_k=cfg.TEST.KNN_K, mcm_temperature=cfg.TEST.MCM_TEMPERATURE)
    if "knn" in cfg.TEST.OOD_SCORES:
        context.knn_bank = protocol.knn_bank(dataset, val_out, infer)
        if context.knn_k > len(context.knn_bank):
            if logger is not None:
                logger.info(f"KNN: TEST.KNN_K={context.knn_k} exceeds the bank size {len(context.knn_bank)}; "
                            f"using k={len(context.knn_bank)}")
            context.knn_k = len(context.knn_bank)
    return context


def _as_array(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def save_score_context(context, run_dir):
    """Write ``context`` to ``run_dir/score_context.npz`` atomically (each field that is set: arrays as
    they are, numbers as 0-d arrays); returns the path."""
    arrays = {f.name: _as_array(getattr(context, f.name)) for f in dataclasses.fields(context)
              if getattr(context, f.name) is not None}
    path = os.path.join(run_dir, SCORE_CONTEXT_FILE)
    atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)
    return path


def load_score_context(run_dir):
    """The :class:`ScoreContext` saved in ``run_dir`` (arrays as float32 CPU tensors, numbers as the
    field's type), or None when the run saved none (written before croft saved it).

    ValueError naming the file and the field for a file that does not hold a score context."""
    import torch

    path = os.path.join(run_dir, SCORE_CONTEXT_FILE)
    if not os.path.isfile(path):
        return None
    defaults = ScoreContext()
    values = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for name in data.files:
                if not hasattr(defaults, name):
                    raise ValueError(f"{path}: unknown score context field {name!r}; expected fields of "
                                     f"{', '.join(f.name for f in dataclasses.fields(defaults))}")
                array = data[name]
                default = getattr(defaults, name)
                if array.ndim == 0 and isinstance(default, (int, float)) and not isinstance(default, bool):
                    values[name] = type(default)(array.item())
                else:
                    values[name] = torch.from_numpy(np.ascontiguousarray(array)).float()
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: unreadable score context ({exc})") from None
    return ScoreContext(**values)
