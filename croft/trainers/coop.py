"""CoOp (context optimisation, Zhou et al. 2022): learn the words of the prompt.

``N_CTX`` context vectors (shared, or one set per class with ``CSC``) replace the words of
``"X X ... X <class name>."``; the prompts pass through the frozen CLIP text tower, and the
logits are ``s * cos(image, text_c)`` with CLIP's logit scale ``s``. Cross-entropy only; the
image encoder is frozen (its features may come from the feature cache). Context init:
N(0, 0.02^2), or the embeddings of ``CTX_INIT`` (copied to every class with ``CSC``).
Checkpoints hold only ``ctx``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import normalize
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .prompt_learner import ClassPrompts, PromptMethod


class CoOpPromptLearner(nn.Module):
    def __init__(self, prompts, width, csc=False):
        super().__init__()
        self.prompts = prompts
        n_ctx, n_cls = prompts.n_ctx, prompts.n_cls
        if prompts.init_ctx is not None:
            init = prompts.init_ctx.repeat(n_cls, 1, 1) if csc else prompts.init_ctx
        else:
            init = torch.empty((n_cls, n_ctx, width) if csc else (n_ctx, width)).normal_(std=0.02)
        self.ctx = nn.Parameter(init.clone().float())

    def forward(self):
        """Prompt embeddings ``[C, L, width]``."""
        ctx = self.ctx if self.ctx.dim() == 3 else self.ctx.unsqueeze(0).expand(self.prompts.n_cls, -1, -1)
        return self.prompts.assemble(ctx)


@register_method("CoOp", dassl_name="CroftCoOp")
class CoOpMethod(PromptMethod):
    """CoOp, engine-independent."""

    prompt_group = "COOP"

    @classmethod
    def evaluates_unseen_classes(cls, cfg):
        """A shared context (``CSC False``) does not depend on the class list, so ``--eval-only`` may evaluate
        other classes (base-to-new, docs/protocols.md §8.3); class-specific contexts do."""
        return not cfg.TRAINER.COOP.CSC

    def build_model(self):
        cfg = self.cfg.TRAINER.COOP
        self.load_backbone()
        self.setup_precision(cfg.PREC, "TRAINER.COOP.PREC")
        prompts = ClassPrompts(self.text_encoder, self.tokenizer, self.classnames, cfg.N_CTX,
                               position=cfg.CLASS_TOKEN_POSITION, ctx_init=cfg.CTX_INIT)
        self.prompt_learner = CoOpPromptLearner(prompts, self.text_encoder.width, csc=cfg.CSC).to(self.device)
        self.register_model("prompt_learner", self.prompt_learner,
                            *self.build_optimizer_and_scheduler(self.prompt_learner))
        self._eval_text = None
        self.logger.info(f"CoOp: {prompts.n_ctx} context tokens ({'class-specific' if cfg.CSC else 'shared'}), "
                         f"class token at the {prompts.position}, init {cfg.CTX_INIT or 'N(0, 0.02^2)'!r}")

    def text_features(self):
        """Normalised C x D class features of the current context."""
        learner = self.prompt_learner
        return normalize(self.encode_prompts(learner(), learner.prompts.tokens))

    def forward_backward(self, batch):
        features, labels = self.parse_batch_train(batch)
        img = normalize(features)
        logits = self.logit_scale * img @ self.text_features().t()
        loss = F.cross_entropy(logits, labels)
        self.backward_and_update(loss)
        return self.batch_stats(loss, logits, labels)

    @torch.no_grad()
    def eval_text_features(self):
        # The prompts do not depend on the image: compute them once per context version.
        ctx = self.prompt_learner.ctx
        key = (ctx.data_ptr(), ctx._version)
        if self._eval_text is None or self._eval_text[0] != key:
            self._eval_text = (key, self.text_features())
        return self._eval_text[1]

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        img = normalize(features.float())
        text = self.eval_text_features()
        return InferenceOutput(self.logit_scale * img @ text.t(), img, text)
