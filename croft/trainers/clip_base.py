"""Shared set-up of trainers built on a frozen CLIP: backbone loading, text features, feature source, encode.

Every method of croft is written as an engine-independent *method class* (a mixin) that uses only
the engine contract documented in :mod:`croft.engine.trainer` (``ENGINE_CONTRACT``). A registered
trainer is ``Method + engine base``: ``Method + TrainerBase`` on croft's engine, and
``Method + croft.dassl_bridge adapter + dassl.engine.TrainerX`` inside Dassl/CoOp.
"""
from ..clip.backbone import feature_dim, logit_scale
from ..clip.image_encoder import FrozenImageEncoder
from ..clip.text import text_features
from ..data.feature_source import CachedSource, EncoderSource, ImageSource
from ..engine import shared
from ..evaluation.inference import TRAINING


class FrozenCLIPMethod:
    """Loads the frozen CLIP of ``MODEL.BACKBONE`` and the class-name text features once.

    A method with ``frozen_encoder = True`` (every method but FT / LP-FT) gets batches of frozen
    image features (:class:`~croft.data.batch.Batch`). With ``CACHE.ENABLED`` (the default) they
    come from the on-disk feature cache (each image view encoded once, ``docs/architecture.md``),
    and ``class_text_features`` is cached too; with ``CACHE.ENABLED False`` the images go through
    the encoder on every pass. Both give the same numbers. A method with ``frozen_encoder = False``
    gets batches of images (the online pipeline, whatever ``CACHE.ENABLED`` says) and overrides
    :meth:`encode`.

    Engine-independent: it uses only the engine contract (``cfg``, ``device``, ``logger``,
    ``classnames``), so it runs on croft's :class:`~croft.engine.trainer.TrainerBase` and on the
    Dassl adapter of :mod:`croft.dassl_bridge` alike.
    """

    feature_cache = None
    frozen_encoder = True

    def load_backbone(self):
        cfg = self.cfg
        self.clip_model, self.tokenizer = shared.load_backbone(
            cfg.MODEL.BACKBONE.NAME, pretrained=cfg.MODEL.BACKBONE.PRETRAINED, device=self.device,
            cache_dir=cfg.MODEL.BACKBONE.CACHE_DIR, allow_torchscript=cfg.MODEL.BACKBONE.ALLOW_TORCHSCRIPT)
        self.feat_dim = feature_dim(self.clip_model)
        self.logit_scale = logit_scale(self.clip_model)
        self.image_encoder = FrozenImageEncoder(self.clip_model, self.device, cfg.MODEL.AUTOCAST)
        self.logger.info(f"Loaded CLIP {cfg.MODEL.BACKBONE.NAME} ({cfg.MODEL.BACKBONE.PRETRAINED}), "
                         f"D = {self.feat_dim}, logit scale = {self.logit_scale:.2f}")
        if cfg.CACHE.ENABLED and not self.frozen_encoder:
            self.logger.info(f"Feature cache: not used; trainer {cfg.TRAINER.NAME} trains its image encoder, so "
                             "its images go through the online pipeline on every pass")
        elif cfg.CACHE.ENABLED:
            from ..data.feature_cache import FeatureCache

            self.feature_cache = FeatureCache.for_encoder(cfg, self.clip_model, self.image_encoder, self.device,
                                                          memo=shared.feature_memo())
            self.logger.info(f"Feature cache: {self.feature_cache.model_dir}")

    def feature_source(self):
        pin = self.device.type == "cuda"
        if not self.frozen_encoder:
            return ImageSource(self.device, self.cfg.DATALOADER.NUM_WORKERS, pin_memory=pin)
        if self.feature_cache is not None:
            return CachedSource(self.feature_cache)
        return EncoderSource(self.encode, self.device, self.cfg.DATALOADER.NUM_WORKERS, pin_memory=pin)

    def encode(self, images, settings=TRAINING):
        """Raw fp32 features of a batch of transformed images: the frozen CLIP image encoder."""
        return self.image_encoder(images)

    def class_text_features(self, ensemble=None):
        """Class text features (``docs/method.md`` §1.2): the raw features of the single template
        ``DATASET.PROMPT_TEMPLATE``, or the unit-norm 7-template ensemble.

        ``ensemble`` is True / False, or a trainer's prompt choice (its ``TRAINER.<NAME>.PROMPTS``
        key): ``"ensemble"``, ``"template"`` or ``"dataset"``. ``None`` and ``"dataset"`` follow
        ``DATASET.PROMPT_ENSEMBLE``. The choice made is kept as ``self.prompt_ensemble``.
        Which method used which prompt in the original: docs/differences.md.
        """
        choices = {"dataset": None, "template": False, "ensemble": True}
        if isinstance(ensemble, str):
            if ensemble not in choices:
                raise ValueError(f"invalid prompt choice {ensemble!r}; expected one of {list(choices)}")
            ensemble = choices[ensemble]
        template = self.cfg.DATASET.PROMPT_TEMPLATE
        ensemble = bool(self.cfg.DATASET.PROMPT_ENSEMBLE if ensemble is None else ensemble)
        self.prompt_ensemble = ensemble

        def compute():
            return text_features(self.clip_model, self.tokenizer, self.classnames, template=template,
                                 ensemble=ensemble, device=self.device).float()

        if self.feature_cache is None:
            return compute()
        key = {"what": "class_text_features", "classnames": list(self.classnames),
               "template": None if ensemble else template, "ensemble": ensemble}
        return self.feature_cache.cached_tensor("text", key, compute).to(self.device)
