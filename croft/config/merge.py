"""Strict merging of YAML files and ``KEY VALUE`` overrides into the config tree.

yacs already rejects unknown keys, but its type check refuses an int where the default is a
float (``TRAINER.CRoFT.lambda1 15`` after making lambda1 a float) and its messages do not name
the file. This module keeps yacs' decoding and adds: int -> float coercion, and errors of type
:class:`ConfigError` that name the source, the key, the value and the expected type.

A YAML file may inherit from others with a top-level ``_BASE_`` key: one path or a list of
paths, each relative to the folder of the file that names it (or absolute). The bases are
merged first, in order and recursively, then the file's own keys override them::

    _BASE_: [../base/clip_rn50.yaml, ../base/sgd_cosine_ep30.yaml]
    OPTIM:
      MAX_EPOCH: 100

(:mod:`croft.config.inherit` reads the files; sweep grids inherit the same way.)
"""
from yacs.config import CfgNode as CN

from .inherit import inherited_layers


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


_REQUIRED = object()


def get_value(cfg, key, default=_REQUIRED):
    """The value of the dotted ``key`` of ``cfg``; ``default``, when given, for a key that does not exist
    (else KeyError)."""
    node = cfg
    for part in key.split("."):
        if default is not _REQUIRED and (not isinstance(node, dict) or part not in node):
            return default
        node = node[part]
    return node


def put_value(tree, key, value):
    """Set the dotted ``key`` of a nested mapping to ``value`` as it is (no decoding, no type check),
    creating the groups on its way that do not exist."""
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


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


def flatten(tree, prefix=""):
    """``(dotted key, value)`` of every leaf of a nested mapping (a config tree or a YAML mapping)."""
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from flatten(value, key + ".")
        else:
            yield key, value


def config_layers(path):
    """The files that :func:`merge_from_file` merges for ``path``, in merge order.

    Returns ``[(source, [(dotted_key, value), ...]), ...]``: every (transitive) base first, depth
    first and in the order of each ``_BASE_`` list, ``path`` itself last. ``source`` names the file
    (and, for a base, the file that included it). Raises :class:`ConfigError` for a missing file,
    invalid YAML, a ``_BASE_`` that is not a path or a list of paths, or a cycle of bases.
    """
    return [(source, list(flatten(tree))) for source, tree in inherited_layers(path, ConfigError)]


def merge_from_file(cfg, path):
    """Merge a YAML file and its ``_BASE_`` files; every error names the file and the key.

    All files are read (and the ``_BASE_`` graph checked) before the first value is set.
    """
    for source, items in config_layers(path):
        for key, value in items:
            set_value(cfg, key, value, source=source)


def merge_from_list(cfg, opts):
    """Merge ``[KEY, VALUE, KEY, VALUE, ...]`` command-line overrides."""
    if len(opts) % 2 != 0:
        raise ConfigError(
            f"command line: overrides must be KEY VALUE pairs, got an odd number of items: {list(opts)}"
        )
    for key, value in zip(opts[0::2], opts[1::2]):
        set_value(cfg, key, value)
