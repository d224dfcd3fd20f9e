"""Strict merging of YAML files and ``KEY VALUE`` overrides into the config tree.

yacs already rejects unknown keys, but its type check refuses an int where the default is a
float (``TRAINER.CRoFT.lambda1 15`` after making lambda1 a float) and its messages do not name
the file. This module keeps yacs' decoding and adds: int -> float coercion, and errors of type
:class:`ConfigError` that name the source, the key, the value and the expected type.
"""
import yaml
from yacs.config import CfgNode as CN


class ConfigError(ValueError):
    """A config key or value that croft cannot accept."""


def _expected_type(default):
    if isinstance(default, (list, tuple)):
        return "a list"
    return type(default).__name__


def _coerce(key, value, default, source):
    if isinstance(default, CN):
        raise ConfigError(f"{source}: '{key}' is a config group, not a value; set one of its keys instead")
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return type(default)(value)
        if isinstance(value, str):
            # A single name on the command line for a list key ("DATASET.OOD_SETS DTD").
            return type(default)([value])
    raise ConfigError(
        f"{source}: wrong type for '{key}': got {value!r} ({type(value).__name__}), "
        f"expected {_expected_type(default)} (default {default!r})"
    )


def set_value(cfg, key, raw_value, source="command line"):
    """Set the dotted ``key`` of ``cfg`` to ``raw_value`` (decoded like yacs does)."""
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, CN) or part not in node:
            raise ConfigError(f"{source}: unknown config key '{key}' ('{'.'.join(parts[:i + 1])}' does not exist)")
        node = node[part]
    leaf = parts[-1]
    if not isinstance(node, CN) or leaf not in node:
        raise ConfigError(f"{source}: unknown config key '{key}'")
    value = CN._decode_cfg_value(raw_value)
    node[leaf] = _coerce(key, value, node[leaf], source)


def _flatten(tree, prefix=""):
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from _flatten(value, key + ".")
        else:
            yield key, value


def merge_from_file(cfg, path):
    """Merge a YAML file; every error names ``path`` and the key."""
    try:
        with open(path, "r") as f:
            tree = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if tree is None:
        return
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    for key, value in _flatten(tree):
        set_value(cfg, key, value, source=str(path))


def merge_from_list(cfg, opts):
    """Merge ``[KEY, VALUE, KEY, VALUE, ...]`` command-line overrides."""
    if len(opts) % 2 != 0:
        raise ConfigError(
            f"command line: overrides must be KEY VALUE pairs, got an odd number of items: {list(opts)}"
        )
    for key, value in zip(opts[0::2], opts[1::2]):
        set_value(cfg, key, value)
