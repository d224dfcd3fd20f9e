"""CRoFT (ICML 2024): robust fine-tuning of a frozen CLIP with light adapters.

Objective, in five lines (the rest is in docs/method.md §1.3–§4.2):
1. Adapters ``W_i``, ``W_t`` mix into the raw CLIP features; logits ``s * cos(I^, T^)``.
2. A generator ``M`` perturbs image features, ``C^ = norm(I^ M + I^)``, away from their class.
3. EDR: a consistency term on ``C^`` plus the squared gradient of an exp(cos) "energy"
   with respect to a shared perturbation of both adapters (double backprop).
4. Per batch: one forward, ``gen_step`` generator updates, then ``CE + EDR``; every update
   steps both SGD optimizers, with gradients from the batch's single forward graph.
"""
import torch

from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .clip_base import FrozenCLIPMethod
from .croft_objective import Adapter, CRoFTHyper, OODImgGen, croft_batch_update, croft_forward


@register_method("CRoFT")
class CRoFTMethod(FrozenCLIPMethod):
    """CRoFT's model, training step and inference, on any engine that keeps the engine contract."""

    @classmethod
    def evaluates_unseen_classes(cls, cfg):
        """The learnt state (the D x D adapter and generator) does not depend on the class list, so ``--eval-only``
        may evaluate other classes (base-to-new, docs/protocols.md §8.3)."""
        return True

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        c = cfg.TRAINER.CRoFT
        if c.gen_step < 0:
            raise ValueError(f"invalid value for 'TRAINER.CRoFT.gen_step': {c.gen_step}; expected >= 0")
        for key in ("ratio", "ratio_text"):
            if not 0.0 <= c[key] <= 1.0:
                raise ValueError(f"invalid value for 'TRAINER.CRoFT.{key}': {c[key]}; expected a ratio in [0, 1]")
        for key in ("EVAL_RATIO", "EVAL_RATIO_TEXT"):
            if c[key] > 1.0:
                raise ValueError(f"invalid value for 'TRAINER.CRoFT.{key}': {c[key]}; expected a ratio in [0, 1], "
                                 "or negative for the training value")

    def build_model(self):
        cfg = self.cfg.TRAINER.CRoFT
        self.load_backbone()
        self.text_raw = self.class_text_features()
        self.adapter = Adapter(self.feat_dim).to(self.device)
        self.generator = OODImgGen(self.feat_dim).to(self.device)
        # Checkpoint sub-folders as in the reference (docs/method.md §4.4; docs/results-schema.md §1).
        self.register_model("clip_adapter", self.adapter, *self.build_optimizer_and_scheduler(self.adapter))
        self.register_model("generator", self.generator, *self.build_optimizer_and_scheduler(self.generator))
        self.hp = CRoFTHyper(ratio=cfg.ratio, ratio_text=cfg.ratio_text, lambda1=cfg.lambda1, lambda2=cfg.lambda2,
                             wccf=cfg.WCCF, gen_step=cfg.gen_step, reduction=cfg.EDR_REDUCTION,
                             edr_wccf_branch=cfg.EDR_WCCF_BRANCH)

    def backward_and_update(self, loss):
        # Zero both, backward keeping the graph, step both (docs/method.md §4.1–§4.2).
        self.model_backward_and_update(loss, retain_graph=True)

    def forward_backward(self, batch):
        x_raw, labels = self.parse_batch_train(batch)
        return croft_batch_update(x_raw, self.text_raw, labels, self.adapter, self.generator, self.logit_scale,
                                  self.hp, self.backward_and_update)

    def inference_ratios(self, settings=TRAINING):
        """The mixing ratios: the training ones, or ``EVAL_RATIO*`` in the final evaluation (docs/method.md §4.5)."""
        cfg = self.cfg.TRAINER.CRoFT
        if not settings.final:
            return cfg.ratio, cfg.ratio_text
        return (cfg.EVAL_RATIO if cfg.EVAL_RATIO >= 0 else cfg.ratio,
                cfg.EVAL_RATIO_TEXT if cfg.EVAL_RATIO_TEXT >= 0 else cfg.ratio_text)

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        ratio, ratio_text = self.inference_ratios(settings)
        out = croft_forward(features, self.text_raw, self.adapter, self.logit_scale,
                            ratio, ratio_text)
        return InferenceOutput(out.logits, out.img, out.txt)
