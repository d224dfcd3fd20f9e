"""FT, LP-FT and WiSE-FT: fine-tuning CLIP's image encoder end to end (docs/method.md §6.10).

**FT.** A copy of CLIP's image encoder (the backbone that is loaded, and shared between the runs of
an in-process sweep, stays frozen and keeps the zero-shot weights) and a linear head on the
L2-normalised image features, ``logits = W norm(f) + b``, initialised as WiSE-FT's zero-shot head:
``W = s * t`` (``s`` CLIP's logit scale, ``t`` the L2-normalised class text features of zero-shot
CLIP's prompts, ``TRAINER.<NAME>.PROMPTS``) and ``b = 0``. Both are trained with cross-entropy by
``OPTIM`` (AdamW with a cosine schedule and a small LR in ``configs/trainers/FT``).

**LP-FT** (Kumar et al., ICLR 2022). The same model; for the first ``LP_EPOCHS`` epochs the head
alone is trained (the linear probe: the encoder frozen and in eval mode, the head at the constant
LR ``LP_LR``), then everything, with ``OPTIM``'s schedule (warm-up, cosine) run over the remaining
epochs.

**WiSE-FT** (Wortsman et al., CVPR 2022). The final evaluation uses every weight of the encoder and
the head interpolated, ``(1 - a) * zero-shot + a * fine-tuned`` with ``a = TRAINER.<NAME>.WISE_ALPHA``
(validation during training always uses the fine-tuned model). At ``a = 0`` the model is zero-shot
CLIP with zero-shot CLIP's prompts. ``WISE_ALPHA`` is an evaluation key: ``--eval-only`` of a trained
run may change it (the sweep grids' ``wise_*`` stages do).

The encoder trains, so ``frozen_encoder = False``: batches carry images through the online pipeline
(seeded augmented views, as every pipeline), never cached features. ``InferenceOutput.text_features``
are the head's L2-normalised class weights (the MCM score's class features). The checkpoints hold
the fine-tuned weights of both registered models, ``image_encoder`` and ``head`` (tensors only, they
load with ``weights_only``); the zero-shot ones are those of the backbone.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import l2norm
from ..clip.image_encoder import autocast_context
from ..engine.optim import build_optimizer, lr_factor
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .clip_base import FrozenCLIPMethod
from .zsclip import check_prompts

#: The registered models (checkpoint folders) of FT and LP-FT.
ENCODER, HEAD = "image_encoder", "head"


class ClassificationHead(nn.Module):
    """``logits = weight @ norm(features) + bias``: a linear classifier of L2-normalised image features."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))

    def forward(self, features):
        return F.linear(l2norm(features), self.weight, self.bias)


def interpolate(module, zero_shot, alpha):
    """A frozen eval-mode copy of ``module`` whose state is ``(1 - alpha) * zero_shot + alpha * module``.

    ``zero_shot``: a state dict with the module's keys. Floating-point tensors are interpolated with
    ``torch.lerp``, exact at both ends; integer buffers (batch-norm counters) are taken from the
    nearer end.
    """
    state = {}
    for key, tuned in module.state_dict().items():
        start = zero_shot[key].to(device=tuned.device, dtype=tuned.dtype)
        if tuned.is_floating_point():
            state[key] = torch.lerp(start, tuned, float(alpha))
        else:
            state[key] = tuned.clone() if alpha >= 0.5 else start.clone()
    mixed = copy.deepcopy(module)
    mixed.load_state_dict(state)
    for p in mixed.parameters():
        p.grad = None
    return mixed.requires_grad_(False).eval()


@register_method("FT")
class FTMethod(FrozenCLIPMethod):
    """FT, engine-independent: CLIP's image encoder and a zero-shot-initialised head, fine-tuned."""

    frozen_encoder = False

    @classmethod
    def own_cfg(cls, cfg):
        return cfg.TRAINER.FT

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        own, group = cls.own_cfg(cfg), f"TRAINER.{cfg.TRAINER.NAME}"
        check_prompts(own.PROMPTS, f"{group}.PROMPTS")
        if not 0.0 <= own.WISE_ALPHA <= 1.0:
            raise ValueError(f"invalid value for '{group}.WISE_ALPHA': {own.WISE_ALPHA}; expected a number in [0, 1] "
                             "(0 = zero-shot CLIP, 1 = the fine-tuned model)")
        if cfg.MODEL.AUTOCAST == "fp16":
            raise ValueError(f"invalid value for 'MODEL.AUTOCAST': 'fp16'; trainer {cfg.TRAINER.NAME} trains the "
                             "image encoder and fp16 gradients need loss scaling, which croft does not do: "
                             "use 'bf16' or 'fp32'")

    def build_model(self):
        self.load_backbone()
        # Images go through encode(); the frozen encoder would silently give zero-shot features.
        self.image_encoder = None
        own = self.own_cfg(self.cfg)
        text = l2norm(self.class_text_features(own.PROMPTS))
        self.encoder = copy.deepcopy(self.clip_model.visual).requires_grad_(True)
        self.head = ClassificationHead(self.logit_scale * text)
        self.zero_shot = {ENCODER: self.clip_model.visual.state_dict(),
                          HEAD: {k: v.detach().clone() for k, v in self.head.state_dict().items()}}
        self._wise = None
        for name, module in ((HEAD, self.head), (ENCODER, self.encoder)):
            self.register_model(name, module, *self.build_part_optimizer(name, module))
        self.set_phase(0)
        self.logger.info(f"{self.cfg.TRAINER.NAME}: image encoder ({sum(p.numel() for p in self.encoder.parameters())} "
                         f"parameters) and zero-shot head ({self.num_classes} x {self.feat_dim}) fine-tuned; "
                         f"WiSE-FT alpha {own.WISE_ALPHA:g} at the final evaluation")

    def build_part_optimizer(self, name, module):
        """``(optimizer, scheduler)`` of one registered model."""
        return self.build_optimizer_and_scheduler(module)

    # ------------------------------------------------------------------ training
    def probing_at(self, epoch):
        """Whether 0-based ``epoch`` trains the head alone (LP-FT's linear probe)."""
        return False

    def set_phase(self, epoch):
        self.encoder.requires_grad_(not self.probing_at(epoch))

    def forward_backward(self, batch):
        probe = self.probing_at(self.epoch)
        self.set_phase(self.epoch)
        if probe:
            self.encoder.eval()  # a frozen encoder: batch-norm statistics stay the zero-shot ones
        with torch.set_grad_enabled(not probe):
            features, labels = self.parse_batch_train(batch)
        logits = self.head(features)
        loss = F.cross_entropy(logits, labels)
        # While probing, the encoder has no gradients: its optimizer's step leaves it (and its state) as is.
        self.model_backward_and_update(loss)
        return self.batch_stats(loss, logits, labels)

    # ------------------------------------------------------------------ encode + inference
    def wise_alpha(self, settings):
        return self.own_cfg(self.cfg).WISE_ALPHA if settings.final else 1.0

    def models_for(self, settings):
        """``(encoder, head)`` that ``settings`` evaluate: the fine-tuned ones, or their WiSE-FT interpolation."""
        alpha = self.wise_alpha(settings)
        if alpha == 1.0:
            return self.encoder, self.head
        tensors = [*self.encoder.parameters(), *self.encoder.buffers(), *self.head.parameters()]
        key = (alpha, tuple((t.data_ptr(), t._version) for t in tensors))
        if self._wise is None or self._wise[0] != key:
            self._wise = (key, interpolate(self.encoder, self.zero_shot[ENCODER], alpha),
                          interpolate(self.head, self.zero_shot[HEAD], alpha))
        return self._wise[1], self._wise[2]

    def encode(self, images, settings=TRAINING):
        encoder = self.models_for(settings)[0]
        with autocast_context(self.device, self.cfg.MODEL.AUTOCAST):
            features = encoder(images)
        return features.float()

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        head = self.models_for(settings)[1]
        features = features.float()
        return InferenceOutput(head(features), l2norm(features), l2norm(head.weight.float()))

    def zero_shot_state(self):
        """``{model name: state dict}`` of the zero-shot model (WISE_ALPHA 0)."""
        return {name: dict(state) for name, state in self.zero_shot.items()}


@register_method("LP_FT")
class LPFTMethod(FTMethod):
    """LP-FT, engine-independent: FT after ``LP_EPOCHS`` epochs of training the head alone."""

    @classmethod
    def own_cfg(cls, cfg):
        return cfg.TRAINER.LP_FT

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        own = cls.own_cfg(cfg)
        if not 0 <= own.LP_EPOCHS < cfg.OPTIM.MAX_EPOCH:
            raise ValueError(f"invalid value for 'TRAINER.LP_FT.LP_EPOCHS': {own.LP_EPOCHS}; expected 0 <= LP_EPOCHS "
                             f"< OPTIM.MAX_EPOCH ({cfg.OPTIM.MAX_EPOCH}), so that at least one epoch fine-tunes "
                             "everything")
        if not own.LP_LR > 0:
            raise ValueError(f"invalid value for 'TRAINER.LP_FT.LP_LR': {own.LP_LR}; expected a learning rate > 0")

    def probing_at(self, epoch):
        return epoch < self.own_cfg(self.cfg).LP_EPOCHS

    def build_part_optimizer(self, name, module):
        """OPTIM's optimizer; per-epoch LR factors: LP_LR / OPTIM.LR for the head and 0 for the encoder during
        the probe, then OPTIM's schedule restarted over the remaining epochs."""
        optim_cfg, own = self.cfg.OPTIM, self.own_cfg(self.cfg)
        probe_epochs = own.LP_EPOCHS
        tuning = optim_cfg.clone()
        tuning.defrost()
        tuning.MAX_EPOCH = optim_cfg.MAX_EPOCH - probe_epochs
        probe_factor = own.LP_LR / optim_cfg.LR if name == HEAD else 0.0

        def factor(epoch):
            return probe_factor if epoch < probe_epochs else lr_factor(epoch - probe_epochs, tuning)

        lr_factor(0, tuning)  # validate the schedule keys now
        optim = build_optimizer(module.parameters(), optim_cfg)
        return optim, torch.optim.lr_scheduler.LambdaLR(optim, factor)
