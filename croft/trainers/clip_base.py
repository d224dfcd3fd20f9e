"""Shared set-up of trainers built on a frozen CLIP: backbone loading and text features."""
import torch

from ..clip.backbone import feature_dim, load_clip, logit_scale
from ..clip.text import text_features
from ..engine.trainer import InferenceOutput, TrainerBase


class FrozenCLIPTrainer(TrainerBase):
    """Loads the frozen CLIP of ``MODEL.BACKBONE`` and the class-name text features once.

    With ``CACHE.ENABLED`` (the default) the image encoder is frozen, so ``load_backbone`` attaches
    the on-disk feature cache (:mod:`croft.engine.feature_cache`): every loader then yields batches
    with raw features in ``batch["feat"]`` instead of images, and ``class_text_features`` is cached
    too. A subclass whose updates need pixels (or change the image encoder) sets
    ``use_feature_cache = False``; everything else reads images through :meth:`batch_image_features`.
    """

    #: Whether this trainer may run on cached image features (the image encoder must stay frozen).
    use_feature_cache = True
    feature_cache = None

    def load_backbone(self):
        cfg = self.cfg
        self.clip_model, self.tokenizer = load_clip(
            cfg.MODEL.BACKBONE.NAME, pretrained=cfg.MODEL.BACKBONE.PRETRAINED, device=self.device,
            cache_dir=cfg.MODEL.BACKBONE.CACHE_DIR)
        self.feat_dim = feature_dim(self.clip_model)
        self.logit_scale = logit_scale(self.clip_model)
        self.logger.info(f"Loaded CLIP {cfg.MODEL.BACKBONE.NAME} ({cfg.MODEL.BACKBONE.PRETRAINED}), "
                         f"D = {self.feat_dim}, logit scale = {self.logit_scale:.2f}")
        self.setup_feature_cache()

    def setup_feature_cache(self):
        """Serve the data manager's loaders from the feature cache (``CACHE.ENABLED``)."""
        if not (self.cfg.CACHE.ENABLED and self.use_feature_cache):
            return
        from ..engine.feature_cache import FeatureCache

        self.feature_cache = FeatureCache.for_trainer(self)
        self.logger.info(f"Feature cache: {self.feature_cache.model_dir}")
        self.dm.attach_feature_cache(self.feature_cache)
        self.train_loader_x = self.dm.train_loader_x
        self.val_loader = self.dm.val_loader
        self.test_loader = self.dm.test_loader

    def class_text_features(self):
        """Raw single-template features, or the unit-norm 7-template ensemble (spec §1.2)."""
        template, ensemble = self.cfg.DATASET.PROMPT_TEMPLATE, self.cfg.DATASET.PROMPT_ENSEMBLE

        def compute():
            return text_features(self.clip_model, self.tokenizer, self.classnames, template=template,
                                 ensemble=ensemble, device=self.device).float()

        if self.feature_cache is None:
            return compute()
        key = {"what": "class_text_features", "classnames": list(self.classnames),
               "template": None if ensemble else template, "ensemble": bool(ensemble)}
        return self.feature_cache.cached_tensor("text", key, compute).to(self.device)

    def autocast(self):
        mode = self.cfg.MODEL.AUTOCAST
        if self.device.type != "cuda" or mode == "fp32":
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type="cuda", dtype=torch.float16 if mode == "fp16" else torch.bfloat16)

    def batch_image_features(self, batch):
        """Raw frozen image features of a batch: precomputed (``batch["feat"]``) or encoded now."""
        if "feat" in batch:
            return batch["feat"].to(self.device, non_blocking=True).float()
        return self.encode_images(batch["img"].to(self.device, non_blocking=True))

    def inference_from_features(self, features) -> InferenceOutput:
        raise NotImplementedError

    def model_inference(self, images):
        return self.inference_from_features(self.encode_images(images))

    def infer_batch(self, batch):
        labels = batch["label"].to(self.device, non_blocking=True)
        with torch.no_grad():
            return self.inference_from_features(self.batch_image_features(batch)), labels

    @torch.no_grad()
    def encode_images(self, images):
        """Raw (unnormalised) fp32 image features of the frozen encoder."""
        with self.autocast():
            features = self.clip_model.encode_image(images)
        return features.float()
