"""Zero-shot CLIP: no training, logits ``s * norm(x) norm(t)^T`` (docs/method.md §6.2).

The class prompts come from ``TRAINER.ZeroshotCLIP.PROMPTS``: ``"dataset"`` (default: follow
``DATASET.PROMPT_ENSEMBLE``), ``"template"`` (``DATASET.PROMPT_TEMPLATE`` alone) or ``"ensemble"``.
The original's zero-shot CLIP used the single template ``"a photo of a {}."`` on every dataset,
ImageNet46 included, so ``configs/datasets/imagenet46.yaml`` sets ``"template"`` while CRoFT keeps
its ensemble there (docs/differences.md, "Prompts per method").
"""
from ..clip.feature_math import l2norm
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .clip_base import FrozenCLIPMethod

#: Values of a trainer's ``PROMPTS`` key (``TRAINER.ZeroshotCLIP.PROMPTS``, ``TRAINER.CLIP_Adapter.PROMPTS``).
PROMPT_CHOICES = ("dataset", "template", "ensemble")


def check_prompts(value, key):
    """Raise ``ValueError`` naming ``key`` unless ``value`` is one of :data:`PROMPT_CHOICES`."""
    if value not in PROMPT_CHOICES:
        raise ValueError(f"invalid value for '{key}': {value!r}; expected one of {list(PROMPT_CHOICES)}")


@register_method("ZeroshotCLIP", dassl_name="CroftZeroshotCLIP")
class ZeroshotCLIPMethod(FrozenCLIPMethod):
    """Zero-shot CLIP, engine-independent (nothing to train)."""

    trains = False

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        check_prompts(cfg.TRAINER.ZeroshotCLIP.PROMPTS, "TRAINER.ZeroshotCLIP.PROMPTS")

    def build_model(self):
        self.load_backbone()
        self.text = l2norm(self.class_text_features(self.cfg.TRAINER.ZeroshotCLIP.PROMPTS))

    def inference(self, features, settings=TRAINING):
        img = l2norm(features)
        return InferenceOutput(self.logit_scale * img @ self.text.t(), img, self.text)
