"""CLIP-Adapter (Gao et al. 2021): a residual bottleneck MLP on the frozen image features.

``a(x) = ReLU(ReLU(x W1) W2)`` with ``W1: D -> D/REDUCTION`` and ``W2: D/REDUCTION -> D`` (no
biases), ``x' = RATIO * a(x) + (1 - RATIO) * x`` on the raw CLIP image feature, logits
``s * cos(x', t_c)`` with CLIP's logit scale. The class text features are computed once (the text
side is constant) from ``TRAINER.CLIP_Adapter.PROMPTS``: ``"dataset"`` (default: follow
``DATASET.PROMPT_ENSEMBLE``), ``"template"`` (``DATASET.PROMPT_TEMPLATE`` alone) or ``"ensemble"``.
The original CLIP-Adapter used the single template ``"a photo of a {}."`` on every dataset it
could run (ImageNet46 included; ImageNetOOD46 was a KeyError there), so
``configs/datasets/imagenet46.yaml`` sets ``"template"`` (docs/differences.md, "Prompts per
method"). CE loss. Both encoders are frozen, so training and evaluation run on (cached) image
features.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import normalize
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .clip_base import FrozenCLIPMethod
from .zsclip import check_prompts


class BottleneckAdapter(nn.Module):
    def __init__(self, dim, reduction=4):
        super().__init__()
        hidden = max(1, dim // reduction)
        self.fc = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, dim, bias=False), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.fc(x)


@register_method("CLIP_Adapter")
class CLIPAdapterMethod(FrozenCLIPMethod):
    """CLIP-Adapter, engine-independent."""

    @classmethod
    def evaluates_unseen_classes(cls, cfg):
        """The learnt state (the image-feature adapter) does not depend on the class list, so ``--eval-only``
        may evaluate other classes (base-to-new, docs/protocols.md §8.3)."""
        return True

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        if not 0.0 <= cfg.TRAINER.CLIP_Adapter.RATIO <= 1.0:
            raise ValueError(f"invalid value for 'TRAINER.CLIP_Adapter.RATIO': {cfg.TRAINER.CLIP_Adapter.RATIO}; "
                             "expected a ratio in [0, 1]")
        if cfg.TRAINER.CLIP_Adapter.REDUCTION < 1:
            raise ValueError(f"invalid value for 'TRAINER.CLIP_Adapter.REDUCTION': "
                             f"{cfg.TRAINER.CLIP_Adapter.REDUCTION}; expected >= 1")
        check_prompts(cfg.TRAINER.CLIP_Adapter.PROMPTS, "TRAINER.CLIP_Adapter.PROMPTS")

    def build_model(self):
        cfg = self.cfg.TRAINER.CLIP_Adapter
        self.load_backbone()
        self.text = normalize(self.class_text_features(cfg.PROMPTS))
        self.adapter = BottleneckAdapter(self.feat_dim, cfg.REDUCTION).to(self.device)
        self.register_model("adapter", self.adapter, *self.build_optimizer_and_scheduler(self.adapter))

    def adapted_features(self, features):
        ratio = self.cfg.TRAINER.CLIP_Adapter.RATIO
        features = features.float()
        return normalize(ratio * self.adapter(features) + (1.0 - ratio) * features)

    def forward_backward(self, batch):
        features, labels = self.parse_batch_train(batch)
        img = self.adapted_features(features)
        logits = self.logit_scale * img @ self.text.t()
        loss = F.cross_entropy(logits, labels)
        self.model_backward_and_update(loss)
        return self.batch_stats(loss, logits, labels)

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        img = self.adapted_features(features)
        return InferenceOutput(self.logit_scale * img @ self.text.t(), img, self.text)
