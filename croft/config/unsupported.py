"""Dassl keys that croft accepts in its config tree but does not honour.

They stay in ``croft/config/defaults.py`` so that Dassl/CoOp YAML files and command lines still
parse; :func:`check_unsupported` rejects a run that sets one of them to anything but its default,
instead of silently ignoring it. For the sampler and evaluator keys the default is the one
behaviour croft has (a shuffled training set, sequential evaluation, classification), so the
default value is accepted and every other value is rejected.
"""
from .defaults import get_cfg_default
from .merge import ConfigError, get_value

#: ``{dotted key: why croft does not honour it}``.
UNSUPPORTED_KEYS = {
    "VERBOSE": "croft's logging does not depend on it",
    "MODEL.INIT_WEIGHTS": "the frozen CLIP's weights come from MODEL.BACKBONE.PRETRAINED; load a trained run with "
                          "--eval-only --model-dir, or continue one with --resume",
    "INPUT.NO_TRANSFORM": "croft always builds its transforms from INPUT.TRANSFORMS",
    "DATALOADER.K_TRANSFORMS": "croft draws one augmented view per image and step (see CACHE.TRAIN_VIEWS)",
    "DATALOADER.RETURN_IMG0": "croft's batches carry no un-augmented copy of the image",
    "DATALOADER.TRAIN_X.SAMPLER": "croft always shuffles train_x with a seeded per-epoch permutation, "
                                  "i.e. 'RandomSampler' (Dassl's domain/class samplers do not exist in croft)",
    "DATALOADER.TRAIN_X.N_DOMAIN": "it parametrises Dassl's domain-balanced samplers, which croft does not have",
    "DATALOADER.TRAIN_X.N_INS": "it parametrises Dassl's domain-balanced samplers, which croft does not have",
    "DATALOADER.TEST.SAMPLER": "croft always evaluates in order, i.e. 'SequentialSampler'",
    "MODEL.HEAD.NAME": "croft has no Dassl head on the backbone (--head sets it); each method defines "
                       "its own modules on the frozen CLIP features",
    "MODEL.HEAD.HIDDEN_LAYERS": "croft has no Dassl head on the backbone",
    "MODEL.HEAD.ACTIVATION": "croft has no Dassl head on the backbone",
    "MODEL.HEAD.BN": "croft has no Dassl head on the backbone",
    "MODEL.HEAD.DROPOUT": "croft has no Dassl head on the backbone",
    "OPTIM.STAGED_LR": "croft trains only new modules (adapters, prompts) on a frozen CLIP, all at OPTIM.LR",
    "OPTIM.NEW_LAYERS": "it is read only with OPTIM.STAGED_LR, which croft does not support",
    "OPTIM.BASE_LR_MULT": "it is read only with OPTIM.STAGED_LR, which croft does not support",
    "TRAIN.COUNT_ITER": "an epoch is always one pass over train_x (croft has no unlabelled train_u)",
    "TEST.EVALUATOR": "croft always evaluates classification accuracy plus the open-set metrics, i.e. "
                      "'Classification'",
    "TEST.PER_CLASS_RESULT": "results.json holds overall and per-domain accuracies, no per-class table",
    "TEST.COMPUTE_CMAT": "croft computes no confusion matrix",
    "TRAINER.CRoFT.PREC": "CRoFT's adapters and generator train in fp32; the frozen image encoder follows "
                          "MODEL.AUTOCAST",
    "TRAINER.ZeroshotCLIP.PREC": "zero-shot CLIP's image encoder follows MODEL.AUTOCAST",
}


def unsupported_settings(cfg):
    """``[(key, value, default), ...]`` for every key of :data:`UNSUPPORTED_KEYS` that ``cfg`` changes."""
    default = get_cfg_default()
    out = []
    for key in UNSUPPORTED_KEYS:
        value, base = get_value(cfg, key), get_value(default, key)
        if value != base:
            out.append((key, value, base))
    return out


def check_unsupported(cfg):
    """Raise :class:`~croft.config.merge.ConfigError` naming every unsupported Dassl key that ``cfg``
    sets to something else than its default (one line per key)."""
    found = unsupported_settings(cfg)
    if found:
        raise ConfigError("\n".join(
            f"'{key}' is a Dassl key that croft does not support (got {value!r}; default {base!r}): "
            f"{UNSUPPORTED_KEYS[key]}. Remove it from the config or the command line."
            for key, value, base in found
        ))


__all__ = ["UNSUPPORTED_KEYS", "check_unsupported", "unsupported_settings"]
