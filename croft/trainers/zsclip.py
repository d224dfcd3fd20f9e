"""Zero-shot CLIP: no training, logits ``s * norm(x) norm(t)^T`` (docs/method.md §6.2)."""
from ..clip.feature_math import l2norm
from ..engine.trainer import TRAINER_REGISTRY
from ..evaluation.inference import TRAINING, InferenceOutput
from .clip_base import FrozenCLIPTrainer


@TRAINER_REGISTRY.register("ZeroshotCLIP")
class ZeroshotCLIP(FrozenCLIPTrainer):
    trains = False

    def build_model(self):
        self.load_backbone()
        self.text = l2norm(self.class_text_features())

    def inference(self, features, settings=TRAINING):
        img = l2norm(features)
        return InferenceOutput(self.logit_scale * img @ self.text.t(), img, self.text)

    def hparams(self):
        return {"template": self.cfg.DATASET.PROMPT_TEMPLATE, "ensemble": self.cfg.DATASET.PROMPT_ENSEMBLE}
