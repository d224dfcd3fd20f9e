"""croft's trainers inside Dassl / CoOp: ``import croft.dassl_bridge`` or ``croft-dassl path/to/train.py ARGS``.

Imported only on request (nothing else in croft imports it). Importing it runs :func:`install`:

- **Config.** Dassl's default config (``dassl.config``) is extended with croft's keys by
  :func:`extend_cfg`: every key croft has and Dassl lacks is added at croft's default, nothing
  that exists is overwritten, and the four Dassl defaults that differ are converted
  (``MODEL.BACKBONE.PRETRAINED`` True -> ``"openai"``; ``TEST.FINAL_MODEL`` ``last_step`` ->
  ``best_val``; ``DATASET.VAL_PERCENT`` 0.1 -> 0.2; ``OPTIM.SGD_DAMPNING`` 0 -> 0.0). These are
  process-wide defaults, so Dassl's and CoOp's own trainers get them too (pass
  ``TEST.FINAL_MODEL last_step`` to keep their upstream selection). The extended config node also
  understands croft's YAML files (``_BASE_`` inheritance), accepts an int for a float key of croft
  (``TRAINER.CRoFT.lambda1 15`` -> 15.0, which plain yacs rejects), and takes either Dassl's bool or
  croft's string for ``MODEL.BACKBONE.PRETRAINED``: a bool stays a bool (Dassl's own backbones test
  it for truth, and the string ``"none"`` would be true), and croft's trainers read False as
  ``"none"`` and True as ``"openai"`` (:func:`croft_config`). When CoOp's ``extend_cfg`` replaces
  ``TRAINER.COOP`` / ``TRAINER.COCOOP`` with new nodes, croft's extra keys are merged into them
  (CoOp's values win); and Dassl's ``clean_cfg`` (``tools/train.py``) keeps croft's
  ``TRAINER.<group>`` nodes when the trainer is one of croft's.
- **Trainers.** croft's trainers are registered in Dassl's ``TRAINER_REGISTRY`` as
  ``Method + DasslAdapter + dassl.engine.TrainerX``, under names that do not clash with Dassl's
  or CoOp's: ``CRoFT``, ``CLIP_Adapter``, ``TIP_ADAPTER``, ``DPLCLIP`` as in croft, and
  ``CroftCoOp``, ``CroftCoCoOp``, ``CroftZeroshotCLIP`` (:data:`DASSL_NAMES`).
- **Datasets.** croft's datasets are registered in Dassl's ``DATASET_REGISTRY`` only under names
  Dassl has none of (Dassl's own ``PACS`` and ``VLCS`` stay Dassl's; croft's trainers always read
  croft's datasets, whatever Dassl registers), and never under the names of CoOp's 11 few-shot
  datasets (``dassl_bridge_registers = False``): CoOp's train.py registers its own readers after
  the bridge is installed.
- **Logging.** Importing Dassl runs ``logging.disable(logging.WARNING)`` (its wilds module), which
  silences every logger of the process; :func:`install` re-enables logging.
- **Errors.** What croft-train reports in one ``error:`` line is one line here too (:func:`_one_line`):
  croft's own errors, an unknown config key or wrong type, and a trainer name Dassl's registry lacks.
  ``croft-dassl`` exits with 2 (config) or 1; under the import line, :func:`install`'s
  ``sys.excepthook`` prints the line (Python's exit status 1). Other errors keep their traceback.
  ``croft-dassl --help`` and ``croft-dassl flatten`` (``_BASE_``-free copies of croft's YAMLs,
  :mod:`croft.config.flat_copy`) need no Dassl: the launcher installs the bridge only to run a script.

:class:`DasslAdapter` makes Dassl's ``TrainerX`` keep croft's engine contract
(``croft.engine.trainer.ENGINE_CONTRACT``): Dassl's own loop (``build_trainer(cfg).train()``)
drives the epochs, and the adapter's hooks give croft's numbers and files: a croft dataset and
croft's feature loaders (Dassl's loaders yield image dicts; croft's methods read frozen features),
``set_epoch`` and one LR step per epoch, ``retain_graph`` in ``model_backward_and_update``,
selection on the val loader only (strict improvement, best-epoch record), croft's checkpoints
(``last.pth.tar``, fingerprints, the original CRoFT code's files), ``load_model`` without a
``val_result``, and ``test()`` running croft's evaluator and results writer (``results.json``,
``scores.npz``, ``detector.json`` exactly as ``croft-train`` writes them).
"""
import copy
import difflib
import functools
import logging
import os
import runpy
import sys
import time
import traceback

from yacs.config import CfgNode

from .config.defaults import get_cfg_default as croft_cfg_default
from .config.merge import ConfigError, flatten
from .data.batch import Batch
from .engine.checkpoint import BEST_NAME
from .utils.logging import get_logger, setup_logger
from .engine.trainer import TrainerBase as _Engine
from .evaluation.inference import TRAINING, run_inference

#: croft trainer name -> its name in Dassl's TRAINER_REGISTRY (prefixed where CoOp has one of that name).
DASSL_NAMES = {"CRoFT": "CRoFT", "CLIP_Adapter": "CLIP_Adapter", "TIP_ADAPTER": "TIP_ADAPTER", "DPLCLIP": "DPLCLIP",
               "BCAL": "BCAL", "VLAD": "VLAD",
               "CoOp": "CroftCoOp", "CoCoOp": "CroftCoCoOp", "ZeroshotCLIP": "CroftZeroshotCLIP"}

#: Dassl defaults that differ from croft's and are converted by :func:`extend_cfg` while they are
#: still at Dassl's default: ``{key: (Dassl's default, croft's value)}``.
CONVERTED_DEFAULTS = {
    "TEST.FINAL_MODEL": ("last_step", "best_val"),
    "DATASET.VAL_PERCENT": (0.1, 0.2),
}
PRETRAINED_KEY = "MODEL.BACKBONE.PRETRAINED"

_STATE = {"installed": False}


# ====================================================================== config
@functools.lru_cache(maxsize=None)
def _croft_defaults():
    """``{dotted key: croft's default}`` (do not modify)."""
    return dict(flatten(croft_cfg_default()))


@functools.lru_cache(maxsize=None)
def _croft_float_keys():
    return frozenset(k for k, v in _croft_defaults().items() if isinstance(v, float))


@functools.lru_cache(maxsize=None)
def _croft_groups():
    """croft's ``TRAINER.<group>`` nodes (CRoFT, COOP, COCOOP, ...); do not modify (copy what you add)."""
    trainer = croft_cfg_default().TRAINER
    return {name: node for name, node in trainer.items() if isinstance(node, dict)}


def _pretrained_tag(value):
    """Dassl's bool ``MODEL.BACKBONE.PRETRAINED`` as croft's string (True -> ``openai``, False -> ``none``)."""
    if isinstance(value, bool):
        return "openai" if value else "none"
    return value


def _convert(full_key, value, current):
    """A value about to be merged into ``full_key`` (currently ``current``), in croft's types."""
    if (isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool)
            and full_key in _croft_float_keys()):
        return float(value)
    return value


class CroftTrainerNode(CfgNode):
    """``cfg.TRAINER`` of an extended config: merges croft's keys into replaced groups, survives ``clean_cfg``."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        groups = _croft_groups()
        if name in groups and isinstance(value, CfgNode):
            # CoOp's extend_cfg assigns a new empty node, then sets its own keys: croft's other
            # keys are added now, and CoOp's assignments that follow win.
            _add_missing(value, groups[name])

    def pop(self, key, *default):
        # Dassl's clean_cfg (tools/train.py) keeps only TRAINER.<NAME.upper()>; croft's trainers
        # read TRAINER.CRoFT, TRAINER.COOP, ... (not their upper-cased Dassl names).
        if key in _croft_groups() and key in self and dict.get(self, "NAME", "") in DASSL_NAMES.values():
            return self[key]
        return super().pop(key, *default)


class ConfigKeyError(ConfigError, KeyError):
    """An unknown config key: croft's :class:`~croft.config.ConfigError` (one ``error:`` line under
    ``croft-dassl``) and the ``KeyError`` that yacs raises, for Dassl/CoOp code that catches it."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class CroftDasslConfig(CfgNode):
    """The root of a Dassl config extended by :func:`extend_cfg`.

    ``merge_from_file`` reads croft's YAML files (``_BASE_`` inheritance, relative to each file) and
    plain Dassl/CoOp ones; ``merge_from_list`` and ``merge_from_file`` accept an int for a float key
    of croft, and a bool or a string for ``MODEL.BACKBONE.PRETRAINED``. Everything else is yacs':
    values are decoded as yacs decodes them, and unknown keys and wrong types are errors.
    """

    def _merge_item(self, full_key, raw, source):
        from yacs.config import _check_and_coerce_cfg_value_type

        *parents, leaf = full_key.split(".")
        node = self
        for part in parents:
            if not isinstance(node, CfgNode) or part not in node:
                raise self._unknown_key(full_key, source)
            node = node[part]
        if not isinstance(node, CfgNode) or leaf not in node:
            raise self._unknown_key(full_key, source)
        current = node[leaf]
        if isinstance(current, CfgNode):
            raise ConfigError(f"{source}: '{full_key}' is a config group, not a value; set one of its keys instead")
        value = CfgNode._decode_cfg_value(raw)
        if full_key == PRETRAINED_KEY and isinstance(value, (bool, str)):
            # Dassl's bool (its own backbones test it for truth) or croft's tag / path; croft's
            # trainers read False as "none" and True as "openai" (croft_config).
            node[leaf] = value
            return
        value = _convert(full_key, value, current)
        try:
            node[leaf] = _check_and_coerce_cfg_value_type(value, current, leaf, full_key)
        except ValueError:
            expected = "a list" if isinstance(current, (list, tuple)) else type(current).__name__
            raise ConfigError(f"{source}: wrong type for '{full_key}': got {value!r} ({type(value).__name__}), "
                              f"expected {expected} (now {current!r})") from None

    def _unknown_key(self, full_key, source):
        known = [key for key, _ in flatten(self)]
        close = difflib.get_close_matches(full_key, known, n=1, cutoff=0.8)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return ConfigKeyError(f"{source}: unknown config key '{full_key}' (not in Dassl's config with croft's "
                              f"keys){hint}")

    def merge_from_file(self, cfg_filename):
        from .config.merge import config_layers

        for source, items in config_layers(cfg_filename):
            for key, value in items:
                self._merge_item(key, value, source)

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2 != 0:
            raise ConfigError(f"command line: overrides must be KEY VALUE pairs, got an odd number of items: "
                              f"{list(cfg_list)}")
        for key, value in zip(cfg_list[0::2], cfg_list[1::2]):
            self._merge_item(key, value, "command line")


def _add_missing(node, defaults):
    """Add every key of ``defaults`` (a croft config node) that ``node`` lacks; never overwrite."""
    for key, value in defaults.items():
        if key not in node:
            dict.__setitem__(node, key, copy.deepcopy(value))
        elif isinstance(value, dict) and isinstance(node[key], CfgNode):
            _add_missing(node[key], value)


def _set(cfg, key, value):
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[part]
    dict.__setitem__(node, parts[-1], value)


def _get(cfg, key, default=None):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def extend_cfg(cfg):
    """Add croft's keys to the Dassl config ``cfg`` (in place; returns it). Idempotent.

    Adds every croft key that ``cfg`` lacks at croft's default and merges croft's keys into
    existing nodes (``TRAINER.COOP`` of CoOp), never overwriting a value. On the first call it
    converts what differs (module docstring): ``MODEL.BACKBONE.PRETRAINED`` at Dassl's default
    True to ``"openai"`` (False stays False: croft reads it as ``"none"``), ints in croft's float
    keys to floats, and the Dassl defaults of :data:`CONVERTED_DEFAULTS` that are still at Dassl's
    value. It also gives ``cfg`` croft's config node classes (``_BASE_``
    files, int -> float, CoOp's ``TRAINER`` nodes, ``clean_cfg``); a config already extended keeps
    its values, so a second call changes nothing.
    """
    frozen = cfg.is_frozen()
    cfg.defrost()
    first = not isinstance(cfg, CroftDasslConfig)
    defaults = croft_cfg_default()
    _add_missing(cfg, defaults)
    if first:
        flat_defaults = dict(flatten(defaults))
        for key, (dassl_value, croft_value) in CONVERTED_DEFAULTS.items():
            value = _get(cfg, key)
            if value == dassl_value and type(value) is type(dassl_value):
                _set(cfg, key, croft_value)
        if _get(cfg, PRETRAINED_KEY) is True:  # Dassl's default; False stays a bool (see the docstring)
            _set(cfg, PRETRAINED_KEY, "openai")
        for key, default in flat_defaults.items():
            value = _get(cfg, key)
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                _set(cfg, key, float(value))
        if type(cfg) is CfgNode:
            object.__setattr__(cfg, "__class__", CroftDasslConfig)
        if type(cfg.TRAINER) is CfgNode:
            object.__setattr__(cfg.TRAINER, "__class__", CroftTrainerNode)
    if frozen:
        cfg.freeze()
    return cfg


def croft_config(cfg, croft_name=None, check=True, dassl_only="refuse"):
    """croft's config tree (frozen) with the values of the Dassl config ``cfg``.

    Every croft key takes ``cfg``'s value (converted: Dassl's bool ``PRETRAINED``, ints in float
    keys); a key ``cfg`` lacks keeps croft's default (a warning names a missing ``TRAINER`` group of
    the run's trainer, e.g. one removed by a ``clean_cfg`` that ran before :func:`install`).
    ``TRAINER.NAME`` becomes ``croft_name`` (croft's name of the trainer, e.g. ``CoOp`` for
    ``CroftCoOp``), so fingerprints and ``results.json`` are those of ``croft-train``. Dassl keys that
    croft does not have are refused when set to anything but Dassl's default (``dassl_only="refuse"``;
    ``"ignore"`` for a dataset read on behalf of Dassl's own trainers). With ``check``:
    croft's value checks (:func:`croft.config.validate_cfg`) and run checks
    (:func:`croft.engine.checks.check_cfg`), as ``croft-train`` runs them.
    """
    from .config import validate_cfg
    from .config.merge import _coerce

    out = croft_cfg_default()
    given = dict(flatten(cfg))
    for key, default in flatten(out):
        if key == "TRAINER.NAME" or key not in given:
            continue
        value = given[key]
        if key == PRETRAINED_KEY:
            value = _pretrained_tag(value)
        _set(out, key, _coerce(key, value, default, "Dassl config"))
    name = croft_name or given.get("TRAINER.NAME", "")
    out.TRAINER.NAME = name
    group = next((g for g in (name, name.upper()) if g in _croft_groups()), None)
    if group is not None and not any(k.startswith(f"TRAINER.{group}.") for k in given):
        get_logger().warning(f"warning: the Dassl config has no TRAINER.{group} (removed by clean_cfg, or built "
                             f"without croft.dassl_bridge.extend_cfg); croft's defaults of TRAINER.{group} are used")
    if dassl_only == "refuse":
        _refuse_dassl_only_keys(given)
    if check:
        validate_cfg(out)
        if croft_name is not None:
            from .engine.checks import check_cfg

            check_cfg(out)
    out.freeze()
    return out


def _refuse_dassl_only_keys(given):
    """Dassl keys that croft does not have (Dassl's extra transforms, train_u, ...) must stay at Dassl's default."""
    from .config import ConfigError

    try:
        from dassl.config import get_cfg_default as dassl_default
    except ImportError:
        return
    croft_keys = _croft_defaults()
    dassl = dict(flatten(dassl_default()))
    bad = [(k, v, dassl[k]) for k, v in given.items()
           if k not in croft_keys and k in dassl and not k.startswith("TRAINER.") and k != "VERSION" and v != dassl[k]]
    if bad:
        raise ConfigError("\n".join(
            f"'{k}' is a Dassl key that croft's trainers do not have (got {v!r}; Dassl's default {d!r}); "
            "remove it from the config or the command line" for k, v, d in bad))


# ====================================================================== the adapter
class DasslAdapter:
    """Mixin over ``dassl.engine.TrainerX`` that keeps croft's engine contract.

    A registered Dassl trainer is ``Method + DasslAdapter + TrainerX`` (:func:`dassl_trainer_class`).
    Dassl's ``SimpleTrainer.__init__`` and ``TrainerBase.train`` loop run as they are; the adapter
    fills their hooks with croft's engine (the functions of :class:`croft.engine.trainer.TrainerBase`,
    called on this trainer), so the run gives the numbers and files of ``croft-train``:

    ==============================  =======================================================
    Dassl                           adapter
    ==============================  =======================================================
    ``build_data_loader`` (Dassl's  croft's dataset before ``build_model``; croft's
    DataManager, image dicts)       DataManager of frozen features after it
    ``model_backward_and_update``   + ``retain_graph`` (CRoFT's double backprop)
    ``run_epoch``                   croft's: ``set_epoch`` (shuffle, augmented view),
                                    one LR step after the epoch's batches
    ``after_epoch``                 selection on the val loader only (never the test set),
                                    strict improvement, best-epoch record, ``last.pth.tar``,
                                    ``metrics.jsonl``
    ``after_train`` (``test()``)    croft's evaluator + results writer: ``results.json``,
                                    ``scores.npz``, ``detector.json``
    ``test(split)``                 final evaluation (results files), or val accuracy
    ``parse_batch_*``               a Dassl image dict -> croft ``Batch`` (frozen encoder)
    ``model_inference``             logits tensor (for Dassl's evaluator)
    ``load_model``                  croft's loader (no ``val_result`` needed, the original
                                    CRoFT code's files), ``--model-dir`` fingerprint check
    ``resume_model_if_exist``       croft's (``last.pth.tar``, RNG states, Dassl layout)
    ``save_model``                  croft's checkpoints (fingerprint, best record)
    ==============================  =======================================================
    """

    trains = True
    #: croft's name of the method (set on the generated classes).
    croft_name = None

    def __init__(self, cfg, dataset=None):
        install()
        setup_logger()  # on the current stdout: Dassl's setup_logger tees it into OUTPUT_DIR/log.txt
        self.logger = get_logger()
        self.dassl_cfg = cfg
        croft_cfg = croft_config(cfg, self.croft_name)
        from .engine.fingerprint import make_fingerprint

        self.timing = {"train_s": 0.0, "eval_s": 0.0}
        self.best_epoch = None
        self.best_val_accuracy = None
        self.fingerprint = make_fingerprint(croft_cfg)
        self._given_dataset = dataset
        self._train_started = None
        self._epoch_started = None
        self._epoch_meters = {}
        _check_folders(croft_cfg, self.fingerprint, self.logger)
        super().__init__(croft_cfg)  # Dassl's SimpleTrainer: check_cfg, device, build_data_loader, build_model
        if getattr(self.dataset, "has_items", True):
            _Engine.build_data_loader(self)  # croft's DataManager, once the method's feature source exists
        from .train import save_config

        save_config(self.cfg)  # config.yaml and fingerprint.json, as croft-train writes them

    @classmethod
    def check_cfg(cls, cfg):
        _Engine.check_cfg.__func__(cls, cfg)

    # ------------------------------------------------------------------ building (Dassl hooks)
    def build_data_loader(self):
        """Dassl calls this before ``build_model``: croft's dataset now, its loaders after ``build_model``."""
        from .data.datasets import build_dataset
        from .data.verify import verify_images

        if self._given_dataset is None:
            self.dataset = build_dataset(self.cfg)
            verify_images(self.dataset, self.cfg.DATASET.NAME)
            self.warn_about_shots()
        else:
            self.dataset = self._given_dataset
        self.num_classes = self.dataset.num_classes
        self.classnames = self.dataset.classnames
        self.lab2cname = dict(enumerate(self.classnames))
        self.num_source_domains = len(getattr(self.dataset, "source_domains", ()) or ())
        self.dm = self.train_loader_x = self.val_loader = self.test_loader = None
        self.train_loader_u = None

    # croft's engine, called on this trainer (TrainerBase's functions use nothing but the contract).
    warn_about_shots = _Engine.warn_about_shots
    register_model = _Engine.register_model
    get_model_names = _Engine.get_model_names
    build_optimizer_and_scheduler = _Engine.build_optimizer_and_scheduler
    model_zero_grad = _Engine.model_zero_grad
    model_backward = _Engine.model_backward
    model_update = _Engine.model_update
    model_backward_and_update = _Engine.model_backward_and_update
    update_lr = _Engine.update_lr
    set_model_mode = _Engine.set_model_mode
    batch_stats = staticmethod(_Engine.batch_stats)
    record_epoch = _Engine.record_epoch
    save_last = _Engine.save_last
    prepare_to_load = _Engine.prepare_to_load
    _load_models = _Engine._load_models
    resume_model_if_exist = _Engine.resume_model_if_exist
    evaluate_and_write_results = _Engine.evaluate_and_write_results

    def get_current_lr(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                return self._optims[name].param_groups[0]["lr"]
        return 0.0

    # ------------------------------------------------------------------ batches
    def to_croft_batch(self, batch):
        """A croft :class:`~croft.data.batch.Batch` of features of ``batch``: as is, a croft batch of images or
        a Dassl image dict (``img``, ``label``, ``domain``, ``impath``, ``index``) through the method's ``encode``."""
        import dataclasses

        import torch

        if isinstance(batch, Batch):
            if batch.features is None:
                return dataclasses.replace(batch, features=self.encode(batch.images))
            return batch
        images = batch["img"]
        if isinstance(images, (list, tuple)):  # DATALOADER.K_TRANSFORMS > 1: the first view
            images = images[0]
        features = self.encode(images.to(self.device))
        labels = batch["label"].to(self.device)
        domains = batch["domain"].to(self.device) if "domain" in batch else torch.zeros_like(labels)
        indices = batch["index"] if "index" in batch else torch.arange(len(labels))
        return Batch(features=features, labels=labels, domains=domains, impaths=list(batch.get("impath", [])),
                     indices=indices)

    def parse_batch_train(self, batch):
        """``(features, labels)`` of a croft ``Batch`` or a Dassl image dict."""
        batch = self.to_croft_batch(batch)
        return batch.features, batch.labels

    def parse_batch_test(self, batch):
        batch = self.to_croft_batch(batch)
        return batch.features, batch.labels

    def model_inference(self, input):
        """Logits (a tensor, as Dassl's evaluator expects) of frozen features or of images."""
        features = input
        if input.dim() == 4:
            features = self.encode(input.to(self.device))
        return self.inference(features, TRAINING).logits

    # ------------------------------------------------------------------ the loop (Dassl hooks)
    def before_train(self):
        _Engine.before_train(self)

    def before_epoch(self):
        now = time.time()
        if self._train_started is None:
            self._train_started = now
        self._epoch_started = now

    def run_epoch(self):
        self._epoch_meters = _Engine.run_epoch(self)
        return self._epoch_meters

    def after_epoch(self):
        val_accuracy = _Engine.after_epoch(self)
        self.record_epoch(self._epoch_meters, val_accuracy, time.time() - (self._epoch_started or time.time()))
        self.save_last()
        return val_accuracy

    def after_train(self):
        if self._train_started is not None:
            self.timing["train_s"] += time.time() - self._train_started
            self._train_started = None
        _Engine.after_train(self)

    def test(self, split=None):
        """``split`` None or ``"test"``: the final evaluation (croft's evaluator, results files);
        returns the test accuracy. ``"val"``: the val accuracy under the training settings."""
        if split == "val":
            if self.val_loader is None:
                raise ValueError(f"dataset {self.cfg.DATASET.NAME} has no val split; croft never selects on the "
                                 "test set")
            return run_inference(self, self.val_loader, TRAINING, "val", self.num_classes).accuracy
        results = self.evaluate_and_write_results()
        return results["closed_set"]["test_accuracy"]

    # ------------------------------------------------------------------ checkpoints
    def save_model(self, epoch, directory=None, is_best=False, val_result=None, model_name=""):
        """croft's checkpoints; accepts croft's ``(epoch, is_best=, val_result=)`` and Dassl's
        ``(epoch, directory, is_best, val_result, model_name)`` calls (``directory`` = OUTPUT_DIR)."""
        if isinstance(directory, bool):  # croft's positional is_best
            directory, is_best = None, directory
        if directory and os.path.abspath(directory) != os.path.abspath(self.output_dir):
            raise ValueError(f"croft's trainers save their checkpoints in OUTPUT_DIR ({self.output_dir}), "
                             f"not {directory}")
        _Engine.save_model(self, epoch, is_best=is_best or model_name == BEST_NAME, val_result=val_result)

    def load_model(self, directory, epoch=None):
        """croft's ``load_model``; ``directory`` is checked as ``--model-dir`` (fingerprint) unless it is OUTPUT_DIR."""
        if not directory:
            if self.trains:
                raise ValueError(f"--eval-only with trainer {type(self).__name__} needs --model-dir (the folder of a "
                                 "trained run)")
            return
        if os.path.abspath(directory) != os.path.abspath(self.output_dir):
            from .engine.run_folder import check_source_dir

            check_source_dir(directory, self.fingerprint, "--model-dir", self.logger)
        _Engine.load_model(self, directory, epoch=epoch)


def _check_folders(cfg, fingerprint, logger):
    """croft-train's folder checks (``croft/engine/run_folder.py``) before anything is built."""
    from .engine.run_folder import check_output_dir, check_source_dir

    if cfg.RESUME:
        check_source_dir(cfg.RESUME, fingerprint, "--resume", logger)
    check_output_dir(cfg.OUTPUT_DIR, fingerprint)


# ====================================================================== registration
def methods():
    """croft trainer name -> its engine-independent method class."""
    from .trainers import METHODS

    return dict(METHODS)


def dassl_trainer_class(croft_name):
    """The Dassl trainer of croft's method ``croft_name``: ``Method + DasslAdapter + TrainerX``,
    named :data:`DASSL_NAMES` ``[croft_name]`` (Dassl's ``register()`` uses the class name)."""
    from dassl.engine import TrainerX

    name = DASSL_NAMES[croft_name]
    method = methods()[croft_name]
    return type(name, (method, DasslAdapter, TrainerX), {
        "__module__": __name__, "__qualname__": name, "croft_name": croft_name, "_croft_bridge": True,
        "__doc__": f"croft's {croft_name} ({method.__name__}) as a Dassl TrainerX (croft.dassl_bridge)."})


def _dassl_dataset_class(croft_name):
    """A Dassl ``DatasetBase`` that reads croft's dataset ``croft_name`` (for Dassl's own trainers)."""
    from dassl.data.datasets import DatasetBase, Datum

    def __init__(self, cfg):
        from .data.datasets import DATASET_REGISTRY

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

    return type(croft_name, (DatasetBase,), {"__init__": __init__, "__module__": __name__, "__qualname__": croft_name,
                                             "_croft_bridge": True,
                                             "__doc__": f"croft's dataset {croft_name} for Dassl's trainers."})


def _register(registry, cls, what):
    name = cls.__name__
    if name in registry.registered_names():
        existing = registry.get(name)
        if getattr(existing, "_croft_bridge", False):
            return False  # installed already (another copy of this module)
        raise KeyError(f"croft.dassl_bridge: Dassl's {what} registry already has '{name}' ({existing.__module__}."
                       f"{existing.__qualname__}); croft registers its {what}s under the names of "
                       f"croft.dassl_bridge.DASSL_NAMES")
    registry.register(cls)
    return True


class DasslNotFound(ImportError):
    """Dassl, or one of its import-time dependencies, is not importable (the message says how to get it)."""


#: Dassl's import-time dependencies beyond croft's requirements (requirements-dassl.txt).
DASSL_IMPORT_DEPS = "tabulate gdown tensorboard wilds pandas"


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


def install():
    """Extend Dassl's default config, register croft's trainers and datasets, re-enable logging, and
    make croft's expected errors one ``error:`` line (:func:`_excepthook`). Idempotent.

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
    from . import trainers  # noqa: F401  (croft's registries)
    from .data.datasets import DATASET_REGISTRY as CROFT_DATASETS

    extend_cfg(dassl.config.defaults._C)
    for croft_name in DASSL_NAMES:
        _register(DASSL_TRAINERS, dassl_trainer_class(croft_name), "trainer")
    for name in CROFT_DATASETS.keys():
        # croft's readers of CoOp's datasets keep CoOp's names: CoOp registers its own, after install().
        if name not in DASSL_DATASETS.registered_names() and getattr(CROFT_DATASETS.get(name),
                                                                     "dassl_bridge_registers", True):
            _register(DASSL_DATASETS, _dassl_dataset_class(name), "dataset")
    if sys.excepthook is not _excepthook:
        _STATE["previous_excepthook"] = sys.excepthook
        sys.excepthook = _excepthook
    _STATE["installed"] = True


# ====================================================================== one-line errors
_CROFT_DIR = os.path.dirname(os.path.abspath(__file__))


def _unknown_trainer(exc):
    """The message for Dassl's ``build_trainer`` refusing ``TRAINER.NAME`` (its registry lacks it), else None."""
    if not isinstance(exc, (KeyError, ValueError)):
        return None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_name != "build_trainer" or frame.f_globals.get("__name__") != "dassl.engine.build":
            continue
        registry, cfg = frame.f_globals.get("TRAINER_REGISTRY"), frame.f_locals.get("cfg")
        name = _get(cfg, "TRAINER.NAME") if isinstance(cfg, dict) else None
        if registry is None or not isinstance(name, str) or name in registry.registered_names():
            return None
        names = registry.registered_names()
        ours = [n for n in DASSL_NAMES.values() if n in names]
        others = sorted(n for n in names if n not in ours)
        close = difflib.get_close_matches(name, names, n=1)
        what = f"unknown trainer '{name}'" if name else "no trainer given"
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return (f"{what} (--trainer / TRAINER.NAME); croft's trainers in Dassl: {', '.join(ours)}; "
                f"Dassl's and the script's: {', '.join(others)}{hint}")
    return None


def _passes_through_croft(exc):
    """Whether a frame of croft's code (not this launcher's) is on ``exc``'s traceback."""
    launcher = {main.__code__, _excepthook.__code__}
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        code = frame.f_code
        if code not in launcher and os.path.abspath(code.co_filename).startswith(_CROFT_DIR + os.sep):
            return True
    return False


def _one_line(exc):
    """``(line, exit status)`` for the errors croft-train reports in one line, else None (a traceback)."""
    from .utils.cli import EXPECTED_ERRORS, error_message

    message = _unknown_trainer(exc)
    if message is not None:
        return f"error: {message}", 2
    if isinstance(exc, ConfigError):
        return f"error: {error_message(exc)}", 2
    if isinstance(exc, EXPECTED_ERRORS) and _passes_through_croft(exc):
        return f"error: {error_message(exc)} (set CROFT_TRACEBACK=1 for the traceback)", 1
    return None


def _dassl_log_file():
    """The ``log.txt`` that Dassl's ``setup_logger`` tees stdout into, if it did."""
    out = sys.stdout
    if type(out).__module__ == "dassl.utils.logger":
        return getattr(out, "file", None)
    return None


def _report(exc):
    """Print ``exc`` as one ``error:`` line (its traceback to Dassl's log.txt) and return the exit
    status, as croft-train does; None for an error that keeps its traceback (or ``CROFT_TRACEBACK=1``)."""
    if os.environ.get("CROFT_TRACEBACK") or not isinstance(exc, Exception):
        return None
    found = _one_line(exc)
    if found is None:
        return None
    line, status = found
    log = _dassl_log_file()
    if log is not None:
        try:
            log.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + line + "\n")
            log.flush()
        except (OSError, ValueError):
            pass
    sys.stdout.flush()
    print(line, file=sys.stderr)
    return status


def _excepthook(exc_type, exc, tb):
    """``sys.excepthook`` while the bridge is installed: croft's expected errors in one line (exit status 1)."""
    if exc is _STATE.get("kept_traceback") or _report(exc) is None:
        _STATE.get("previous_excepthook", sys.__excepthook__)(exc_type, exc, tb)


# ====================================================================== launcher
FLATTEN = "flatten"

USAGE = """usage: croft-dassl path/to/train.py [ARGS ...]
       croft-dassl flatten CONFIG.yaml [-o OUT.yaml]

Run an unchanged Dassl/CoOp train.py (e.g. CoOp's train.py, Dassl's tools/train.py) with croft's
trainers and config keys installed (croft.dassl_bridge.install()). ARGS are the script's own:
--root, --trainer CRoFT, --config-file, --output-dir, --eval-only --model-dir, KEY VALUE ...
Dassl must be importable (installed, on PYTHONPATH, or its folder in CROFT_DASSL_PATH).

`flatten` writes a copy of a croft YAML file without _BASE_ (its bases merged in), for code that
merges YAML files with plain yacs; it needs no Dassl. (Run a script named `flatten` as ./flatten.)"""


def _flatten_main(argv):
    """``croft-dassl flatten CONFIG.yaml [-o OUT.yaml]``: the flat copy to OUT.yaml or stdout."""
    import argparse

    from .config.flat_copy import flat_yaml
    from .utils.atomic import atomic_write_text

    parser = argparse.ArgumentParser(
        prog="croft-dassl flatten",
        description="Write a copy of a croft YAML config without _BASE_ (its bases merged in, values as croft "
                    "merges them), which plain yacs (Dassl's, CoOp's cfg.merge_from_file) can merge into a "
                    "config that has croft's keys.")
    parser.add_argument("config", help="a croft YAML config file (with or without _BASE_)")
    parser.add_argument("-o", "--output", default="", help="the file to write (default: standard output)")
    args = parser.parse_args(argv)
    if (args.output and os.path.exists(args.output) and os.path.exists(args.config)
            and os.path.samefile(args.output, args.config)):
        print(f"error: -o {args.output} is the config being flattened; expected another file", file=sys.stderr)
        return 2
    try:
        text = flat_yaml(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        atomic_write_text(args.output, text)
    except OSError as exc:
        print(f"error: cannot write {args.output} ({exc.strerror or exc}); expected a writable file path",
              file=sys.stderr)
        return 1
    return 0


def _dassl_on_path():
    """Make ``dassl`` importable from ``CROFT_DASSL_PATH`` when it is not already."""
    try:
        import dassl  # noqa: F401
    except ImportError:
        path = os.environ.get("CROFT_DASSL_PATH", "")
        if path and os.path.isdir(path) and path not in sys.path:
            sys.path.insert(0, os.path.abspath(path))


def main(argv=None):
    """``croft-dassl path/to/train.py ARGS...``: ``install()``, then run the script as ``__main__``;
    ``croft-dassl flatten ...``: :func:`_flatten_main`. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == FLATTEN:
        return _flatten_main(argv[1:])
    script = os.path.abspath(argv[0])
    if not os.path.isfile(script):
        print(f"error: {argv[0]} is not a file; expected a Dassl/CoOp train.py (or `flatten`)", file=sys.stderr)
        return 2
    _dassl_on_path()
    try:
        install()
    except DasslNotFound as exc:
        if os.environ.get("CROFT_TRACEBACK"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.argv = [script] + argv[1:]
    sys.path.insert(0, os.path.dirname(script))  # as `python train.py` does: its datasets/, trainers/ import
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:
        status = _report(exc)
        if status is None:
            _STATE["kept_traceback"] = exc  # judged here; python -m's frames must not make it croft's
            raise
        return status
    return 0


def _run_by_launcher():
    """Whether this import comes from the launcher (``python -m croft.dassl_bridge`` or the ``croft-dassl``
    console script), whose ``main`` installs the bridge once it knows the command needs Dassl."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None and spec.name == __name__:
        return True
    script = getattr(main_module, "__file__", None) or ""
    # pip's console script: bin/croft-dassl, Scripts/croft-dassl-script.py or croft-dassl.exe/__main__.py
    return spec is None and (os.path.basename(script) in ("croft-dassl", "croft-dassl-script.py")
                             or os.path.basename(os.path.dirname(script)) == "croft-dassl.exe")


if __name__ == "__main__":
    # ``python -m croft.dassl_bridge``: run the importable module's main (one copy of the classes).
    from croft.dassl_bridge import main as _main

    sys.exit(_main())
else:
    _dassl_on_path()
    if not _run_by_launcher():
        install()
