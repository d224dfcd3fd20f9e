"""Optimizers and per-epoch LR schedules with Dassl's config keys.

The schedule with a constant warm-up reproduces the reference (docs/method.md §4.3): epoch ``e < W`` uses
``WARMUP_CONS_LR``; from epoch ``W`` on, the cosine counter restarts at 0, so for W = 1 and
E = 30 the LRs are 1e-5, 0.002, 0.0019945, ..., 2.185e-5.
"""
import math

import torch

from ..config import ConfigError


def build_optimizer(params, optim_cfg):
    params = [p for p in params if p.requires_grad]
    name = optim_cfg.NAME.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=optim_cfg.LR, momentum=optim_cfg.MOMENTUM,
                               weight_decay=optim_cfg.WEIGHT_DECAY, dampening=optim_cfg.SGD_DAMPNING,
                               nesterov=optim_cfg.SGD_NESTEROV)
    if name == "adam":
        return torch.optim.Adam(params, lr=optim_cfg.LR, weight_decay=optim_cfg.WEIGHT_DECAY,
                                betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=optim_cfg.LR, weight_decay=optim_cfg.WEIGHT_DECAY,
                                 betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=optim_cfg.LR, alpha=optim_cfg.RMSPROP_ALPHA,
                                   momentum=optim_cfg.MOMENTUM, weight_decay=optim_cfg.WEIGHT_DECAY)
    raise ConfigError(f"invalid value for 'OPTIM.NAME': {optim_cfg.NAME!r}; expected sgd, adam, adamw or rmsprop")


def lr_factor(epoch, optim_cfg):
    """LR multiplier for 0-based ``epoch`` (the LR used during that epoch / OPTIM.LR)."""
    base = optim_cfg.LR
    warmup = max(optim_cfg.WARMUP_EPOCH, 0)
    if epoch < warmup:
        if optim_cfg.WARMUP_TYPE == "constant":
            return optim_cfg.WARMUP_CONS_LR / base
        if optim_cfg.WARMUP_TYPE == "linear":
            if epoch == 0:
                return optim_cfg.WARMUP_MIN_LR / base
            return epoch / warmup
        raise ConfigError(f"invalid value for 'OPTIM.WARMUP_TYPE': {optim_cfg.WARMUP_TYPE!r}; expected constant or linear")
    step = epoch - warmup if optim_cfg.WARMUP_RECOUNT else epoch
    name = optim_cfg.LR_SCHEDULER
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / optim_cfg.MAX_EPOCH))
    if name == "single_step":
        size = optim_cfg.STEPSIZE[0] if optim_cfg.STEPSIZE else -1
        return 1.0 if size <= 0 else optim_cfg.GAMMA ** (step // size)
    if name == "multi_step":
        return optim_cfg.GAMMA ** sum(step >= s for s in optim_cfg.STEPSIZE)
    raise ConfigError(f"invalid value for 'OPTIM.LR_SCHEDULER': {name!r}; expected cosine, single_step or multi_step")


def build_lr_scheduler(optimizer, optim_cfg):
    """A per-epoch scheduler: call ``step()`` once at the end of every epoch."""
    lr_factor(0, optim_cfg)  # validate the keys now, not after the first epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(epoch, optim_cfg))
