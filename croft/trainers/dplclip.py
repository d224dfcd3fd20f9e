"""DPLCLIP (domain prompt learning, Zhang et al. 2021/2023).

An MLP (``MLP_DEPTH`` linear layers of width ``MLP_WIDTH``, ReLU and dropout ``MLP_DROPOUT``
between them, xavier-uniform weights, biases 0.01) maps each raw CLIP image feature to
``N_CTX`` prompt tokens. For every source domain present in a training batch, the mean of its
samples' tokens is the domain's context in ``"X X ... X <class name>."``; the C prompts pass
through the frozen text tower. CE loss; the image encoder is frozen (feature cache).

**Fix of the reference's logits/target mismatch (docs/method.md §6.7):** the reference scored every sample
against the concatenation of all in-batch domains' text features (``n_domains x C`` columns)
while the targets index only the first block. Here each sample is scored C-way against the text
features built from *its own* domain's prompt: ``logits_i = s * cos(x_i, t_{d(i), c})``.

**Test time** (unknown domain): as in DPL, the context is the mean of the generated tokens over
the evaluation batch, so predictions depend on which images share a batch
(``DATALOADER.TEST.BATCH_SIZE``). ``InferenceOutput.text_features`` are per sample (N x C x D):
each sample's are its batch's C x D features, so the MCM score of every sample uses the text
features its logits used (docs/differences.md, "DPLCLIP's MCM").
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..clip.feature_math import normalize
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .prompt_learner import ClassPrompts, PromptMethod


class DomainPromptMLP(nn.Module):
    """``depth`` linear layers: ``in -> width -> ... -> width -> out``."""

    def __init__(self, in_dim, out_dim, width=512, depth=3, dropout=0.1):
        super().__init__()
        if depth < 2:
            raise ValueError(f"TRAINER.DPLCLIP.MLP_DEPTH must be >= 2, got {depth}")
        dims = [in_dim] + [width] * (depth - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = nn.Dropout(dropout)
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.constant_(layer.bias, 0.01)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = F.relu(self.dropout(layer(x)))
        return self.layers[-1](x)


@register_method("DPLCLIP")
class DPLCLIPMethod(PromptMethod):
    """DPLCLIP, engine-independent."""

    prompt_group = "DPLCLIP"

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        c = cfg.TRAINER.DPLCLIP
        if c.MLP_DEPTH < 2:
            raise ValueError(f"invalid value for 'TRAINER.DPLCLIP.MLP_DEPTH': {c.MLP_DEPTH}; expected >= 2 "
                             "(linear layers: input -> MLP_WIDTH ... -> prompt tokens)")
        if c.MLP_WIDTH < 1:
            raise ValueError(f"invalid value for 'TRAINER.DPLCLIP.MLP_WIDTH': {c.MLP_WIDTH}; expected >= 1")
        if not 0.0 <= c.MLP_DROPOUT < 1.0:
            raise ValueError(f"invalid value for 'TRAINER.DPLCLIP.MLP_DROPOUT': {c.MLP_DROPOUT}; expected a "
                             "probability in [0, 1)")

    @classmethod
    def evaluates_unseen_classes(cls, cfg):
        """The learnt state (the domain-prompt MLP) does not depend on the class list, so ``--eval-only``
        may evaluate other classes (base-to-new, docs/protocols.md §8.3)."""
        return True

    def build_model(self):
        cfg = self.cfg.TRAINER.DPLCLIP
        self.load_backbone()
        self.setup_precision(cfg.PREC, "TRAINER.DPLCLIP.PREC")
        self.prompts = ClassPrompts(self.text_encoder, self.tokenizer, self.classnames, cfg.N_CTX,
                                    position=cfg.CLASS_TOKEN_POSITION).to(self.device)
        self.ctx_shape = (self.prompts.n_ctx, self.text_encoder.width)
        self.mlp = DomainPromptMLP(self.feat_dim, self.ctx_shape[0] * self.ctx_shape[1], width=cfg.MLP_WIDTH,
                                   depth=cfg.MLP_DEPTH, dropout=cfg.MLP_DROPOUT).to(self.device)
        self.register_model("domain_prompt_mlp", self.mlp, *self.build_optimizer_and_scheduler(self.mlp))

    def domain_text_features(self, ctx):
        """Normalised class features ``[G, C, D]`` for G contexts ``[G, n_ctx, width]``."""
        g, c = ctx.shape[0], self.prompts.n_cls
        prompts = self.prompts.assemble(ctx.unsqueeze(1).expand(-1, c, -1, -1))
        text = self.encode_prompts(prompts.flatten(0, 1), self.prompts.token_ids(g))
        return normalize(text).view(g, c, -1)

    def domain_logits(self, raw, domains):
        """Training logits ``[B, C]``: each sample against its own domain's class features."""
        tokens = self.mlp(raw).view(len(raw), *self.ctx_shape)
        groups, group_of = torch.unique(domains, return_inverse=True)
        # Mean generated context of each domain present in the batch.
        ctx = torch.zeros(len(groups), *self.ctx_shape, device=tokens.device, dtype=tokens.dtype)
        ctx.index_add_(0, group_of, tokens)
        ctx = ctx / torch.bincount(group_of, minlength=len(groups)).to(ctx).view(-1, 1, 1)
        text = self.domain_text_features(ctx)                                  # G x C x D
        return self.logit_scale * torch.einsum("bd,bcd->bc", normalize(raw), text[group_of])

    def forward_backward(self, batch):
        features, labels = self.parse_batch_train(batch)
        logits = self.domain_logits(features, batch.domains)
        loss = F.cross_entropy(logits, labels)
        self.backward_and_update(loss)
        return self.batch_stats(loss, logits, labels)

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        raw = features.float()
        ctx = self.mlp(raw).view(len(raw), *self.ctx_shape).mean(dim=0, keepdim=True)
        text = self.domain_text_features(ctx)[0]
        img = normalize(raw)
        return InferenceOutput(self.logit_scale * img @ text.t(), img, text.expand(len(raw), -1, -1))
