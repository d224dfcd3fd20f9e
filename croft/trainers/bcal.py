"""Bayes-CAL (Zhu et al., AAAI 2023): variational prompt learning with domain-name prompts.

Two CoOp-style prompt learners on the frozen text tower, one over the class names and one over
the dataset's domain names (``"X X ... X art painting."``); each learns a context mean ``ctx``
and a scale ``ctx_sigma`` and draws ``ctx = mu + sigma**2 * eps`` once per training step.
Loss: class CE + ``alpha1`` domain CE + ``alpha2`` IRM penalty + ``alpha3`` gradient
orthogonality (a constant, as in the reference) + the reference's KL to the initial context
(croft/trainers/bcal_objective.py; docs/method.md §6.8). Both learners have their own optimizer
and scheduler, and every step updates both. The image encoder is frozen (feature cache).

The noise of epoch ``e``, step ``b`` comes from a generator seeded by (``SEED``, e, b), so runs
repeat, resume and agree across engines and devices. Evaluation uses the context means (no noise).
Checkpoints: ``prompt_learner/`` and ``prompt_learner_context/``, each with ``ctx``,
``ctx_sigma`` and the initial ``ctx_init`` / ``ctx_sigma_init``.
"""
import hashlib
import random

import torch

from ..clip.feature_math import l2norm
from ..engine.registration import register_method
from ..evaluation.inference import TRAINING, InferenceOutput
from .bcal_objective import BCALHyper, VariationalContext, bcal_batch_update
from .prompt_learner import ClassPrompts, PromptMethod


class BCALPromptLearner(VariationalContext):
    """A variational context over ``prompts`` (a :class:`ClassPrompts` of class or domain names)."""

    def __init__(self, prompts, width, csc, sigma_init):
        n_ctx, n_names = prompts.n_ctx, prompts.n_cls
        if prompts.init_ctx is not None:
            init = prompts.init_ctx.repeat(n_names, 1, 1) if csc else prompts.init_ctx
        else:
            init = torch.empty((n_names, n_ctx, width) if csc else (n_ctx, width)).normal_(std=0.02)
        super().__init__(init.float(), sigma_init)
        self.prompts = prompts

    def embeddings(self, ctx):
        """Prompt embeddings ``[n_names, L, width]`` of a (sampled) context."""
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.prompts.n_cls, -1, -1)
        return self.prompts.assemble(ctx)


def domain_names(dataset):
    """The names of the domain prompts, indexed as the datasets' domain labels: every domain of a
    multi-domain dataset (the held-out one included, as the reference), else its source and target
    domains (ImageNet46: one domain)."""
    names = list(getattr(dataset, "domains", None) or [])
    if not names:
        names = list(dataset.source_domains)
        names += [d for d in dataset.target_domains if d not in names]
    if not names:
        raise ValueError(f"trainer BCAL needs domain names; dataset {type(dataset).__name__} lists none")
    return names


@register_method("BCAL")
class BCALMethod(PromptMethod):
    """Bayes-CAL, engine-independent."""

    prompt_group = "BCAL"

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)  # PREC, CLASS_TOKEN_POSITION, N_CTX (PromptMethod)
        c = cfg.TRAINER.BCAL
        for key in ("alpha1", "alpha2", "alpha3"):
            if c[key] < 0:
                raise ValueError(f"invalid value for 'TRAINER.BCAL.{key}': {c[key]}; expected a weight >= 0")
        if not c.SIGMA_INIT > 0:
            raise ValueError(f"invalid value for 'TRAINER.BCAL.SIGMA_INIT': {c.SIGMA_INIT}; expected > 0 "
                             "(the KL divides by it)")

    def build_model(self):
        cfg = self.cfg.TRAINER.BCAL
        self.load_backbone()
        self.setup_precision(cfg.PREC, "TRAINER.BCAL.PREC")
        self.domain_names = domain_names(self.dataset)
        # Class learner first, then the domain learner: the order of the reference's random inits.
        self.prompt_learner = self._learner(self.classnames)
        self.prompt_learner_context = self._learner(self.domain_names)
        self.register_model("prompt_learner", self.prompt_learner,
                            *self.build_optimizer_and_scheduler(self.prompt_learner))
        self.register_model("prompt_learner_context", self.prompt_learner_context,
                            *self.build_optimizer_and_scheduler(self.prompt_learner_context))
        self.hyper = BCALHyper(alpha1=cfg.alpha1, alpha2=cfg.alpha2, alpha3=cfg.alpha3)
        # Without a seed the run is not repeatable anyway; its noise still needs a base.
        self.noise_base = str(self.cfg.SEED) if self.cfg.SEED >= 0 else f"unseeded-{random.getrandbits(64)}"
        self._noise_at = (None, 0)
        self._eval_text = None
        self.logger.info(f"BCAL: {self.prompt_learner.prompts.n_ctx} context tokens "
                         f"({'class-specific' if cfg.CSC else 'shared'}), domain prompts {self.domain_names}, "
                         f"alpha1 {cfg.alpha1}, alpha2 {cfg.alpha2}, alpha3 {cfg.alpha3}")

    def _learner(self, names):
        cfg = self.cfg.TRAINER.BCAL
        prompts = ClassPrompts(self.text_encoder, self.tokenizer, names, cfg.N_CTX,
                               position=cfg.CLASS_TOKEN_POSITION, ctx_init=cfg.CTX_INIT)
        return BCALPromptLearner(prompts, self.text_encoder.width, cfg.CSC, cfg.SIGMA_INIT).to(self.device)

    def encode_context(self, learner, ctx):
        """Raw text features ``[n_names, D]`` of ``learner``'s names with context ``ctx``."""
        return self.encode_prompts(learner.embeddings(ctx), learner.prompts.tokens)

    def step_noise(self):
        """``(eps_cls, eps_dom)`` of this training step, from a generator seeded by (SEED, epoch, step)."""
        epoch, step = self._noise_at
        if epoch != self.epoch:
            epoch, step = self.epoch, 0
        self._noise_at = (epoch, step + 1)
        digest = hashlib.sha256(f"bcal-noise/{self.noise_base}/{epoch}/{step}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2 ** 63 - 1))
        return tuple(torch.randn(learner.ctx.shape, generator=generator).to(learner.ctx)
                     for learner in (self.prompt_learner, self.prompt_learner_context))

    def forward_backward(self, batch):
        features, labels = self.parse_batch_train(batch)
        domains = batch.domains
        if len(domains) and int(domains.max()) >= len(self.domain_names):
            raise ValueError(f"BCAL: training domain label {int(domains.max())} has no domain prompt; "
                             f"domain names: {self.domain_names}")
        terms = bcal_batch_update(features.float(), labels, domains, self.prompt_learner,
                                  self.prompt_learner_context, self.encode_context, self.logit_scale, self.hyper,
                                  self.step_noise(), self.backward_and_update)
        return dict(self.batch_stats(terms.loss, terms.logits, labels), **terms.stats())

    @torch.no_grad()
    def eval_text_features(self):
        """Normalised C x D class features at the context mean, computed once per context version."""
        ctx = self.prompt_learner.ctx
        key = (ctx.data_ptr(), ctx._version)
        if self._eval_text is None or self._eval_text[0] != key:
            self._eval_text = (key, l2norm(self.encode_context(self.prompt_learner, ctx)))
        return self._eval_text[1]

    @torch.no_grad()
    def inference(self, features, settings=TRAINING):
        img = l2norm(features.float())
        text = self.eval_text_features()
        return InferenceOutput(self.logit_scale * img @ text.t(), img, text)
