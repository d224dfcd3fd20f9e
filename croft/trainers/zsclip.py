"""Zero-shot CLIP: no training, logits ``s * norm(x) norm(t)^T`` (spec §6)."""
from ..engine.trainer import TRAINER_REGISTRY, InferenceOutput
from .clip_base import FrozenCLIPTrainer
from .croft_objective import l2norm


@TRAINER_REGISTRY.register("ZeroshotCLIP")
class ZeroshotCLIP(FrozenCLIPTrainer):
    trains = False

    def build_model(self):
        self.load_backbone()
        self.text = l2norm(self.class_text_features())

    def inference_from_features(self, features):
        img = l2norm(features)
        return InferenceOutput(self.logit_scale * img @ self.text.t(), img, self.text)

    def hparams(self):
        return {"template": self.cfg.DATASET.PROMPT_TEMPLATE, "ensemble": self.cfg.DATASET.PROMPT_ENSEMBLE}
