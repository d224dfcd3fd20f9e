"""VLAD (Zhu et al., IJCV 2024): a residual adapter on the frozen image features (and optionally on
the text features) with a neighbourhood-alignment regulariser.

``X' = ratio * fc(X) + (1 - ratio) * X`` with ``fc`` linear (``Linear(D, D)``) or non-linear
(``D -> D/4 -> D`` with ReLUs), logits ``s cos(X', T)`` with CLIP's logit scale; loss
``CE + lambda2 L_d + lambda1 L_a`` over pairs of neighbours in the batch
(croft/trainers/vlad_objective.py; docs/method.md §6.9). The class text features are computed
once from ``TRAINER.VLAD.PROMPTS``; with ``TEXT_ENHANCED`` a second adapter ``fc_t`` mixes into
them (``ratio_text``). The open-set scores read the logits (energy = logsumexp), the adapted image
features and the text features, like every method. Checkpoint: ``clip_adapter/`` (``fc.*``, and
``fc_t.*`` with ``TEXT_ENHANCED``).
"""
import torch

from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .clip_base import FrozenCLIPMethod
from .vlad_objective import NEIGHBOUR_RULES, VLADAdapter, VLADHyper, vlad_forward, vlad_loss
from .zsclip import check_prompts


@register_method("VLAD")
class VLADMethod(FrozenCLIPMethod):
    """VLAD, engine-independent."""

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        c = cfg.TRAINER.VLAD
        for key in ("ratio", "ratio_text"):
            if not 0.0 <= c[key] <= 1.0:
                raise ValueError(f"invalid value for 'TRAINER.VLAD.{key}': {c[key]}; expected a ratio in [0, 1]")
        for key in ("lambda1", "lambda2"):
            if c[key] < 0:
                raise ValueError(f"invalid value for 'TRAINER.VLAD.{key}': {c[key]}; expected a weight >= 0")
        if c.knn < 1:
            raise ValueError(f"invalid value for 'TRAINER.VLAD.knn': {c.knn}; expected >= 1")
        if c.NEIGHBOURS not in NEIGHBOUR_RULES:
            raise ValueError(f"invalid value for 'TRAINER.VLAD.NEIGHBOURS': {c.NEIGHBOURS!r}; "
                             f"expected one of {list(NEIGHBOUR_RULES)}")
        check_prompts(c.PROMPTS, "TRAINER.VLAD.PROMPTS")

    def build_model(self):
        cfg = self.cfg.TRAINER.VLAD
        self.load_backbone()
        self.text_raw = self.class_text_features(cfg.PROMPTS)
        self.adapter = VLADAdapter(self.feat_dim, non_linear=cfg.non_linear_adapter,
                                   text=cfg.TEXT_ENHANCED).to(self.device)
        # The reference's checkpoint folder name.
        self.register_model("clip_adapter", self.adapter, *self.build_optimizer_and_scheduler(self.adapter))
        self.hyper = VLADHyper(ratio=cfg.ratio, ratio_text=cfg.ratio_text, lambda1=cfg.lambda1, lambda2=cfg.lambda2,
                               knn=cfg.knn, neighbours=cfg.NEIGHBOURS)

    def forward(self, features):
        return vlad_forward(features.float(), self.text_raw, self.adapter, self.logit_scale,
                            self.hyper.ratio, self.hyper.ratio_text)

    def forward_backward(self, batch):
        features, labels = self.parse_batch_train(batch)
        out = self.forward(features)
        terms = vlad_loss(out, labels, self.hyper)
        self.model_backward_and_update(terms.loss)
        return dict(self.batch_stats(terms.loss, out.logits, labels), **terms.stats())

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        out = self.forward(features)
        return InferenceOutput(out.logits, out.img, out.txt)
