"""Installing the bridge: croft's methods and datasets in Dassl's registries, croft's keys in its config."""
import logging
import os
import sys

from .adapter import dassl_trainer_class
from .config import croft_config, extend_cfg
from .errors import HOOK_STATE, _excepthook
from .names import registered_methods

_STATE = {"installed": False}


class DasslNotFound(ImportError):
    """Dassl, or one of its import-time dependencies, is not importable (the message says how to get it)."""


#: Dassl's import-time dependencies beyond croft's requirements (requirements-dassl.txt).
DASSL_IMPORT_DEPS = "tabulate gdown tensorboard wilds pandas"


def _dassl_dataset_class(croft_name):
    """A Dassl ``DatasetBase`` that reads croft's dataset ``croft_name`` (for Dassl's own trainers)."""
    from dassl.data.datasets import DatasetBase, Datum

    def __init__(self, cfg):
        from ..data.datasets import DATASET_REGISTRY

        view = croft_config(cfg, check=False, dassl_only="ignore")
        dataset = DATASET_REGISTRY.get(croft_name).build(view)

        def convert(items):
            return [Datum(impath=d.impath, label=d.label, domain=d.domain,
                          classname=d.classname or dataset.classnames[d.label]) for d in items]

        self.croft_dataset = dataset
        self._train_x, self._train_u = convert(dataset.train_x), None
        self._val, self._test = convert(dataset.val), convert(dataset.test)
        self._num_classes = dataset.num_classes
        self._lab2cname = dict(enumerate(dataset.classnames))
        self._classnames = list(dataset.classnames)

    return type(croft_name, (DatasetBase,), {"__init__": __init__, "__module__": __package__,
                                             "__qualname__": croft_name, "_croft_bridge": True,
                                             "__doc__": f"croft's dataset {croft_name} for Dassl's trainers."})


def _register(registry, cls, what):
    name = cls.__name__
    if name in registry.registered_names():
        existing = registry.get(name)
        if getattr(existing, "_croft_bridge", False):
            return False  # installed already (another copy of this module)
        raise KeyError(f"croft.dassl_bridge: Dassl's {what} registry already has '{name}' ({existing.__module__}."
                       f"{existing.__qualname__}); croft registers its {what}s under other names (a method's "
                       f"dassl_name in register_method, croft.dassl_bridge.dassl_names())")
    registry.register(cls)
    return True


def _dassl_missing(exc):
    missing = getattr(exc, "name", None) or ""
    if missing == "dassl" or missing.startswith("dassl."):
        where = os.environ.get("CROFT_DASSL_PATH", "")
        bad_path = (f"CROFT_DASSL_PATH={where} has no dassl/ package; "
                    if where and not os.path.isdir(os.path.join(where, "dassl")) else "")
        return DasslNotFound(
            f"croft's Dassl bridge needs Dassl, which is not importable ({exc}): {bad_path}get it with "
            "`git clone https://github.com/KaiyangZhou/Dassl.pytorch`, then set CROFT_DASSL_PATH=/path/to/Dassl.pytorch "
            f"(or put that folder on PYTHONPATH) and `pip install {DASSL_IMPORT_DEPS}` (croft's requirements-dassl.txt)")
    return DasslNotFound(
        f"croft's Dassl bridge: Dassl is there but one of its import-time dependencies is not ({exc}): "
        f"`pip install {DASSL_IMPORT_DEPS}` (croft's requirements-dassl.txt)")


def _dassl_on_path():
    """Make ``dassl`` importable from ``CROFT_DASSL_PATH`` when it is not already."""
    try:
        import dassl  # noqa: F401
    except ImportError:
        path = os.environ.get("CROFT_DASSL_PATH", "")
        if path and os.path.isdir(path) and path not in sys.path:
            sys.path.insert(0, os.path.abspath(path))


def install():
    """Extend Dassl's default config, register croft's trainers and datasets, re-enable logging, and
    make croft's expected errors one ``error:`` line (:func:`~croft.dassl_bridge.errors._excepthook`).
    Idempotent.

    Raises :class:`DasslNotFound` (an ``ImportError``) when Dassl or its dependencies are missing."""
    if _STATE["installed"]:
        return
    try:
        import dassl.config
        import dassl.engine
        from dassl.data.datasets import DATASET_REGISTRY as DASSL_DATASETS
        from dassl.engine import TRAINER_REGISTRY as DASSL_TRAINERS
    except ImportError as exc:
        raise _dassl_missing(exc) from exc
    # dassl/data/datasets/dg/wilds/wilds_base.py runs logging.disable(logging.WARNING) when imported.
    logging.disable(logging.NOTSET)
    from ..data.datasets import DATASET_REGISTRY as CROFT_DATASETS

    from ..engine.registration import on_register

    extend_cfg(dassl.config.defaults._C)
    registered_methods()  # croft's own methods first, then any registered later
    on_register(lambda registration: _register(DASSL_TRAINERS, dassl_trainer_class(registration.name), "trainer"))
    for name in CROFT_DATASETS.keys():
        # croft's readers of CoOp's datasets keep CoOp's names: CoOp registers its own, after install().
        if name not in DASSL_DATASETS.registered_names() and getattr(CROFT_DATASETS.get(name),
                                                                     "dassl_bridge_registers", True):
            _register(DASSL_DATASETS, _dassl_dataset_class(name), "dataset")
    if sys.excepthook is not _excepthook:
        HOOK_STATE["previous_excepthook"] = sys.excepthook
        sys.excepthook = _excepthook
    _STATE["installed"] = True
