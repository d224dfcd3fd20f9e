"""Validation of a whole run's config, once, before anything is built.

Order: value choices of shared keys (:func:`croft.config.validate_cfg`, already applied when the
config is set up), Dassl keys that croft does not honour, ranges of shared keys, the open-set
score names, then the trainer's and the dataset's own ``check_cfg`` hooks. Every error names the
key, the value and what is allowed.
"""
from ..config import ConfigError
from ..evaluation.scores import score_names


def _at_least(cfg_value, key, minimum, what=""):
    if cfg_value < minimum:
        raise ConfigError(f"invalid value for '{key}': {cfg_value}; expected >= {minimum}{what}")


def check_shared_ranges(cfg):
    _at_least(cfg.DATALOADER.TRAIN_X.BATCH_SIZE, "DATALOADER.TRAIN_X.BATCH_SIZE", 1)
    _at_least(cfg.DATALOADER.TEST.BATCH_SIZE, "DATALOADER.TEST.BATCH_SIZE", 1)
    _at_least(cfg.DATALOADER.NUM_WORKERS, "DATALOADER.NUM_WORKERS", 0)
    _at_least(cfg.TEST.KNN_K, "TEST.KNN_K", 1)
    _at_least(cfg.TRAIN.CHECKPOINT_FREQ, "TRAIN.CHECKPOINT_FREQ", 0, " (0 = only the last epoch)")
    _at_least(cfg.TRAIN.PRINT_FREQ, "TRAIN.PRINT_FREQ", 1)
    _at_least(cfg.CACHE.ENCODE_BATCH_SIZE, "CACHE.ENCODE_BATCH_SIZE", 0, " (0 = DATALOADER.TEST.BATCH_SIZE)")
    _at_least(cfg.CACHE.CHUNK_SIZE, "CACHE.CHUNK_SIZE", 1)
    if cfg.CACHE.TRAIN_VIEWS != -1 and cfg.CACHE.TRAIN_VIEWS < 1:
        raise ConfigError(f"invalid value for 'CACHE.TRAIN_VIEWS': {cfg.CACHE.TRAIN_VIEWS}; "
                          "expected -1 (= OPTIM.MAX_EPOCH) or >= 1")
    if not cfg.TEST.MCM_TEMPERATURE > 0:
        raise ConfigError(f"invalid value for 'TEST.MCM_TEMPERATURE': {cfg.TEST.MCM_TEMPERATURE}; expected > 0")
    if not cfg.OPTIM.LR > 0:
        raise ConfigError(f"invalid value for 'OPTIM.LR': {cfg.OPTIM.LR}; expected > 0")


def check_scores(cfg):
    """``TEST.OOD_SCORES`` names registered scores (:mod:`croft.evaluation.scores`)."""
    unknown = [s for s in cfg.TEST.OOD_SCORES if s not in score_names()]
    if unknown:
        raise ConfigError(f"invalid value for 'TEST.OOD_SCORES': unknown score(s) {unknown}; "
                          f"expected names from {score_names()}")


def check_cfg(cfg):
    """Validate ``cfg`` for a run: raises :class:`~croft.config.ConfigError` naming the key at fault."""
    from .. import trainers  # noqa: F401  (registers the trainers)
    from ..config.unsupported import check_unsupported
    from ..data.datasets import DATASET_REGISTRY
    from .trainer import TRAINER_REGISTRY

    check_unsupported(cfg)
    check_shared_ranges(cfg)
    check_scores(cfg)
    for registry, name, key in ((TRAINER_REGISTRY, cfg.TRAINER.NAME, "TRAINER.NAME"),
                                (DATASET_REGISTRY, cfg.DATASET.NAME, "DATASET.NAME")):
        try:
            cls = registry.get(name)
        except KeyError as exc:
            raise ConfigError(f"invalid value for '{key}': {exc.args[0]}") from None
        try:
            cls.check_cfg(cfg)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
