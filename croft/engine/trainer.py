"""Trainer base with Dassl TrainerX's hook names, and the trainer registry.

A run: ``check_cfg`` (class method, before anything is built) -> ``__init__`` builds the dataset,
then ``build_model`` (the frozen backbone and the learnt modules), then the data manager over the
trainer's ``feature_source()`` -> ``train()`` (epochs, val-based selection, checkpoints) ->
``evaluate_and_write_results()`` (the evaluator and the results writer).

Hooks a trainer implements (``croft/trainers/*.py`` are the examples):

- ``check_cfg(cls, cfg)`` (classmethod): reject bad values of the trainer's own keys, naming them;
- ``build_model()``: load the backbone, build the learnt modules, ``register_model`` each part that
  owns checkpoints (with its optimizer and scheduler);
- ``frozen_encoder`` (class attribute, default True): whether the method's image encoder stays
  frozen. Frozen methods get batches of frozen features (the feature cache, or images through the
  encoder); a method that trains its encoder (FT, LP-FT) gets batches of images through the online
  pipeline, and the feature cache and ``croft-sweep precompute`` leave it out;
- ``feature_source()``: where batch features come from (frozen-CLIP trainers: images through the
  encoder, or the feature cache; trained encoders: the images themselves);
- ``encode(images, settings) -> features``: raw image features of transformed images (default: the
  frozen CLIP image encoder); everything that starts from images (training batches of a trained
  encoder, the inference runner, the predictor, the Dassl bridge's batches) goes through it;
- ``forward_backward(batch) -> {name: float}``: one training step on a
  :class:`~croft.data.batch.Batch`; use ``parse_batch_train`` for ``(features, labels)`` (it calls
  ``encode`` on a batch of images), ``model_backward_and_update`` for the update and ``batch_stats``
  for the returned meters;
- ``inference(features, settings) -> InferenceOutput``: logits and features of a batch of raw
  image features, under explicit :class:`~croft.evaluation.inference.InferenceSettings`.

results.json's ``hparams`` are the run's own ``TRAINER.<NAME>.*`` fingerprint values
(:func:`~croft.engine.fingerprint.trainer_hparams`), not a method's hand-written list.

The base runs the epochs, validation-based model selection (strict improvement: ties keep the
earlier epoch, as the reference), checkpoints, resume, the final evaluation and ``results.json``.

Engine contract
---------------
Each method of ``croft/trainers/`` is an engine-independent *method class* (``CRoFTMethod``,
``CoOpMethod``, ...) that implements the hooks above and uses nothing of its engine but the
contract below. A registered trainer is ``Method + engine base``: ``Method + TrainerBase`` (this
module) in croft, and ``Method + DasslAdapter + dassl.engine.TrainerX`` in
:mod:`croft.dassl_bridge`. Both engines provide all of :data:`ENGINE_CONTRACT` with the same
meaning (``tests/test_dassl_bridge.py`` introspects both):

- attributes: ``cfg`` (croft's config tree, frozen), ``device``, ``logger``, ``dataset`` (a
  :class:`~croft.data.datasets.DatasetBase`), ``classnames``, ``num_classes``, ``dm`` (the
  :class:`~croft.data.data_manager.DataManager`; ``dm.eval_loader(items, train_transform, name,
  view)`` builds a loader of any item list), ``train_loader_x`` / ``val_loader`` / ``test_loader``
  (loaders of :class:`~croft.data.batch.Batch`), ``output_dir``, ``max_epoch``, ``start_epoch`` and
  ``epoch`` (0-based), ``best_epoch``, ``best_val_accuracy``, ``timing``, ``fingerprint``, ``trains``
  (class attribute), and the registries ``_models`` / ``_optims`` / ``_scheds`` (ordered dicts
  name -> module / optimizer / scheduler; a method may replace an entry, as Tip-Adapter does);
- building: ``register_model(name, model, optim, sched)``, ``get_model_names(names)``,
  ``build_optimizer_and_scheduler(module) -> (optim, sched)`` (croft's optimizers and per-epoch
  LR schedules, :mod:`croft.engine.optim`);
- a training step: ``parse_batch_train(batch) -> (features, labels)``, ``model_zero_grad(names)``,
  ``model_backward(loss, retain_graph)`` (refuses a non-finite loss), ``model_update(names)``,
  ``model_backward_and_update(loss, names, retain_graph)``, ``batch_stats(loss, logits, labels)``,
  ``set_model_mode(mode, names)``, ``update_lr(names)``, ``get_current_lr()``;
- the run: ``before_train()`` (resumes; a method may extend it, calling ``super()``; it sets
  ``start_epoch``), ``after_train()``, one LR step per epoch after the epoch's batches, the train
  loader's ``set_epoch`` before each epoch (its shuffle and augmented view), validation-based
  selection on the val loader only, ``save_model(epoch, is_best=..., val_result=...)``,
  ``load_model(directory, epoch=None)``, ``resume_model_if_exist(directory)`` (``last.pth.tar``,
  else the latest Dassl-layout checkpoints, the original CRoFT code's included),
  ``prepare_to_load(name, state_dict, source)`` (called before every ``load_state_dict``) and
  ``evaluate_and_write_results()`` (croft's evaluator and results writer: ``results.json``,
  ``scores.npz``, ``detector.json``).
"""
import math
import os
import random
import time
from collections import OrderedDict
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from ..data.data_manager import DataManager
from ..data.datasets import build_dataset
from ..data.verify import verify_images
from ..evaluation.inference import FINAL, TRAINING, InferenceOutput, InferenceSettings, run_inference
from ..utils.errors import NonFiniteLossError
from ..utils.registry import Registry
from ..utils.rng import rng_states, set_rng_states
from .checkpoint import (BEST_NAME, DROPPED_KEY, LAST_NAME, CheckpointError, epoch_file_name, fast_forward_scheduler,
                         latest_checkpoint, load_checkpoint, load_last, save_checkpoint, save_last)
from .fingerprint import make_fingerprint, trainer_hparams
from .metrics_log import MetricsLog
from ..utils.logging import get_logger
from .optim import build_lr_scheduler, build_optimizer

TRAINER_REGISTRY = Registry("trainer")

#: What a method class may use of its engine (the module docstring says what each does):
#: ``{"attributes": names, "methods": {name: parameter names it accepts}}``. Both engine bases
#: provide all of it: :class:`TrainerBase` and ``croft.dassl_bridge.DasslAdapter``.
ENGINE_CONTRACT = {
    "attributes": ("cfg", "device", "logger", "dataset", "classnames", "num_classes", "dm", "train_loader_x",
                   "val_loader", "test_loader", "output_dir", "max_epoch", "start_epoch", "epoch", "best_epoch",
                   "best_val_accuracy", "timing", "fingerprint", "trains", "_models", "_optims", "_scheds"),
    "methods": {
        "check_cfg": ("cfg",),
        "register_model": ("name", "model", "optim", "sched"),
        "get_model_names": ("names",),
        "build_optimizer_and_scheduler": ("module",),
        "parse_batch_train": ("batch",),
        "model_zero_grad": ("names",),
        "model_backward": ("loss", "retain_graph"),
        "model_update": ("names",),
        "model_backward_and_update": ("loss", "names", "retain_graph"),
        "batch_stats": ("loss", "logits", "labels"),
        "set_model_mode": ("mode", "names"),
        "update_lr": ("names",),
        "get_current_lr": (),
        "before_train": (),
        "after_train": (),
        "save_model": ("epoch", "is_best", "val_result"),
        "load_model": ("directory", "epoch"),
        "resume_model_if_exist": ("directory",),
        "prepare_to_load": ("name", "state_dict", "source"),
        "evaluate_and_write_results": (),
    },
}


def set_random_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def build_trainer(cfg):
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)


class EngineCore:
    """croft's engine functions, on the engine contract only: the shared base of both engine bases,
    :class:`TrainerBase` (croft's) and ``croft.dassl_bridge.DasslAdapter`` (over Dassl's ``TrainerX``,
    whose own ``__init__`` and epoch loop call these hooks)."""

    #: False for evaluation-only methods (zero-shot CLIP).
    trains = True
    #: False for methods that train their image encoder (their batches carry images, never cached features).
    frozen_encoder = True

    @classmethod
    def check_cfg(cls, cfg):
        """Reject values of this trainer's keys that are well-typed but invalid (before anything is built)."""
        if cls.trains and cfg.OPTIM.MAX_EPOCH < 1:
            raise ValueError(f"invalid value for 'OPTIM.MAX_EPOCH': {cfg.OPTIM.MAX_EPOCH}; trainer "
                             f"{cfg.TRAINER.NAME} trains, so it needs at least 1 epoch")

    def warn_about_shots(self):
        """NUM_SHOTS larger than what a class has: the run goes on with what exists (results.json records it)."""
        shots = self.cfg.DATASET.NUM_SHOTS
        if shots < 1 or not self.dataset.train_x:
            return
        counts = {}
        for item in self.dataset.train_x:
            counts[item.label] = counts.get(item.label, 0) + 1
        short = {self.dataset.classnames[k]: n for k, n in sorted(counts.items()) if n < shots}
        if short and self.cfg.DATASET.FEWSHOT_SAMPLER == "class_balanced":
            listed = ", ".join(f"{name} {n}" for name, n in list(short.items())[:8]) + (" ..." if len(short) > 8 else "")
            self.logger.warning(f"warning: DATASET.NUM_SHOTS {shots}: {len(short)} class(es) have fewer training "
                                f"images and use all they have ({listed}); results.json records 'shots_used'")

    # ------------------------------------------------------------------ building
    def feature_source(self):
        """The feature source of the data manager's loaders (:mod:`croft.data.feature_source`)."""
        raise NotImplementedError

    def build_data_loader(self):
        """The data manager, once the backbone (hence the feature source) is known."""
        self.dm = DataManager(self.cfg, self.dataset, self.feature_source())
        self.train_loader_x = self.dm.train_loader_x
        self.val_loader = self.dm.val_loader
        self.test_loader = self.dm.test_loader
        self.logger.info(
            f"Dataset {self.cfg.DATASET.NAME}: {self.num_classes} classes, train_x {len(self.dataset.train_x)}, "
            f"val {len(self.dataset.val)}, test {len(self.dataset.test)}, open-set "
            + (", ".join(f"{k} {len(v)}" for k, v in self.dataset.ood.items()) or "none"))

    def build_model(self):
        raise NotImplementedError

    def register_model(self, name, model, optim=None, sched=None):
        if name in self._models:
            raise KeyError(f"model '{name}' is already registered")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None):
        if names is None:
            return list(self._models)
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            if name not in self._models:
                raise KeyError(f"unknown model '{name}'; registered: {list(self._models)}")
        return names

    def build_optimizer_and_scheduler(self, module):
        optim = build_optimizer(module.parameters(), self.cfg.OPTIM)
        return optim, build_lr_scheduler(optim, self.cfg.OPTIM)

    # ------------------------------------------------------------------ updates
    def model_zero_grad(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss, retain_graph=False):
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(f"loss is non-finite ({loss.item()})")
        loss.backward(retain_graph=retain_graph)

    def model_update(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss, names=None, retain_graph=False):
        self.model_zero_grad(names)
        self.model_backward(loss, retain_graph=retain_graph)
        self.model_update(names)

    def update_lr(self, names=None):
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def get_current_lr(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                return self._optims[name].param_groups[0]["lr"]
        return 0.0

    def set_model_mode(self, mode="train", names=None):
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    # ------------------------------------------------------------------ batches
    def parse_batch_train(self, batch):
        """``(features, labels)`` of a :class:`~croft.data.batch.Batch` (both already on the device); a batch of
        images goes through the method's ``encode`` (with gradients, when they are enabled)."""
        if batch.features is None:
            return self.encode(batch.images, TRAINING), batch.labels
        return batch.features, batch.labels

    @staticmethod
    def batch_stats(loss, logits, labels):
        """The meters a training step reports: loss and batch accuracy (%)."""
        return {"loss": loss.item(), "acc": 100.0 * (logits.argmax(1) == labels).float().mean().item()}

    def forward_backward(self, batch):
        raise NotImplementedError

    def encode(self, images, settings: InferenceSettings = TRAINING):
        raise NotImplementedError

    def inference(self, features, settings: InferenceSettings = TRAINING) -> InferenceOutput:
        raise NotImplementedError

    # ------------------------------------------------------------------ training loop
    def before_train(self):
        if not self.trains:
            raise RuntimeError(f"trainer {self.cfg.TRAINER.NAME} has nothing to train; use --eval-only")
        if self.train_loader_x is None:
            raise RuntimeError(f"dataset {self.cfg.DATASET.NAME} has no training images")
        resume_dir = self.cfg.RESUME or self.output_dir
        self.start_epoch = self.resume_model_if_exist(resume_dir)
        if self.start_epoch:
            self.logger.info(f"Resuming training at epoch {self.start_epoch + 1}/{self.max_epoch}"
                             if self.start_epoch < self.max_epoch else
                             f"Training already complete ({self.start_epoch}/{self.max_epoch} epochs)")
        self.metrics_log = MetricsLog(self.output_dir, self.cfg.TRAIN.TENSORBOARD, start_epoch=self.start_epoch)

    def run_epoch(self):
        """One pass over ``train_x``; returns the epoch means of the meters ``forward_backward`` reported."""
        self.set_model_mode("train")
        self.dm.set_epoch(self.epoch)  # shuffle order and augmented view of this epoch
        loader = self.train_loader_x
        num_batches = len(loader)
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.max_epoch}", leave=False, dynamic_ncols=True)
        print_freq = self.cfg.TRAIN.PRINT_FREQ
        sums, count = {}, 0
        self.epoch_lr = self.get_current_lr()
        for self.batch_idx, batch in enumerate(bar):
            where = f"epoch {self.epoch + 1}/{self.max_epoch}, batch {self.batch_idx + 1}/{num_batches}"
            try:
                stats = self.forward_backward(batch)
            except FloatingPointError as exc:
                raise NonFiniteLossError(f"non-finite loss at {where}: {exc}") from None
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items()})
            if (self.batch_idx + 1) % print_freq == 0 or num_batches < print_freq:
                meters = " ".join(f"{k} {v:.4f}" for k, v in stats.items())
                self.logger.info(f"epoch [{self.epoch + 1}/{self.max_epoch}][{self.batch_idx + 1}/{num_batches}] "
                                 f"{meters} lr {self.get_current_lr():.4e}")
        self.update_lr()
        return {k: v / count for k, v in sums.items()} if count else {}

    def after_epoch(self):
        """Validation (model selection) and epoch checkpoints; returns the val accuracy or None."""
        last_epoch = self.epoch + 1 == self.max_epoch
        current = None
        if self.val_loader is not None and self.cfg.TEST.FINAL_MODEL == "best_val":
            self.logger.info("Do evaluation on val set")
            current = run_inference(self, self.val_loader, TRAINING, "val", self.num_classes).accuracy
            self.logger.info(f"* val accuracy: {current:.2f}%")
            if current > self.best_result:  # strict: ties keep the earlier epoch (docs/method.md §4.4)
                self.best_result = current
                self.best_epoch = self.epoch + 1
                self.best_val_accuracy = current
                self.save_model(self.epoch, is_best=True, val_result=current)
        checkpoint_freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        if last_epoch or (checkpoint_freq > 0 and (self.epoch + 1) % checkpoint_freq == 0):
            self.save_model(self.epoch)
        return current

    def record_epoch(self, meters, val_accuracy, seconds):
        self.metrics_log.append({"epoch": self.epoch + 1, "lr": self.epoch_lr, "train": meters,
                                 "val_accuracy": val_accuracy, "epoch_s": round(seconds, 3)})

    def after_train(self):
        self.metrics_log.close()
        self.logger.info("Finished training")
        if self.cfg.TEST.FINAL_MODEL == "best_val" and self.best_epoch is not None:
            self.logger.info("Deploy the model with the best val performance")
            self.load_model(self.output_dir)
        else:
            self.best_epoch = self.max_epoch
        if self.cfg.TEST.NO_TEST:
            self.logger.info("TEST.NO_TEST: no final evaluation and no results.json; evaluate later with "
                             f"--eval-only --model-dir {self.output_dir}")
            return
        self.evaluate_and_write_results()

    def evaluate_and_write_results(self):
        """Evaluate the deployed model (final inference settings) and write the run folder's results."""
        from ..evaluation.detector import write_detector
        from ..evaluation.evaluator import Evaluator
        from ..results.writer import build_results, run_metadata, write_run

        started = time.time()
        evaluation = Evaluator(self.cfg, self.dataset, self.dm, self, FINAL).evaluate()
        write_detector(self, evaluation=evaluation)  # croft-predict thresholds (docs/predict.md), before results.json
        cfg = self.cfg
        title = f"{cfg.TRAINER.NAME} {cfg.DATASET.NAME} {cfg.TEST_ENV}" if cfg.TEST.PLOT else None
        self.timing["eval_s"] += time.time() - started
        cache = self.dm.feature_cache
        timing = dict(self.timing, **(cache.stats if cache is not None else
                                      {"feature_cache_hits": 0, "feature_cache_misses": 0}))
        metadata = run_metadata(cfg, self.dataset, trainer_hparams(self.fingerprint["values"]), self.fingerprint)
        results = build_results(metadata, evaluation, self.best_epoch, self.best_val_accuracy, timing)
        path = write_run(self.output_dir, results, evaluation.arrays, plot_title=title)
        self.logger.info(f"Results written to {path}")
        return results

    # ------------------------------------------------------------------ checkpoints
    def save_model(self, epoch, is_best=False, val_result=None):
        for name in self.get_model_names():
            state = {"state_dict": self._models[name].state_dict(), "epoch": epoch + 1,
                     "optimizer": self._optims[name].state_dict() if self._optims[name] else None,
                     "scheduler": self._scheds[name].state_dict() if self._scheds[name] else None,
                     "val_result": val_result, "best_result": self.best_result, "best_epoch": self.best_epoch,
                     "fingerprint": self.fingerprint}
            path = save_checkpoint(state, os.path.join(self.output_dir, name), is_best=is_best,
                                   file_name=None if is_best else epoch_file_name(epoch + 1))
            self.logger.info(f'Checkpoint saved to "{path}"')

    def save_last(self):
        """The rolling checkpoint of the last completed epoch (models, optimizers, schedulers, RNGs)."""
        models = {name: {"state_dict": self._models[name].state_dict(),
                         "optimizer": self._optims[name].state_dict() if self._optims[name] else None,
                         "scheduler": self._scheds[name].state_dict() if self._scheds[name] else None}
                  for name in self.get_model_names()}
        save_last({"epoch": self.epoch + 1, "models": models, "best_result": self.best_result,
                   "best_epoch": self.best_epoch, "best_val_accuracy": self.best_val_accuracy,
                   "rng": rng_states(), "fingerprint": self.fingerprint}, self.output_dir)

    def prepare_to_load(self, name, state_dict, source):
        """Hook before ``load_state_dict`` of model ``name`` (e.g. to resize a module to the checkpoint)."""

    def _load_models(self, states, source):
        for name, state in states.items():
            self.prepare_to_load(name, state["state_dict"], source)
            self._models[name].load_state_dict(state["state_dict"])
            if self._optims[name] is not None and state.get("optimizer"):
                self._optims[name].load_state_dict(state["optimizer"])
            if self._scheds[name] is not None and state.get("scheduler"):
                self._scheds[name].load_state_dict(state["scheduler"])
            elif self._scheds[name] is not None and "scheduler" in state.get(DROPPED_KEY, {}):
                # A pickled scheduler object (the original CRoFT code's files) is never
                # unpickled: replay the per-epoch schedule up to the checkpoint's epoch instead.
                fast_forward_scheduler(self._scheds[name], state.get("epoch", 0))
                self.logger.info(f"{name}: LR schedule replayed to epoch {state.get('epoch', 0)} "
                                 f"(the checkpoint's scheduler object is not loaded)")

    def resume_model_if_exist(self, directory):
        """Resume from ``last.pth.tar`` (or the latest epoch checkpoints); returns the start epoch.

        The best-val record is restored only when resuming inside OUTPUT_DIR, where the matching
        ``model-best.pth.tar`` lives; resuming from another folder starts a new record (as Dassl).
        """
        names = self.get_model_names()
        same_dir = os.path.abspath(directory) == os.path.abspath(self.output_dir)
        last = load_last(directory, map_location=self.device)
        if last is not None and names:
            missing = [n for n in names if n not in last["models"]]
            if missing:
                raise CheckpointError(f"last checkpoint {os.path.join(directory, LAST_NAME)} has no model(s) "
                                      f"{missing}; it holds {sorted(last['models'])}")
            self._load_models({n: last["models"][n] for n in names}, os.path.join(directory, LAST_NAME))
            if same_dir:
                self.best_result = last["best_result"]
                self.best_epoch = last["best_epoch"]
                self.best_val_accuracy = last["best_val_accuracy"]
            set_rng_states(last["rng"])
            self.logger.info(f'Resumed {", ".join(names)} from "{os.path.join(directory, LAST_NAME)}" '
                             f'(epoch = {last["epoch"]})')
            return last["epoch"]
        paths = [latest_checkpoint(os.path.join(directory, name)) for name in names]
        if not names or any(p is None for p in paths):
            return 0
        states = [load_checkpoint(path, map_location=self.device) for path in paths]
        epochs = {name: state["epoch"] for name, state in zip(names, states)}
        if len(set(epochs.values())) > 1:
            raise RuntimeError(
                f"cannot resume from {directory}: the latest checkpoints disagree on the epoch ({epochs}); "
                "the run was probably interrupted while saving. Delete the newer model.pth.tar-<epoch> "
                "files and the matching 'checkpoint' markers, or start a fresh output directory.")
        for name, path, state in zip(names, paths, states):
            self._load_models({name: state}, path)
            if same_dir:
                self.best_result = state.get("best_result", self.best_result)
                self.best_epoch = state.get("best_epoch", self.best_epoch)
            self.logger.info(f'Resumed {name} from "{path}" (epoch = {state["epoch"]})')
        if self.best_epoch is not None:
            self.best_val_accuracy = self.best_result
        return states[0]["epoch"]

    def load_model(self, directory, epoch: Optional[int] = None):
        """Load every registered model from ``<directory>/<name>/`` (best, or ``model.pth.tar-<epoch>``)."""
        file_name = BEST_NAME if epoch is None else epoch_file_name(epoch)
        names = self.get_model_names()
        if not names:
            return
        for name in names:
            path = os.path.join(directory, name, file_name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"checkpoint not found: {path} (model '{name}' of trainer "
                                        f"{self.cfg.TRAINER.NAME}; expected {file_name} in {os.path.join(directory, name)})")
            state = load_checkpoint(path, map_location=self.device)
            self.prepare_to_load(name, state["state_dict"], path)
            self._models[name].load_state_dict(state["state_dict"])
            self.best_epoch = state["epoch"]
            if state.get("val_result") is not None:
                self.best_val_accuracy = state["val_result"]
            self.logger.info(f'Loading weights to {name} from "{path}" (epoch = {state["epoch"]})')


class TrainerBase(EngineCore):
    """croft's engine base: ``__init__`` builds the run (dataset, ``build_model``, data manager) and
    :meth:`train` drives the epochs; the hooks are :class:`EngineCore`'s."""

    def __init__(self, cfg, dataset=None, device=None):
        """``dataset``: an already built dataset (default: build it from the config); one with
        ``has_items = False`` (class names only, as :mod:`croft.predict` passes) builds the models
        but no data manager. ``device``: override of the device chosen from ``USE_CUDA``."""
        self.cfg = cfg
        self.logger = get_logger()
        use_cuda = torch.cuda.is_available() and cfg.USE_CUDA
        self.device = torch.device(device if device is not None else ("cuda" if use_cuda else "cpu"))
        self.output_dir = cfg.OUTPUT_DIR
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.best_result = -math.inf
        self.best_epoch = None
        self.best_val_accuracy = None
        self.timing = {"train_s": 0.0, "eval_s": 0.0}
        self.fingerprint = make_fingerprint(cfg)
        if dataset is None:
            self.dataset = build_dataset(cfg)
            verify_images(self.dataset, cfg.DATASET.NAME)
            self.warn_about_shots()
        else:
            self.dataset = dataset
        self.num_classes = self.dataset.num_classes
        self.classnames = self.dataset.classnames
        self.build_model()
        if getattr(self.dataset, "has_items", True):
            self.build_data_loader()
        else:  # models only (croft.predict): no data manager, no loaders
            self.dm = self.train_loader_x = self.val_loader = self.test_loader = None

    def train(self):
        self.before_train()
        started = time.time()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            epoch_started = time.time()
            meters = self.run_epoch()
            val_accuracy = self.after_epoch()
            self.record_epoch(meters, val_accuracy, time.time() - epoch_started)
            self.save_last()
        self.timing["train_s"] += time.time() - started
        self.after_train()
