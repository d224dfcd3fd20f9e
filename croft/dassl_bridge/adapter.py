""":class:`DasslAdapter`: Dassl's ``TrainerX`` with croft's engine hooks (``Method + DasslAdapter + TrainerX``)."""
import os
import time

from ..data.batch import Batch
from ..engine.checkpoint import BEST_NAME
from ..engine.trainer import EngineCore
from ..evaluation.inference import TRAINING, run_inference
from ..utils.logging import get_logger, setup_logger
from .config import croft_config
from .names import registered_methods


class DasslAdapter(EngineCore):
    """croft's engine base over ``dassl.engine.TrainerX``: keeps croft's engine contract.

    A registered Dassl trainer is ``Method + DasslAdapter + TrainerX``
    (:func:`dassl_trainer_class`). Dassl's ``SimpleTrainer.__init__``
    and ``TrainerBase.train`` loop run as they are; their hooks are croft's engine functions, which
    this class inherits from :class:`~croft.engine.trainer.EngineCore` (the base croft's own
    ``TrainerBase`` shares; it comes before ``TrainerX`` in the MRO), so the run gives the numbers
    and files of ``croft-train``. What this class adds or adapts:

    ==============================  =======================================================
    Dassl                           adapter
    ==============================  =======================================================
    ``build_data_loader`` (Dassl's  croft's dataset before ``build_model``; croft's
    DataManager, image dicts)       DataManager of frozen features after it
    ``model_backward_and_update``   croft's, with ``retain_graph`` (CRoFT's double backprop)
    ``run_epoch``                   croft's: ``set_epoch`` (shuffle, augmented view),
                                    one LR step after the epoch's batches
    ``after_epoch``                 selection on the val loader only (never the test set),
                                    strict improvement, best-epoch record, ``last.pth.tar``,
                                    ``metrics.jsonl``
    ``after_train`` (``test()``)    croft's evaluator + results writer: ``results.json``,
                                    ``scores.npz``, ``detector.json``
    ``test(split)``                 final evaluation (results files), or val accuracy
    ``parse_batch_*``               a Dassl image dict -> croft ``Batch`` (the method's encoder)
    ``model_inference``             logits tensor (for Dassl's evaluator)
    ``load_model``                  croft's loader (no ``val_result`` needed, the original
                                    CRoFT code's files), ``--model-dir`` fingerprint check
    ``resume_model_if_exist``       croft's (``last.pth.tar``, RNG states, Dassl layout)
    ``save_model``                  croft's checkpoints (fingerprint, best record), called
                                    the croft way or the Dassl way
    ==============================  =======================================================
    """

    #: croft's name of the method (set on the generated classes).
    croft_name = None

    def __init__(self, cfg, dataset=None):
        setup_logger()  # on the current stdout: Dassl's setup_logger tees it into OUTPUT_DIR/log.txt
        self.logger = get_logger()
        self.dassl_cfg = cfg
        croft_cfg = croft_config(cfg, self.croft_name)
        from ..engine.fingerprint import make_fingerprint

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
            super().build_data_loader()  # croft's DataManager, once the method's feature source exists
        from ..train import save_config

        save_config(self.cfg)  # config.yaml and fingerprint.json, as croft-train writes them

    # ------------------------------------------------------------------ building (Dassl hooks)
    def build_data_loader(self):
        """Dassl calls this before ``build_model``: croft's dataset now, its loaders after ``build_model``."""
        from ..data.datasets import build_dataset
        from ..data.verify import verify_images

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
    def before_epoch(self):
        now = time.time()
        if self._train_started is None:
            self._train_started = now
        self._epoch_started = now

    def run_epoch(self):
        self._epoch_meters = super().run_epoch()
        return self._epoch_meters

    def after_epoch(self):
        val_accuracy = super().after_epoch()
        self.record_epoch(self._epoch_meters, val_accuracy, time.time() - (self._epoch_started or time.time()))
        self.save_last()
        return val_accuracy

    def after_train(self):
        if self._train_started is not None:
            self.timing["train_s"] += time.time() - self._train_started
            self._train_started = None
        super().after_train()

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
        super().save_model(epoch, is_best=is_best or model_name == BEST_NAME, val_result=val_result)

    def load_model(self, directory, epoch=None):
        """croft's ``load_model``; ``directory`` is checked as ``--model-dir`` (fingerprint) unless it is OUTPUT_DIR."""
        if not directory:
            if self.trains:
                raise ValueError(f"--eval-only with trainer {type(self).__name__} needs --model-dir (the folder of a "
                                 "trained run)")
            return
        if os.path.abspath(directory) != os.path.abspath(self.output_dir):
            from ..engine.run_folder import check_source_dir

            check_source_dir(directory, self.fingerprint, "--model-dir", self.logger)
        super().load_model(directory, epoch=epoch)


def dassl_trainer_class(croft_name):
    """The Dassl trainer of croft's method ``croft_name``: ``Method + DasslAdapter + TrainerX``, named
    by its registration's ``dassl_name`` (Dassl's ``register()`` uses the class name). Built on each
    call; :func:`~croft.dassl_bridge.install.install` registers one of each in Dassl."""
    from dassl.engine import TrainerX

    found = {r.name: r for r in registered_methods()}
    if croft_name not in found:
        raise KeyError(f"croft has no trainer {croft_name!r}; registered: {', '.join(sorted(found))}")
    name, method = found[croft_name].dassl_name, found[croft_name].method
    return type(name, (method, DasslAdapter, TrainerX), {
        "__module__": __package__, "__qualname__": name, "croft_name": croft_name, "_croft_bridge": True,
        "__doc__": f"croft's {croft_name} ({method.__name__}) as a Dassl TrainerX (croft.dassl_bridge)."})


def _check_folders(cfg, fingerprint, logger):
    """croft-train's folder checks (``croft/engine/run_folder.py``) before anything is built."""
    from ..engine.run_folder import check_output_dir, check_source_dir

    if cfg.RESUME:
        check_source_dir(cfg.RESUME, fingerprint, "--resume", logger)
    check_output_dir(cfg.OUTPUT_DIR, fingerprint)
