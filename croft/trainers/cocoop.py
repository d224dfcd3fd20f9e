"""CoCoOp (conditional context optimisation, Zhou et al. 2022).

A shared context ``ctx`` (``N_CTX`` tokens, N(0, 0.02^2) or ``CTX_INIT``) plus a meta-net
``Linear(D, D/16) -> ReLU -> Linear(D/16, width)`` that maps each image's normalised feature
to a bias added to every context token. Each image therefore gets its own C prompts; they pass
through the frozen text tower, and image i's logits are ``s * cos(x_i, t_{i,c})``. CE loss.
The image encoder is frozen (feature cache). Prompts are encoded in chunks of at most
``TEXT_CHUNK`` (images x classes) sequences; in training, gradients are accumulated over
chunks, which gives the same update as one pass over the batch while bounding memory.

``InferenceOutput.text_features`` (used by the MCM score, which needs one C x D matrix for all
images) are the class features of the context *without* instance conditioning (meta-net bias
0): they do not depend on which images share a batch. The logits, and hence the energy,
max-logit and accuracy, use the instance-conditioned features.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import normalize
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .prompt_learner import ClassPrompts, PromptMethod


class CoCoOpPromptLearner(nn.Module):
    def __init__(self, prompts, width, vis_dim):
        super().__init__()
        self.prompts = prompts
        init = prompts.init_ctx if prompts.init_ctx is not None else torch.empty(prompts.n_ctx, width).normal_(std=0.02)
        self.ctx = nn.Parameter(init.clone().float())
        hidden = max(1, vis_dim // 16)
        self.meta_net = nn.Sequential(nn.Linear(vis_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, width))

    def forward(self, img=None):
        """Prompts ``[B, C, L, width]`` conditioned on normalised image features ``[B, D]``,
        or the unconditioned ``[C, L, width]`` when ``img`` is None."""
        n_cls = self.prompts.n_cls
        if img is None:
            return self.prompts.assemble(self.ctx.unsqueeze(0).expand(n_cls, -1, -1))
        ctx = self.ctx.unsqueeze(0) + self.meta_net(img).unsqueeze(1)          # B x n_ctx x width
        return self.prompts.assemble(ctx.unsqueeze(1).expand(-1, n_cls, -1, -1))


@register_method("CoCoOp", dassl_name="CroftCoCoOp")
class CoCoOpMethod(PromptMethod):
    """CoCoOp, engine-independent."""

    prompt_group = "COCOOP"

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        if cfg.TRAINER.COCOOP.TEXT_CHUNK < 1:
            raise ValueError(f"invalid value for 'TRAINER.COCOOP.TEXT_CHUNK': {cfg.TRAINER.COCOOP.TEXT_CHUNK}; "
                             "expected >= 1 (prompts per text-encoder pass)")

    @classmethod
    def evaluates_unseen_classes(cls, cfg):
        """The learnt state (the shared context and the meta-net) does not depend on the class list, so ``--eval-only``
        may evaluate other classes (base-to-new, docs/protocols.md §8.3)."""
        return True

    def build_model(self):
        cfg = self.cfg.TRAINER.COCOOP
        self.load_backbone()
        self.setup_precision(cfg.PREC, "TRAINER.COCOOP.PREC")
        prompts = ClassPrompts(self.text_encoder, self.tokenizer, self.classnames, cfg.N_CTX,
                               position=cfg.CLASS_TOKEN_POSITION, ctx_init=cfg.CTX_INIT)
        self.prompt_learner = CoCoOpPromptLearner(prompts, self.text_encoder.width, self.feat_dim).to(self.device)
        self.register_model("prompt_learner", self.prompt_learner,
                            *self.build_optimizer_and_scheduler(self.prompt_learner))
        self.logger.info(f"CoCoOp: {prompts.n_ctx} context tokens, meta-net {self.feat_dim} -> "
                         f"{max(1, self.feat_dim // 16)} -> {self.text_encoder.width}")

    def images_per_chunk(self):
        return max(1, self.cfg.TRAINER.COCOOP.TEXT_CHUNK // self.num_classes)

    def conditioned_logits(self, img):
        """Logits ``[B, C]`` of normalised image features against their own class features."""
        learner = self.prompt_learner
        prompts = learner(img)                                                  # B x C x L x width
        b, c = prompts.shape[:2]
        text = self.encode_prompts(prompts.flatten(0, 1), learner.prompts.token_ids(b))
        text = normalize(text).view(b, c, -1)
        return self.logit_scale * torch.einsum("bd,bcd->bc", img, text)

    def forward_backward(self, batch):
        features, labels = self.parse_batch_train(batch)
        img = normalize(features)
        n, step = len(labels), self.images_per_chunk()
        self.model_zero_grad()
        loss_sum, correct = 0.0, 0
        for start in range(0, n, step):
            chunk = slice(start, start + step)
            logits = self.conditioned_logits(img[chunk])
            # sum / n over chunks = the batch-mean cross-entropy
            loss = F.cross_entropy(logits, labels[chunk], reduction="sum") / n
            self.backward(loss)
            loss_sum += loss.item()
            correct += int((logits.argmax(1) == labels[chunk]).sum())
        self.update()
        return {"loss": loss_sum, "acc": 100.0 * correct / n}

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        img = normalize(features.float())
        step = self.images_per_chunk()
        logits = torch.cat([self.conditioned_logits(img[i:i + step]) for i in range(0, len(img), step)])
        learner = self.prompt_learner
        text = normalize(self.encode_prompts(learner(), learner.prompts.tokens))
        return InferenceOutput(logits, img, text)
