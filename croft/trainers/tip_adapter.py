"""Tip-Adapter-F (Zhang et al. 2022): a key-value cache of the few-shot training set, with
learnable keys.

- Zero-shot classifier ``W_c``: unit-norm 7-template ensemble of the class names
  (``croft.clip.templates.ENSEMBLE_TEMPLATES``), fixed, as in the reference.
- Cache: ``AUGMENT_EPOCH`` passes over ``train_x`` with the training augmentation (pass p is
  augmented view p, the view that training epoch p sees, so the feature cache serves both); each
  pass's features are L2-normalised, averaged over passes and normalised again -> keys ``K`` (N x D).
  Values ``V`` = one-hot labels (N x C). Built in ``before_train`` (not when resuming: the
  checkpoint holds the trained keys) under a saved-and-restored RNG state, so the training
  randomness is the same whether the cache was computed or read from its file.
- Logits ``s * x W_c^T + ALPHA * exp(-BETA * (1 - x K^T)) V`` for the normalised image feature
  ``x``. ``s`` is CLIP's logit scale (exactly 100 for OpenAI CLIP, the literal of the paper; the
  random-init test backbones use their own scale). ``K`` is an ``nn.Linear`` initialised with the
  keys and trained with CE; ``V`` is a persistent buffer of the same checkpoint, so
  ``--eval-only --model-dir`` needs no cache. ``OPTIM.MAX_EPOCH 0`` gives training-free Tip-Adapter.
- The cache file ``OUTPUT_DIR/tip_adapter_cache/keys_<digest>.pt`` is keyed by dataset, TEST_ENV,
  domains, shots, seed, backbone, weights, transforms, AUGMENT_EPOCH and the exact training list;
  a file whose stored key differs is never used (the reference shared one file across datasets).
"""
import hashlib
import inspect
import json
import os
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..clip.text import text_features
from ..engine.trainer import TRAINER_REGISTRY, InferenceOutput
from .clip_base import FrozenCLIPTrainer
from .prompt_learner import normalize

CACHE_DIR_NAME = "tip_adapter_cache"


class TipCache(nn.Module):
    """Learnable keys (``keys.weight``: N x D) and fixed one-hot values (N x C)."""

    def __init__(self, labels, num_classes, dim):
        super().__init__()
        self.keys = nn.Linear(dim, len(labels), bias=False)
        nn.init.zeros_(self.keys.weight)
        self.register_buffer("values", F.one_hot(labels, num_classes).float())

    def forward(self, img, beta):
        affinity = self.keys(img)
        return torch.exp(-beta * (1.0 - affinity)) @ self.values


class _PreservedRNG:
    """Restores Python, NumPy and torch RNG states on exit."""

    def __enter__(self):
        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
                       torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        return self

    def __exit__(self, *exc):
        py, npy, cpu, cuda = self.states
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        return False


@TRAINER_REGISTRY.register("TIP_ADAPTER")
class TipAdapter(FrozenCLIPTrainer):
    def build_model(self):
        cfg = self.cfg.TRAINER.TIP_ADAPTER
        if cfg.AUGMENT_EPOCH < 1:
            raise ValueError(f"TRAINER.TIP_ADAPTER.AUGMENT_EPOCH must be >= 1, got {cfg.AUGMENT_EPOCH}")
        if not self.dataset.train_x:
            raise ValueError(f"TIP_ADAPTER needs training images for its cache; dataset "
                             f"{self.cfg.DATASET.NAME} has none")
        self.load_backbone()
        self.text = text_features(self.clip_model, self.tokenizer, self.classnames, ensemble=True,
                                  device=self.device).float()
        labels = torch.tensor([item.label for item in self.dataset.train_x], dtype=torch.long)
        self.cache = TipCache(labels, self.num_classes, self.feat_dim).to(self.device)
        self.register_model("tip_adapter", self.cache, *self.build_optimizer_and_scheduler(self.cache))
        self.logger.info(f"Tip-Adapter-F: cache of {len(labels)} training images, alpha {cfg.ALPHA}, "
                         f"beta {cfg.BETA}, {cfg.AUGMENT_EPOCH} augmented passes")

    # ------------------------------------------------------------------ cache model
    def cache_key(self):
        cfg, ds = self.cfg, self.dataset
        items = "\n".join(f"{item.impath}\t{item.label}" for item in ds.train_x)
        return {
            "dataset": cfg.DATASET.NAME, "test_env": cfg.TEST_ENV,
            "source_domains": list(ds.source_domains), "target_domains": list(ds.target_domains),
            "shots": cfg.DATASET.NUM_SHOTS, "seed": cfg.SEED,
            "backbone": cfg.MODEL.BACKBONE.NAME, "pretrained": str(cfg.MODEL.BACKBONE.PRETRAINED),
            "autocast": cfg.MODEL.AUTOCAST, "augment_epoch": cfg.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH,
            "input": {"size": list(cfg.INPUT.SIZE), "interpolation": cfg.INPUT.INTERPOLATION,
                      "transforms": list(cfg.INPUT.TRANSFORMS), "mean": list(cfg.INPUT.PIXEL_MEAN),
                      "std": list(cfg.INPUT.PIXEL_STD), "rrcrop_scale": list(cfg.INPUT.RRCROP_SCALE)},
            "train_items": hashlib.sha1(items.encode()).hexdigest(),
        }

    def cache_path(self, key):
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return os.path.join(self.output_dir, CACHE_DIR_NAME, f"keys_{digest}.pt")

    @torch.no_grad()
    def augmented_pass_features(self, pass_index):
        """Normalised features of one augmented pass over ``train_x`` (in ``train_x`` order)."""
        items = self.dataset.train_x
        if "view" in inspect.signature(self.dm.eval_loader).parameters:
            # Pass p is augmented view p: the same views as training epochs 0, 1, ..., so the
            # feature cache serves both.
            loader = self.dm.eval_loader(items, train_transform=True, name=f"train_x view {pass_index}",
                                         view=pass_index)
        else:
            loader = self.dm.eval_loader(items, train_transform=True)
        return torch.cat([normalize(self.batch_image_features(batch)) for batch in loader])

    @torch.no_grad()
    def compute_cache_keys(self):
        passes = self.cfg.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH
        total = None
        for p in range(passes):
            self.logger.info(f"Tip-Adapter cache: augmented pass {p + 1}/{passes}")
            feats = self.augmented_pass_features(p)
            total = feats if total is None else total + feats
        return normalize(total / passes)

    def build_cache_model(self):
        key = self.cache_key()
        path = self.cache_path(key)
        keys = None
        if os.path.isfile(path):
            stored = torch.load(path, map_location=self.device, weights_only=True)
            if stored.get("key") == key and tuple(stored["keys"].shape) == tuple(self.cache.keys.weight.shape):
                keys = stored["keys"]
                self.logger.info(f'Tip-Adapter cache loaded from "{path}"')
            else:
                self.logger.info(f'Tip-Adapter cache "{path}" belongs to another run; recomputing')
        if keys is None:
            with _PreservedRNG():
                keys = self.compute_cache_keys()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            torch.save({"key": key, "keys": keys.cpu()}, tmp)
            os.replace(tmp, path)
            self.logger.info(f'Tip-Adapter cache saved to "{path}"')
        with torch.no_grad():
            self.cache.keys.weight.copy_(keys.to(self.cache.keys.weight))

    def before_train(self):
        super().before_train()  # resumes the trained keys when a checkpoint exists
        if self.start_epoch == 0:
            self.build_cache_model()

    # ------------------------------------------------------------------ model
    def tip_logits(self, features):
        cfg = self.cfg.TRAINER.TIP_ADAPTER
        img = normalize(features.float())
        clip_logits = self.logit_scale * img @ self.text.t()
        return clip_logits + cfg.ALPHA * self.cache(img, cfg.BETA), img

    def forward_backward(self, batch):
        labels = batch["label"].to(self.device, non_blocking=True)
        logits, _ = self.tip_logits(self.batch_image_features(batch))
        loss = F.cross_entropy(logits, labels)
        self.model_backward_and_update(loss)
        return {"loss": loss.item(), "acc": 100.0 * (logits.argmax(1) == labels).float().mean().item()}

    @torch.no_grad()
    def inference_from_features(self, features):
        logits, img = self.tip_logits(features)
        return InferenceOutput(logits, img, self.text)

    def hparams(self):
        cfg = self.cfg.TRAINER.TIP_ADAPTER
        return {"alpha": cfg.ALPHA, "beta": cfg.BETA, "augment_epoch": cfg.AUGMENT_EPOCH}
