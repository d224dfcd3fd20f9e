"""Checkpoints in Dassl's layout, ``<dir>/<model name>/{model-best.pth.tar, model.pth.tar-<E>, checkpoint}``,
plus croft's rolling ``<dir>/last.pth.tar``: every model, optimizer, scheduler, the best-so-far record
and the RNG states after the last completed epoch, in one atomically written file, so a run killed
at any point resumes from its last completed epoch with the same numbers as an uninterrupted run.

Files are read with ``torch.load(weights_only=True)``: plain tensors and containers only, no code.

Checkpoints written by the original CRoFT code, and by Dassl in general, may pickle objects next
to the weights (a scheduler object, or a scheduler state holding its successor scheduler object),
which ``weights_only`` refuses. :func:`safe_torch_load` then reads the file once more with a
*restricted unpickler* (:class:`RestrictedUnpickler`): torch's own list of safe globals (tensor
and storage rebuilders, ``OrderedDict``, ...) resolves as usual, and every other global becomes an
inert placeholder class. A placeholder may be *reconstructed* (``NEWOBJ`` + its state, which is
how a plain object such as an LR scheduler is pickled): no code of the original class runs, the
object is only recorded. *Calling* a placeholder (``REDUCE``: a ``__reduce__`` that calls
``os.system``, ``eval``, ``subprocess.Popen``, ...) is refused before anything runs, with a
:class:`~croft.utils.errors.CheckpointError`. Nothing is executed in either case, and there is no
option to execute a pickle.

Of such a file croft keeps only plain data: the ``state_dict`` tensors, numbers such as ``epoch``
and ``val_result``, and every other entry made of tensors and plain containers only (a Dassl
``optimizer`` state dict). Entries that hold a placeholder (the pickled scheduler) are dropped and
listed under :data:`DROPPED_KEY`; on resume the trainer replays the LR schedule to the
checkpoint's epoch instead (:func:`fast_forward_scheduler`).
"""
import os
import pickle
import types
import warnings

import torch

from ..utils.layout import BEST_NAME, CHECKPOINT_MARKER, LAST_NAME, epoch_file_name
from ..utils.atomic import atomic_write, atomic_write_text
from ..utils.errors import CheckpointError

#: Key of a loaded checkpoint that lists the entries the restricted unpickler could not keep
#: (``{entry: what it held}``); absent for plain files.
DROPPED_KEY = "dropped"


def save_checkpoint(state, model_dir, is_best=False, file_name=None):
    """Write ``state`` atomically; ``checkpoint`` names the latest epoch file."""
    os.makedirs(model_dir, exist_ok=True)
    file_name = BEST_NAME if is_best else (file_name or epoch_file_name(state["epoch"]))
    path = os.path.join(model_dir, file_name)
    atomic_write(path, lambda f: torch.save(state, f), binary=True)
    if not is_best:
        atomic_write_text(os.path.join(model_dir, CHECKPOINT_MARKER), file_name + "\n")
    return path


# ---------------------------------------------------------------------- restricted unpickler
class RefusedGlobal(pickle.UnpicklingError):
    """A pickle that calls a global croft does not know (raised before the call happens)."""


class Placeholder:
    """Stands for an object of a class croft does not load (its ``__module__.__qualname__`` in ``global_name``).

    Reconstruction (``NEWOBJ``, then ``BUILD`` with the object's state) only records the arguments
    and the state: no code of the original class runs. Calling the class (``REDUCE``) is refused.
    """

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "_args", args)
        object.__setattr__(obj, "_state", None)
        return obj

    def __init__(self, *args, **kwargs):  # reached only when the pickle *calls* the global (REDUCE)
        raise RefusedGlobal(f"it calls {self.global_name}(...)")

    def __setstate__(self, state):
        object.__setattr__(self, "_state", state)

    def __repr__(self):
        return f"<{self.global_name} object, not loaded>"


_SAFE_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
                  "bytearray", "bool", "slice", "range"}


def _safe_defaultdict(factory=None, *args):
    """``collections.defaultdict`` (a pickled optimizer's ``state``), only with a plain factory."""
    import collections

    if factory is not None and not (isinstance(factory, type) and factory.__module__ == "builtins"
                                    and factory.__name__ in _SAFE_BUILTINS):
        raise RefusedGlobal(f"it builds a collections.defaultdict with the factory {factory!r}")
    return collections.defaultdict(factory, *args)


def _torch_safe_globals():
    """``{"module.name": object}`` that torch's weights-only unpickler resolves, plus user-added safe globals."""
    allowed = {}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed.update(_get_allowed_globals())
    except (ImportError, AttributeError):  # an older / newer torch: the minimum a state dict needs
        import collections

        import torch._utils as tu

        allowed.update({"collections.OrderedDict": collections.OrderedDict, "torch.Size": torch.Size,
                        "torch._utils._rebuild_tensor_v2": tu._rebuild_tensor_v2,
                        "torch._utils._rebuild_parameter": tu._rebuild_parameter})
    try:
        for obj in torch.serialization.get_safe_globals():
            obj = obj[0] if isinstance(obj, tuple) else obj
            allowed[f"{obj.__module__}.{obj.__qualname__}"] = obj
    except AttributeError:
        pass
    allowed["torch.device"] = torch.device
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves torch's safe globals; every other global becomes an inert :class:`Placeholder` subclass."""

    _allowed = None

    def find_class(self, module, name):
        if module in ("__builtin__", "builtins") and name in _SAFE_BUILTINS:
            import builtins

            return getattr(builtins, name)
        if module == "collections" and name == "defaultdict":
            return _safe_defaultdict
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _torch_safe_globals()
        full = f"{module}.{name}"
        if full in RestrictedUnpickler._allowed:
            return RestrictedUnpickler._allowed[full]
        return type(name.rsplit(".", 1)[-1], (Placeholder,), {"global_name": full, "__module__": __name__})


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


#: A ``pickle_module`` for ``torch.load`` that unpickles with :class:`RestrictedUnpickler`.
restricted_pickle = types.ModuleType("croft_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = _restricted_load
restricted_pickle.UnpicklingError = pickle.UnpicklingError


def _describe(obj):
    if isinstance(obj, Placeholder):
        return f"a pickled {obj.global_name} object"
    if isinstance(obj, type) and issubclass(obj, Placeholder):
        return f"a reference to {obj.global_name}"
    return type(obj).__name__


def _foreign(obj, depth=0):
    """The first non-plain thing inside ``obj`` (a placeholder), or None when it is tensors and plain data."""
    if depth > 100:
        return obj
    if isinstance(obj, Placeholder) or (isinstance(obj, type) and issubclass(obj, Placeholder)):
        return obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _foreign(key, depth + 1)
            if found is None:
                found = _foreign(value, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(obj, (list, tuple, set, frozenset)):
        for value in obj:
            found = _foreign(value, depth + 1)
            if found is not None:
                return found
        return None
    return None


def restricted_torch_load(path, map_location="cpu"):
    """``torch.load`` of ``path`` through :class:`RestrictedUnpickler` (no code runs); the raw result,
    placeholders included. :class:`RefusedGlobal` when the file calls an unknown global."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, pickle_module=restricted_pickle, weights_only=False)


def plain_entries(state, path, what="checkpoint"):
    """The plain part of a restricted-loaded top-level dict: entries holding a placeholder are
    dropped (listed under :data:`DROPPED_KEY`); the ``state_dict`` must be plain tensors."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} is not a plain tensor checkpoint: it holds {_describe(state)}, not a "
                              "dict; croft loads only tensors and plain containers")
    kept, dropped = {}, {}
    for key, value in state.items():
        found = _foreign(value)
        if found is None:
            kept[key] = value
        elif key == "state_dict":
            raise CheckpointError(f"{what} {path} is not a plain tensor checkpoint: its state_dict holds "
                                  f"{_describe(found)}; croft loads only tensors")
        else:
            dropped[str(key)] = _describe(found)
    if dropped:
        kept[DROPPED_KEY] = dropped
        from ..utils.logging import get_logger

        get_logger().info(f'{what} "{path}": read its tensors and plain entries only; not loaded: '
                          + ", ".join(f"{k} ({v})" for k, v in dropped.items()))
    return kept


def safe_torch_load(path, map_location="cpu", what="checkpoint"):
    """``torch.load(weights_only=True)`` with one clear error for every file it cannot read.

    A file that ``weights_only`` refuses (pickled objects next to the weights, as the original
    CRoFT code writes) is read once more with :func:`restricted_torch_load`, which runs no code:
    its plain entries are returned (:func:`plain_entries`), or the file is refused when it calls
    code to load.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes); expected a file written by torch.save")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except Exception as exc:  # noqa: BLE001  (torch.load of a damaged file raises many kinds)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{what} {path} is truncated or not a torch file ({reason[:160]}); expected a "
                              "file written by torch.save") from None
    try:
        state = restricted_torch_load(path, map_location)
    except RefusedGlobal as exc:
        raise CheckpointError(
            f"{what} {path} is not a plain tensor checkpoint: {exc}, so it needs code to load; refused without "
            "running it. croft loads only tensors and plain containers (docs/reliability.md)") from None
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{what} {path} is not a plain tensor checkpoint: it needs code to load ({first[:160]}), and its "
            f"tensors could not be read without it ({reason[:160]}); croft loads only tensors and plain "
            "containers (docs/reliability.md)") from None
    return plain_entries(state, path, what)


def fast_forward_scheduler(scheduler, epochs):
    """Step a fresh per-epoch ``scheduler`` ``epochs`` times: its state after that many epochs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(max(0, int(epochs or 0)) - max(0, getattr(scheduler, "last_epoch", 0))):
            scheduler.step()


def load_checkpoint(path, map_location="cpu"):
    """A Dassl-layout checkpoint (croft's, Dassl's, or the original CRoFT code's): ``state_dict`` and
    the plain entries (``epoch``, ``val_result``, ``optimizer``, ...), never code."""
    state = safe_torch_load(path, map_location)
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint {path} holds no 'state_dict'; expected a Dassl-style checkpoint "
                              "(a dict with 'state_dict', 'epoch', ...)")
    bad = [k for k, v in state["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad and DROPPED_KEY in state:
        raise CheckpointError(f"checkpoint {path}: state_dict entries {bad[:5]} are not tensors; croft loads only "
                              "tensors")
    # Checkpoints written from DataParallel models carry a "module." prefix (docs/method.md §4.4).
    state["state_dict"] = {k[len("module."):] if k.startswith("module.") else k: v
                           for k, v in state["state_dict"].items()}
    return state


def latest_checkpoint(model_dir):
    """Path of the file named in ``<model_dir>/checkpoint``, or None."""
    marker = os.path.join(model_dir, CHECKPOINT_MARKER)
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
