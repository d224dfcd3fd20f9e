"""Config tree, merging, and the CoOp-style CLI-to-config mapping."""
from .defaults import get_cfg_default
from .merge import ConfigError, get_value, merge_from_file, merge_from_list, put_value, set_value

_CHOICES = {
    "TEST.OOD_PROTOCOL": ("standard", "reference"),
    "TEST.KNN_BANK": ("train", "val"),
    "DATASET.FEWSHOT_SAMPLER": ("class_balanced", "reference_balance"),
    "TRAINER.CRoFT.EDR_REDUCTION": ("mean_sumsq", "sum_meansq"),
    "MODEL.AUTOCAST": ("fp32", "fp16", "bf16"),
    "TEST.FINAL_MODEL": ("best_val", "last_step"),
    "TEST.SPLIT": ("test", "val"),
}


def validate_cfg(cfg):
    """Check values whose type is right but whose content is not, among fixed choices.

    Names looked up in registries (trainers, datasets, open-set scores) are checked with the run
    (:func:`croft.engine.checks.check_cfg`).
    """
    for key, allowed in _CHOICES.items():
        value = get_value(cfg, key)
        if value not in allowed:
            raise ConfigError(f"invalid value for '{key}': {value!r}; expected one of {list(allowed)}")


def setup_cfg(args):
    """Build the frozen config from parsed CLI ``args``.

    Merge order: defaults, dataset YAML, trainer YAML, flags, overrides.
    """
    cfg = get_cfg_default()
    if getattr(args, "dataset_config_file", ""):
        merge_from_file(cfg, args.dataset_config_file)
    if getattr(args, "config_file", ""):
        merge_from_file(cfg, args.config_file)
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed is not None and args.seed >= 0:
        # Unlike the reference (docs/method.md §8.1), a seed of 0 is honoured.
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = list(args.source_domains)
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = list(args.target_domains)
    if args.transforms:
        cfg.INPUT.TRANSFORMS = list(args.transforms)
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head
    merge_from_list(cfg, list(args.opts or []))
    validate_cfg(cfg)
    cfg.freeze()
    return cfg


__all__ = [
    "ConfigError", "get_cfg_default", "get_value", "merge_from_file", "merge_from_list", "put_value", "set_value",
    "setup_cfg", "validate_cfg",
]
