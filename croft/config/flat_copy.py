"""A ``_BASE_``-free copy of a croft YAML file, for readers that merge YAML with plain yacs.

croft's YAMLs inherit with ``_BASE_`` (:mod:`croft.config.merge`); plain yacs (Dassl's and CoOp's
``cfg.merge_from_file``) stops at it with ``Non-existent config key: _BASE_``. The flat copy sets
every key that the file or one of its bases sets, at the value croft's merge gives it (an int in
a float key written as a float, which plain yacs would refuse), so that plain yacs merging the copy
into a tree with croft's keys gives the tree that croft's ``merge_from_file`` gives for the file.
The keys stay croft's: the copy needs a config that has them (croft's own, or Dassl's extended by
``croft.dassl_bridge``).
"""
import yaml

from .defaults import get_cfg_default
from .merge import config_layers, get_value, merge_from_file, put_value


def flat_items(path):
    """``[(dotted key, value), ...]``: every key set by ``path`` or its bases, at croft's merged value,
    in the order the keys first appear (bases first). Errors are :class:`~croft.config.ConfigError`."""
    cfg = get_cfg_default()
    merge_from_file(cfg, path)
    keys = {}
    for _, items in config_layers(path):
        for key, _ in items:
            keys.setdefault(key, None)
    return [(key, get_value(cfg, key)) for key in keys]


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def flat_yaml(path):
    """The text of the flat copy of ``path`` (a comment naming its source, then nested YAML)."""
    tree = {}
    for key, value in flat_items(path):
        put_value(tree, key, _plain(value))
    header = (f"# Flat copy of {path} and its _BASE_ files, written by `croft-dassl flatten`.\n"
              "# Its keys are croft's: merge it into croft's config or one extended by croft.dassl_bridge.\n"
              "# Write it again after editing any of those files.\n")
    return header + yaml.safe_dump(tree, sort_keys=False, default_flow_style=False)
