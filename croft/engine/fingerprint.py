"""The fingerprint of a run: a hash of the resolved settings that determine its numbers.

Every checkpoint and every results.json records it (the hash and the values). Resume, ``--resume``
and ``--eval-only --model-dir`` compare it with the current settings and refuse a difference,
naming each differing key, so no number is ever reported for settings it was not trained with.
``docs/reliability.md`` lists what is in it and what is not.

What it holds:
- every config key, except :data:`EXCLUDED_KEYS` (keys that do not change numbers) and the
  keys of other trainers (only ``TRAINER.NAME`` and the run's own ``TRAINER.<NAME>`` group);
- ``weights``: the backbone weights' identity (an open_clip tag, or the SHA-256 of a checkpoint file;
  random init is identified by the seed, which is a key);
- ``fingerprint_version``: bumped when the code's numbers change on purpose.

Evaluation-only keys (:func:`is_evaluation_key`) may differ between a trained model and an
``--eval-only`` run of it: the training-side hash leaves them out.
"""
import hashlib
import json
import os

from ..config.merge import flatten

FINGERPRINT_VERSION = 1

#: Keys that do not change a run's numbers (paths, speed and display settings).
EXCLUDED_KEYS = {
    "OUTPUT_DIR": "a path",
    "RESUME": "a path",
    "MODEL.BACKBONE.CACHE_DIR": "a path (the weights are identified by tag or content hash)",
    "CACHE.DIR": "a path",
    "MODEL.BACKBONE.ALLOW_TORCHSCRIPT": "a permission (the weights are identified by content hash)",
    "CACHE.ENABLED": "cached and online features give the same numbers (tested)",
    "CACHE.ENCODE_BATCH_SIZE": "speed only",
    "CACHE.CHUNK_SIZE": "storage layout only",
    "DATALOADER.NUM_WORKERS": "speed only (augmentations are seeded per image and view)",
    "TRAIN.PRINT_FREQ": "logging only",
    "TRAIN.TENSORBOARD": "logging only",
    "TRAIN.CHECKPOINT_FREQ": "which epoch files are kept",
    "TEST.PLOT": "a picture",
    "TEST.NO_TEST": "whether the final evaluation runs now or later with --eval-only",
    "USE_CUDA": "CPU and GPU agree to float round-off; a run may resume on another device",
    "VERBOSE": "unsupported (always the default)",
    "TRAINER.COCOOP.TEXT_CHUNK": "memory bound only (gradients are accumulated exactly)",
}

_EVALUATION_PREFIXES = ("TEST.", "DATASET.OOD_", "DATASET.IMAGENET_OOD_SAMPLES", "DATASET.IMAGENET_VARIANTS",
                        "DATALOADER.TEST.", "TRAINER.CRoFT.EVAL_RATIO", "TRAINER.FT.WISE_ALPHA",
                        "TRAINER.LP_FT.WISE_ALPHA")
_TRAINING_TEST_KEYS = ("TEST.FINAL_MODEL",)


def is_evaluation_key(key):
    """Keys that only change the final evaluation: they may differ for ``--eval-only``."""
    if key in _TRAINING_TEST_KEYS:
        return False
    return key.startswith(_EVALUATION_PREFIXES)


def trainer_group(cfg):
    """The ``TRAINER.<group>`` of the run's trainer (``CoOp`` -> ``COOP``), or None."""
    name = cfg.TRAINER.NAME
    for group in (name, name.upper()):
        if group in cfg.TRAINER and hasattr(cfg.TRAINER[group], "items"):
            return group
    return None


def trainer_hparams(values):
    """results.json's ``hparams``: the run's own ``TRAINER.<group>.*`` values, keys lower-cased without the prefix."""
    return {key.split(".", 2)[2].lower(): value for key, value in values.items()
            if key.startswith("TRAINER.") and key != "TRAINER.NAME"}


def weights_value(pretrained):
    """The fingerprint's ``weights``: :func:`croft.clip.weights.weights_identity` in the spelling that
    fingerprint version 1 stored (a checkpoint file by the SHA-256 of its content, anything else by
    ``MODEL.BACKBONE.PRETRAINED`` as written), so that existing runs keep their fingerprints."""
    from ..clip.weights import weights_identity

    ident = weights_identity(pretrained)
    if ident["kind"] == "file":
        return {"file_sha256": ident["sha256"]}
    return {"tag": str(pretrained).strip() or "none"}


def fingerprint_values(cfg):
    """``{key: value}`` of everything that determines the run's numbers."""
    own = trainer_group(cfg)
    values = {}
    for key, value in flatten(cfg):
        value = list(value) if isinstance(value, tuple) else value
        if key in EXCLUDED_KEYS:
            continue
        if key.startswith("TRAINER.") and key != "TRAINER.NAME" and not key.startswith(f"TRAINER.{own}."):
            continue
        values[key] = value
    for key in ("DATASET.ROOT", "DATASET.OOD_ROOT"):  # one folder, however it was spelt
        if values.get(key):
            values[key] = os.path.abspath(os.path.expanduser(values[key]))
    values["weights"] = weights_value(cfg.MODEL.BACKBONE.PRETRAINED)
    values["fingerprint_version"] = FINGERPRINT_VERSION
    return values


def digest(values):
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def training_values(values):
    return {k: v for k, v in values.items() if not is_evaluation_key(k)}


def make_fingerprint(cfg):
    """``{"hash", "training_hash", "values"}`` of ``cfg``, as stored in checkpoints and results.json."""
    values = fingerprint_values(cfg)
    return {"hash": digest(values), "training_hash": digest(training_values(values)), "values": values}


_ABSENT = "<absent>"


def _defaults():
    from ..config import get_cfg_default

    return {k: list(v) if isinstance(v, tuple) else v for k, v in flatten(get_cfg_default())}


def differences(stored, current, training_only=False):
    """``[(key, stored value, current value)]`` where two fingerprints' values differ.

    A key that one fingerprint lacks (a key added to croft after that run) counts as its default
    value, so adding a config key does not invalidate earlier runs that used its default behaviour.
    """
    a, b = stored.get("values", {}), current.get("values", {})
    if training_only:
        a, b = training_values(a), training_values(b)
    defaults = _defaults()
    diffs = []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if old == _ABSENT and key in defaults:
            old = defaults[key]
        if new == _ABSENT and key in defaults:
            new = defaults[key]
        if old != new:
            diffs.append((key, old, new))
    return diffs


def describe(diffs, limit=12):
    shown = [f"{k} {old!r} -> {new!r}" for k, old, new in diffs[:limit]]
    if len(diffs) > limit:
        shown.append(f"... and {len(diffs) - limit} more")
    return "; ".join(shown)
