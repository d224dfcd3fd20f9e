"""Shared pieces of the prompt-learning baselines (CoOp, CoCoOp, DPLCLIP).

- :class:`PromptTextEncoder` runs prompt *embeddings* (not token ids) through the frozen open_clip
  text tower: add the positional embedding, causal transformer, ``ln_final``, pool at the
  end-of-text token, ``@ text_projection``. With the embeddings of a tokenised sentence it gives
  exactly ``clip_model.encode_text`` of that sentence.
- :class:`ClassPrompts` holds, per class, the frozen token embeddings of
  ``"<SOT> X X ... X <class name>. <EOT>"`` and splices a learnt (or generated) context into the
  ``X`` slots, with the class name at the end, in the middle or at the front.
- :class:`PromptMethod` adds the ``PREC`` handling (fp16 / fp32 / amp) and the update step
  (engine-independent).

No CLIP weight is registered in these modules: checkpoints hold only what is learnt.
"""
import copy

import torch
from torch import nn
from open_clip.transformer import text_global_pool

from .clip_base import FrozenCLIPMethod

PRECISIONS = ("fp16", "fp32", "amp")
POSITIONS = ("end", "middle", "front")


def _text_tower(clip_model):
    """The module that owns the text transformer's parts (a CLIP, or its ``.text`` tower)."""
    if hasattr(clip_model, "token_embedding"):
        return clip_model
    tower = getattr(clip_model, "text", None)
    if tower is not None and hasattr(tower, "token_embedding") and getattr(tower, "cls_emb", None) is None:
        return tower
    raise ValueError(f"prompt learning needs an open_clip CLIP with a causal text transformer "
                     f"(token_embedding, transformer, ln_final, text_projection); got {type(clip_model).__name__}")


class PromptTextEncoder:
    """Frozen text tower applied to prompt embeddings (N x L x width) and their token ids (N x L).

    A plain object (not an ``nn.Module``) so that no trainer registers CLIP weights.
    """

    def __init__(self, clip_model):
        self.tower = tower = _text_tower(clip_model)
        self.token_embedding = tower.token_embedding
        self.transformer = tower.transformer
        self.ln_final = tower.ln_final
        self.text_projection = tower.text_projection
        self.pool_type = getattr(tower, "text_pool_type", None) or getattr(tower, "pool_type", "argmax")
        self.eos_id = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))

    @property
    def dtype(self):
        return self.transformer.get_cast_dtype()

    @property
    def width(self):
        return self.token_embedding.weight.shape[1]

    @property
    def context_length(self):
        return self.tower.positional_embedding.shape[0]

    @torch.no_grad()
    def embed(self, tokens):
        return self.token_embedding(tokens).float()

    def __call__(self, prompts, tokens):
        dtype = self.dtype
        x = prompts.to(dtype) + self.tower.positional_embedding.to(dtype)
        mask = self.tower.attn_mask
        x = self.transformer(x, attn_mask=mask.to(dtype) if mask is not None else None)
        x = self.ln_final(x)
        x = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        if self.text_projection is not None:
            x = self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection
        return x.float()


def _token_count(tokenizer, text):
    """Number of BPE tokens of ``text`` (without start/end tokens)."""
    if hasattr(tokenizer, "encode"):
        return len(tokenizer.encode(text))
    ids = tokenizer([text])[0]
    return int((ids != 0).sum()) - 2


class ClassPrompts(nn.Module):
    """Per-class frozen prompt pieces, and :meth:`assemble` that inserts a context.

    ``ctx_init`` (words) replaces the ``X`` placeholders and fixes ``n_ctx`` to its token count;
    its embeddings are available as ``init_ctx`` (n_ctx x width) to initialise a context.
    Buffers are non-persistent: they are rebuilt from CLIP and the class names, never saved.
    """

    def __init__(self, encoder, tokenizer, classnames, n_ctx, position="end", ctx_init=""):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"invalid CLASS_TOKEN_POSITION {position!r}; expected one of {', '.join(POSITIONS)}")
        ctx_init = ctx_init.replace("_", " ").strip()
        if ctx_init:
            n_ctx = _token_count(tokenizer, ctx_init)
            prefix_text = ctx_init
        else:
            prefix_text = " ".join(["X"] * n_ctx)
        if n_ctx < 1:
            raise ValueError(f"the prompt context needs at least one token (N_CTX = {n_ctx})")
        names = [c.replace("_", " ") for c in classnames]
        self.name_lens = [_token_count(tokenizer, n) for n in names]
        limit = encoder.context_length
        for name, length in zip(names, self.name_lens):
            if 1 + n_ctx + length + 2 > limit:  # SOT, context, name, ".", EOT
                raise ValueError(f"the prompt for class {name!r} needs {n_ctx + length + 3} tokens "
                                 f"(N_CTX = {n_ctx}); the text encoder takes {limit}")
        self.n_ctx, self.position, self.n_cls = n_ctx, position, len(names)
        tokens = tokenizer([f"{prefix_text} {name}." for name in names]).to(encoder.token_embedding.weight.device)
        embedding = encoder.embed(tokens)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("token_prefix", embedding[:, :1].clone(), persistent=False)   # SOT
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:].clone(), persistent=False)  # name . EOT pad
        self.register_buffer("init_ctx", embedding[0, 1:1 + n_ctx].clone() if ctx_init else None, persistent=False)

    def assemble(self, ctx):
        """Prompt embeddings ``[..., C, L, width]`` from a context ``[..., C, n_ctx, width]``."""
        if ctx.shape[-3:-1] != (self.n_cls, self.n_ctx):
            raise ValueError(f"context of shape {tuple(ctx.shape)}; expected [..., {self.n_cls}, {self.n_ctx}, width]")
        lead = ctx.shape[:-3]
        prefix = self.token_prefix.expand(*lead, *self.token_prefix.shape)
        suffix = self.token_suffix.expand(*lead, *self.token_suffix.shape)
        if self.position == "end":
            return torch.cat([prefix, ctx.to(prefix.dtype), suffix], dim=-2)
        rows = []
        half = self.n_ctx // 2
        for i, length in enumerate(self.name_lens):
            p, c, s = prefix[..., i:i + 1, :, :], ctx[..., i:i + 1, :, :].to(prefix.dtype), suffix[..., i:i + 1, :, :]
            name, rest = s[..., :length, :], s[..., length:, :]
            if self.position == "middle":
                rows.append(torch.cat([p, c[..., :half, :], name, c[..., half:, :], rest], dim=-2))
            else:
                rows.append(torch.cat([p, name, c, rest], dim=-2))
        return torch.cat(rows, dim=-3)

    def token_ids(self, repeats=1):
        """Token ids matching ``repeats`` stacked copies of the C prompts (for end-of-text pooling)."""
        return self.tokens.repeat(repeats, 1) if repeats > 1 else self.tokens


def check_prompt_keys(cfg, group):
    """Reject bad values of a prompt learner's ``TRAINER.<group>`` keys: ``PREC``,
    ``CLASS_TOKEN_POSITION`` and ``N_CTX`` (at least one token, unless ``CTX_INIT`` gives the words)."""
    node, key = cfg.TRAINER[group], f"TRAINER.{group}"
    if node.PREC not in PRECISIONS:
        raise ValueError(f"invalid value for '{key}.PREC': {node.PREC!r}; expected one of {list(PRECISIONS)}")
    if node.CLASS_TOKEN_POSITION not in POSITIONS:
        raise ValueError(f"invalid value for '{key}.CLASS_TOKEN_POSITION': {node.CLASS_TOKEN_POSITION!r}; "
                         f"expected one of {list(POSITIONS)}")
    has_init = "CTX_INIT" in node
    if node.N_CTX < 1 and not (has_init and node.CTX_INIT.replace("_", " ").strip()):
        raise ValueError(f"invalid value for '{key}.N_CTX': {node.N_CTX}; expected >= 1"
                         + (f" (or words in {key}.CTX_INIT)" if has_init else ""))


class PromptMethod(FrozenCLIPMethod):
    """A frozen-CLIP method whose prompts pass through the text tower, with ``PREC`` handling.

    - ``fp32``: everything in fp32.
    - ``fp16`` (CUDA only): the frozen text tower is cast to half in place, as the reference keeps
      CLIP in fp16; the learnt parameters stay fp32 (cast to half where they enter the tower).
    - ``amp`` (CUDA only): fp32 weights, the text forward under fp16 autocast, a gradient scaler.
    On a CPU, fp16 and amp fall back to fp32 with a logged warning. The image encoder is not
    affected (it follows ``MODEL.AUTOCAST`` and may be served by the feature cache).

    ``prompt_group``: the method's ``TRAINER.<group>`` (``COOP``, ...), whose ``PREC``,
    ``CLASS_TOKEN_POSITION`` and ``N_CTX`` :meth:`check_cfg` checks (:func:`check_prompt_keys`).
    """

    prompt_group = None

    @classmethod
    def check_cfg(cls, cfg):
        super().check_cfg(cfg)
        if cls.prompt_group is not None:
            check_prompt_keys(cfg, cls.prompt_group)

    def setup_precision(self, prec, key):
        if prec not in PRECISIONS:
            raise ValueError(f"invalid value for '{key}': {prec!r}; expected one of {', '.join(PRECISIONS)}")
        if prec != "fp32" and self.device.type != "cuda":
            self.logger.warning(f"warning: {key} {prec} needs CUDA; running in fp32 on {self.device.type}")
            prec = "fp32"
        self.prec = prec
        if prec == "fp16":
            # Cast a copy: the frozen backbone may be shared with other runs of the process.
            self.clip_model = copy.deepcopy(self.clip_model)
        self.text_encoder = PromptTextEncoder(self.clip_model)
        if prec == "fp16":
            tower = self.text_encoder.tower
            for module in (tower.token_embedding, tower.transformer, tower.ln_final):
                module.half()
            if isinstance(tower.text_projection, nn.Parameter):
                tower.text_projection.data = tower.text_projection.data.half()
            elif tower.text_projection is not None:
                tower.text_projection.half()
        self.scaler = torch.amp.GradScaler("cuda") if prec == "amp" else None

    def text_autocast(self):
        if self.prec == "amp":
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    def encode_prompts(self, prompts, tokens):
        """Text features (fp32, unnormalised) of prompt embeddings ``[N, L, width]``."""
        with self.text_autocast():
            return self.text_encoder(prompts, tokens)

    def backward(self, loss, retain_graph=False):
        if self.scaler is None:
            self.model_backward(loss, retain_graph=retain_graph)
        else:
            if not torch.isfinite(loss).all():
                self.model_backward(loss)  # raises NonFiniteLossError
            self.scaler.scale(loss).backward(retain_graph=retain_graph)

    def update(self, names=None):
        if self.scaler is None:
            self.model_update(names)
            return
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self.scaler.step(self._optims[name])
        self.scaler.update()

    def backward_and_update(self, loss, names=None):
        self.model_zero_grad(names)
        self.backward(loss)
        self.update(names)
