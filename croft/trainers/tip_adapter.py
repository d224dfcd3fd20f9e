"""Tip-Adapter-F (Zhang et al. 2022): a key-value cache of the few-shot training set, with
learnable keys.

- Zero-shot classifier ``W_c``: unit-norm 7-template ensemble of the class names
  (``croft.clip.templates.ENSEMBLE_TEMPLATES``), fixed, as in the reference.
- Cache: ``AUGMENT_EPOCH`` passes over ``train_x`` with the training augmentation (pass p is
  augmented view p, the view that training epoch p sees, so the feature cache serves both); the
  raw image features are averaged over the passes and L2-normalised once -> keys ``K`` (N x D), as
  in the paper ("normalised mean of the few-shot train features"). Values ``V`` = one-hot labels
  (N x C). The cache module is sized lazily: ``build_model`` registers an empty (0-key)
  placeholder; ``before_train`` builds the ``train_x``-sized cache (not when resuming) under a
  saved-and-restored RNG state, so the training randomness is the same whether the cache was
  computed or read from its file; ``load_model`` / resume size it from the checkpoint
  (N from ``keys.weight``, C from ``values``), so ``--eval-only --model-dir`` works whatever the
  evaluation run's training set is, and allocates nothing of ``train_x``'s size.
- Logits ``s * x W_c^T + ALPHA * exp(-BETA * (1 - x K^T)) V`` for the normalised image feature
  ``x``. ``s`` is CLIP's logit scale (exactly 100 for OpenAI CLIP, the literal of the paper; the
  random-init test backbones use their own scale). ``K`` is an ``nn.Linear`` initialised with the
  keys and trained with CE; ``V`` is a persistent buffer of the same checkpoint, so
  ``--eval-only --model-dir`` needs no cache. ``OPTIM.MAX_EPOCH 0`` gives training-free Tip-Adapter
  (no optimizer; ``model-best`` and ``model.pth.tar-0`` are written once the cache is built, so
  it can be re-evaluated with ``--eval-only --model-dir``).
- The cache file ``OUTPUT_DIR/tip_adapter_cache/keys_<digest>.pt`` is keyed by dataset, TEST_ENV,
  domains, shots, seed, backbone, the frozen model's identity (that of the feature cache:
  architecture, weights identity -- SHA-256 of a checkpoint file's content, or of the state dict
  for random init --, open_clip version, device, precision), transforms, AUGMENT_EPOCH and the
  exact training list; a file whose stored key differs is never used (the reference shared one
  file across datasets), nor one of a checkpoint retrained at the same path.
"""
import hashlib
import json
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import normalize
from ..data.feature_cache import model_identity
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from ..utils.layout import TIP_ADAPTER_CACHE_DIR as CACHE_DIR_NAME
from ..utils.atomic import atomic_write
from ..utils.rng import preserved_rng
from .clip_base import FrozenCLIPMethod

MODEL_NAME = "tip_adapter"


class _ZeroLinear(nn.Linear):
    """``nn.Linear`` initialised to zero: no draw from the global RNG, any size (0 rows included)."""

    def reset_parameters(self):
        nn.init.zeros_(self.weight)


class TipCache(nn.Module):
    """Learnable keys (``keys.weight``: N x D) and fixed one-hot values (N x C).

    With ``labels`` the values are their one-hot rows; without, N zero rows (filled by a checkpoint).
    The keys start at zero and draw nothing from the global RNG: the cache file or a checkpoint
    overwrites them.
    """

    def __init__(self, num_keys, num_classes, dim, labels=None):
        super().__init__()
        self.keys = _ZeroLinear(dim, num_keys, bias=False)
        if labels is None:
            values = torch.zeros(num_keys, num_classes)
        else:
            if len(labels) != num_keys:
                raise ValueError(f"TipCache: {len(labels)} labels for {num_keys} keys")
            values = F.one_hot(labels, num_classes).float()
        self.register_buffer("values", values)

    @property
    def num_keys(self):
        return self.keys.weight.shape[0]

    def forward(self, img, beta):
        affinity = self.keys(img)
        return torch.exp(-beta * (1.0 - affinity)) @ self.values


@register_method("TIP_ADAPTER")
class TipAdapterMethod(FrozenCLIPMethod):
    """Tip-Adapter-F, engine-independent."""

    @classmethod
    def check_cfg(cls, cfg):
        # Training-free Tip-Adapter is OPTIM.MAX_EPOCH 0, so no minimum of 1 epoch here.
        if cfg.OPTIM.MAX_EPOCH < 0:
            raise ValueError(f"invalid value for 'OPTIM.MAX_EPOCH': {cfg.OPTIM.MAX_EPOCH}; expected >= 1, "
                             "or 0 for training-free Tip-Adapter")
        if cfg.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH < 1:
            raise ValueError(f"invalid value for 'TRAINER.TIP_ADAPTER.AUGMENT_EPOCH': "
                             f"{cfg.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH}; expected >= 1")

    def build_model(self):
        cfg = self.cfg.TRAINER.TIP_ADAPTER
        if not self.dataset.train_x:
            raise ValueError(f"TIP_ADAPTER needs training images for its cache; dataset "
                             f"{self.cfg.DATASET.NAME} has none")
        self.load_backbone()
        self.text = self.class_text_features(ensemble=True)
        # An empty placeholder: ``before_train`` sizes the cache from train_x, ``load_model`` and
        # resume from the checkpoint (whose N may differ from this run's train_x).
        self.install_cache(TipCache(0, self.num_classes, self.feat_dim))
        self.logger.info(f"Tip-Adapter-F: alpha {cfg.ALPHA}, beta {cfg.BETA}, {cfg.AUGMENT_EPOCH} augmented "
                         f"passes" + (", training-free (OPTIM.MAX_EPOCH 0)" if self.max_epoch == 0 else ""))

    def install_cache(self, cache):
        """Make ``cache`` the registered model, with a fresh optimizer and scheduler (none without training)."""
        self.cache = cache.to(self.device)
        for registry in (self._models, self._optims, self._scheds):
            registry.pop(MODEL_NAME, None)
        optim, sched = (None, None) if self.max_epoch == 0 else self.build_optimizer_and_scheduler(self.cache)
        self.register_model(MODEL_NAME, self.cache, optim, sched)

    def install_train_cache(self):
        """The cache of this run's ``train_x``: one key per training image (keys still zero)."""
        labels = torch.tensor([item.label for item in self.dataset.train_x], dtype=torch.long)
        self.install_cache(TipCache(len(labels), self.num_classes, self.feat_dim, labels))
        self.logger.info(f"Tip-Adapter-F: cache of {len(labels)} training images")

    def prepare_to_load(self, name, state_dict, source):
        """Size the cache module like the checkpoint (N keys, C classes) before loading it."""
        if name != MODEL_NAME:
            return
        if "keys.weight" not in state_dict or "values" not in state_dict:
            raise KeyError(f'checkpoint "{source}" is not a Tip-Adapter cache (no keys.weight / values); '
                           f"found {sorted(state_dict)}")
        num_keys, dim = state_dict["keys.weight"].shape
        num_classes = state_dict["values"].shape[1]
        if dim != self.feat_dim or num_classes != self.num_classes:
            raise ValueError(f'checkpoint "{source}" holds a Tip-Adapter cache of dimension {dim} and {num_classes} '
                             f"classes; this run has dimension {self.feat_dim} ({self.cfg.MODEL.BACKBONE.NAME}) and "
                             f"{self.num_classes} classes ({self.cfg.DATASET.NAME})")
        if tuple(self.cache.values.shape) != (num_keys, num_classes):
            self.install_cache(TipCache(num_keys, num_classes, dim))
        if num_keys != len(self.dataset.train_x):
            self.logger.info(f'Tip-Adapter checkpoint "{source}" holds {num_keys} cached training images '
                             f"(this run's train_x has {len(self.dataset.train_x)})")

    # ------------------------------------------------------------------ cache model
    def model_identity(self):
        """What determines the frozen features: the feature cache's model identity (weights by content)."""
        if self.feature_cache is not None:
            return self.feature_cache.identity
        return model_identity(self.cfg, self.clip_model, self.device)

    def cache_key(self):
        cfg, ds = self.cfg, self.dataset
        items = "\n".join(f"{item.impath}\t{item.label}" for item in ds.train_x)
        return {
            "dataset": cfg.DATASET.NAME, "test_env": cfg.TEST_ENV,
            "source_domains": list(ds.source_domains), "target_domains": list(ds.target_domains),
            "shots": cfg.DATASET.NUM_SHOTS, "seed": cfg.SEED,
            "backbone": cfg.MODEL.BACKBONE.NAME, "model": self.model_identity(),
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
        """Raw features of one augmented pass over ``train_x`` (in ``train_x`` order)."""
        # Pass p is augmented view p: the same views as training epochs 0, 1, ..., so the
        # feature cache serves both.
        loader = self.dm.eval_loader(self.dataset.train_x, train_transform=True,
                                     name=f"train_x view {pass_index}", view=pass_index)
        return torch.cat([batch.features for batch in loader])

    @torch.no_grad()
    def compute_cache_keys(self):
        """Mean of the raw features over the augmented passes, L2-normalised once (the paper's order)."""
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
            with preserved_rng():
                keys = self.compute_cache_keys()
            atomic_write(path, lambda f: torch.save({"key": key, "keys": keys.cpu()}, f), binary=True)
            self.logger.info(f'Tip-Adapter cache saved to "{path}"')
        with torch.no_grad():
            self.cache.keys.weight.copy_(keys.to(self.cache.keys.weight))

    def before_train(self):
        super().before_train()  # resumes the trained keys when a checkpoint exists
        if self.start_epoch == 0:
            self.install_train_cache()
            self.build_cache_model()
            if self.max_epoch == 0:
                # Training-free: the cache model is final; write it so --eval-only can load it.
                self.save_model(-1, is_best=True)
                self.save_model(-1)

    # ------------------------------------------------------------------ model
    def tip_logits(self, features):
        cfg = self.cfg.TRAINER.TIP_ADAPTER
        if self.cache.num_keys == 0:
            raise RuntimeError("Tip-Adapter cache is empty: train, or load a checkpoint (--eval-only --model-dir)")
        img = normalize(features.float())
        clip_logits = self.logit_scale * img @ self.text.t()
        return clip_logits + cfg.ALPHA * self.cache(img, cfg.BETA), img

    def forward_backward(self, batch):
        features, labels = self.parse_batch_train(batch)
        logits, _ = self.tip_logits(features)
        loss = F.cross_entropy(logits, labels)
        self.model_backward_and_update(loss)
        return self.batch_stats(loss, logits, labels)

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        logits, img = self.tip_logits(features)
        return InferenceOutput(logits, img, self.text)
