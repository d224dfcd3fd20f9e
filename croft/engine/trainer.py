"""Trainer base with Dassl TrainerX's hook names, and the trainer registry.

A trainer subclass implements ``build_model`` (calling ``register_model`` for every part that
owns checkpoints), ``forward_backward(batch)`` and ``model_inference(images)``. The base class
runs the epochs, validation-based model selection (strict improvement, spec §2.3),
checkpoints, resume, the final evaluation and ``results.json``.
"""
import math
import os
import random
import time
from collections import OrderedDict
from typing import NamedTuple, Optional

import numpy as np
import torch
from tqdm import tqdm

from ..data.data_manager import DataManager
from ..data.datasets import build_dataset
from ..utils.registry import Registry
from .checkpoint import BEST_NAME, epoch_file_name, latest_checkpoint, load_checkpoint, save_checkpoint
from .logger import get_logger
from .optim import build_lr_scheduler, build_optimizer

TRAINER_REGISTRY = Registry("trainer")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or inf loss."""


class InferenceOutput(NamedTuple):
    logits: torch.Tensor            # N x C, already scaled by CLIP's logit scale
    image_features: torch.Tensor    # N x D, L2-normalised (adapted) image features
    text_features: torch.Tensor     # C x D, L2-normalised (adapted) text features


def set_random_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def build_trainer(cfg):
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)


class TrainerBase:
    #: False for evaluation-only methods (zero-shot CLIP).
    trains = True

    def __init__(self, cfg):
        self.cfg = cfg
        self.logger = get_logger()
        use_cuda = torch.cuda.is_available() and cfg.USE_CUDA
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.output_dir = cfg.OUTPUT_DIR
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.best_result = -math.inf
        self.best_epoch = None
        self.best_val_accuracy = None
        # Written to results.json as is; the feature cache adds its hit/miss counters (DESIGN §5).
        self.timing = {"train_s": 0.0, "eval_s": 0.0, "feature_cache_hits": 0, "feature_cache_misses": 0}
        self.build_data_loader()
        self.build_model()

    # ------------------------------------------------------------------ building
    def build_data_loader(self):
        self.dataset = build_dataset(self.cfg)
        self.dm = DataManager(self.cfg, self.dataset)
        self.train_loader_x = self.dm.train_loader_x
        self.val_loader = self.dm.val_loader
        self.test_loader = self.dm.test_loader
        self.num_classes = self.dm.num_classes
        self.classnames = self.dm.classnames
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

    def get_current_lr(self):
        for name in self._models:
            if self._optims[name] is not None:
                return self._optims[name].param_groups[0]["lr"]
        return 0.0

    def set_model_mode(self, mode="train", names=None):
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    # ------------------------------------------------------------------ batches
    def parse_batch_train(self, batch):
        return batch["img"].to(self.device, non_blocking=True), batch["label"].to(self.device, non_blocking=True)

    def parse_batch_test(self, batch):
        return self.parse_batch_train(batch)

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, images) -> InferenceOutput:
        raise NotImplementedError

    def infer_batch(self, batch):
        """``(InferenceOutput, labels)`` of an evaluation batch (a hook for feature-based batches)."""
        images, labels = self.parse_batch_test(batch)
        return self.model_inference(images), labels

    def hparams(self):
        """Method hyper-parameters recorded in results.json."""
        return {}

    # ------------------------------------------------------------------ training loop
    def train(self):
        self.before_train()
        started = time.time()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.run_epoch()
            self.after_epoch()
        self.timing["train_s"] += time.time() - started
        self.after_train()

    def before_train(self):
        if not self.trains:
            raise RuntimeError(f"trainer {self.cfg.TRAINER.NAME} has nothing to train; use --eval-only")
        if self.train_loader_x is None:
            raise RuntimeError(f"dataset {self.cfg.DATASET.NAME} has no training images")
        resume_dir = self.cfg.RESUME or self.output_dir
        self.start_epoch = self.resume_model_if_exist(resume_dir)

    def run_epoch(self):
        self.set_model_mode("train")
        if hasattr(self.dm, "set_epoch"):
            self.dm.set_epoch(self.epoch)  # shuffle order and augmented view of this epoch
        loader = self.train_loader_x
        num_batches = len(loader)
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.max_epoch}", leave=False, dynamic_ncols=True)
        print_freq = self.cfg.TRAIN.PRINT_FREQ
        for self.batch_idx, batch in enumerate(bar):
            where = f"epoch {self.epoch + 1}/{self.max_epoch}, batch {self.batch_idx + 1}/{num_batches}"
            try:
                stats = self.forward_backward(batch)
            except FloatingPointError as exc:
                raise NonFiniteLossError(f"non-finite loss at {where}: {exc}") from None
            bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items()})
            if (self.batch_idx + 1) % print_freq == 0 or num_batches < print_freq:
                meters = " ".join(f"{k} {v:.4f}" for k, v in stats.items())
                self.logger.info(f"epoch [{self.epoch + 1}/{self.max_epoch}][{self.batch_idx + 1}/{num_batches}] "
                                 f"{meters} lr {self.get_current_lr():.4e}")
        self.update_lr()

    def after_epoch(self):
        last_epoch = self.epoch + 1 == self.max_epoch
        if self.val_loader is not None and self.cfg.TEST.FINAL_MODEL == "best_val":
            from .evaluation import closed_set_accuracy

            self.logger.info("Do evaluation on val set")
            current = closed_set_accuracy(self, self.val_loader, desc="val")
            self.logger.info(f"* val accuracy: {current:.2f}%")
            if current > self.best_result:  # strict: ties keep the earlier epoch (spec §2.3)
                self.best_result = current
                self.best_epoch = self.epoch + 1
                self.best_val_accuracy = current
                self.save_model(self.epoch, is_best=True, val_result=current)
        checkpoint_freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        if last_epoch or (checkpoint_freq > 0 and (self.epoch + 1) % checkpoint_freq == 0):
            self.save_model(self.epoch)

    def after_train(self):
        self.logger.info("Finished training")
        if self.cfg.TEST.FINAL_MODEL == "best_val" and self.best_epoch is not None:
            self.logger.info("Deploy the model with the best val performance")
            self.load_model(self.output_dir)
        else:
            self.best_epoch = self.max_epoch
        self.evaluate_and_write_results()

    def evaluate_and_write_results(self):
        from .evaluation import evaluate_run

        started = time.time()
        return evaluate_run(self, eval_started=started)

    # ------------------------------------------------------------------ checkpoints
    def save_model(self, epoch, is_best=False, val_result=None):
        for name in self.get_model_names():
            state = {"state_dict": self._models[name].state_dict(), "epoch": epoch + 1,
                     "optimizer": self._optims[name].state_dict() if self._optims[name] else None,
                     "scheduler": self._scheds[name].state_dict() if self._scheds[name] else None,
                     "val_result": val_result, "best_result": self.best_result, "best_epoch": self.best_epoch}
            path = save_checkpoint(state, os.path.join(self.output_dir, name), is_best=is_best,
                                   file_name=None if is_best else epoch_file_name(epoch + 1))
            self.logger.info(f'Checkpoint saved to "{path}"')

    def resume_model_if_exist(self, directory):
        """Resume from the latest checkpoint when every registered model has one; returns the start epoch.

        The best-val record is restored only when resuming inside OUTPUT_DIR, where the matching
        ``model-best.pth.tar`` lives; resuming from another folder starts a new record (as Dassl).
        """
        names = self.get_model_names()
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
        same_dir = os.path.abspath(directory) == os.path.abspath(self.output_dir)
        for name, path, state in zip(names, paths, states):
            self._models[name].load_state_dict(state["state_dict"])
            if self._optims[name] is not None and state.get("optimizer"):
                self._optims[name].load_state_dict(state["optimizer"])
            if self._scheds[name] is not None and state.get("scheduler"):
                self._scheds[name].load_state_dict(state["scheduler"])
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
            self._models[name].load_state_dict(state["state_dict"])
            self.best_epoch = state["epoch"]
            if state.get("val_result") is not None:
                self.best_val_accuracy = state["val_result"]
            self.logger.info(f'Loading weights to {name} from "{path}" (epoch = {state["epoch"]})')
