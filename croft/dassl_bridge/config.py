"""The Dassl config extended with croft's keys, and croft's config tree read from it.

:func:`extend_cfg` adds croft's keys to a Dassl config (``croft.dassl_bridge``'s docstring says what
it converts); :class:`CroftDasslConfig` and :class:`CroftTrainerNode` make the extended config read
croft's YAML files and survive CoOp's ``extend_cfg`` and Dassl's ``clean_cfg``; :func:`croft_config`
is the croft config tree a croft trainer inside Dassl runs on.
"""
import copy
import difflib
import functools

from yacs.config import CfgNode

from ..config.defaults import get_cfg_default as croft_cfg_default
from ..config.merge import ConfigError, flatten, get_value, put_value
from ..utils.logging import get_logger
from .names import dassl_names

#: Dassl defaults that differ from croft's and are converted by :func:`extend_cfg` while they are
#: still at Dassl's default: ``{key: (Dassl's default, croft's value)}``.
CONVERTED_DEFAULTS = {
    "TEST.FINAL_MODEL": ("last_step", "best_val"),
    "DATASET.VAL_PERCENT": (0.1, 0.2),
}
PRETRAINED_KEY = "MODEL.BACKBONE.PRETRAINED"


@functools.lru_cache(maxsize=None)
def _croft_defaults():
    """``{dotted key: croft's default}`` (do not modify)."""
    return dict(flatten(croft_cfg_default()))


@functools.lru_cache(maxsize=None)
def _croft_float_keys():
    return frozenset(k for k, v in _croft_defaults().items() if isinstance(v, float))


@functools.lru_cache(maxsize=None)
def _croft_groups():
    """croft's ``TRAINER.<group>`` nodes (CRoFT, COOP, COCOOP, ...); do not modify (copy what you add)."""
    trainer = croft_cfg_default().TRAINER
    return {name: node for name, node in trainer.items() if isinstance(node, dict)}


def _pretrained_tag(value):
    """Dassl's bool ``MODEL.BACKBONE.PRETRAINED`` as croft's string (True -> ``openai``, False -> ``none``)."""
    if isinstance(value, bool):
        return "openai" if value else "none"
    return value


def _convert(full_key, value, current):
    """A value about to be merged into ``full_key`` (currently ``current``), in croft's types."""
    if (isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool)
            and full_key in _croft_float_keys()):
        return float(value)
    return value


class CroftTrainerNode(CfgNode):
    """``cfg.TRAINER`` of an extended config: merges croft's keys into replaced groups, survives ``clean_cfg``."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        groups = _croft_groups()
        if name in groups and isinstance(value, CfgNode):
            # CoOp's extend_cfg assigns a new empty node, then sets its own keys: croft's other
            # keys are added now, and CoOp's assignments that follow win.
            _add_missing(value, groups[name])

    def pop(self, key, *default):
        # Dassl's clean_cfg (tools/train.py) keeps only TRAINER.<NAME.upper()>; croft's trainers
        # read TRAINER.CRoFT, TRAINER.COOP, ... (not their upper-cased Dassl names).
        if key in _croft_groups() and key in self and dict.get(self, "NAME", "") in dassl_names().values():
            return self[key]
        return super().pop(key, *default)


class ConfigKeyError(ConfigError, KeyError):
    """An unknown config key: croft's :class:`~croft.config.ConfigError` (one ``error:`` line under
    ``croft-dassl``) and the ``KeyError`` that yacs raises, for Dassl/CoOp code that catches it."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class CroftDasslConfig(CfgNode):
    """The root of a Dassl config extended by :func:`extend_cfg`.

    ``merge_from_file`` reads croft's YAML files (``_BASE_`` inheritance, relative to each file) and
    plain Dassl/CoOp ones; ``merge_from_list`` and ``merge_from_file`` accept an int for a float key
    of croft, and a bool or a string for ``MODEL.BACKBONE.PRETRAINED``. Everything else is yacs':
    values are decoded as yacs decodes them, and unknown keys and wrong types are errors.
    """

    def _merge_item(self, full_key, raw, source):
        from yacs.config import _check_and_coerce_cfg_value_type

        *parents, leaf = full_key.split(".")
        node = self
        for part in parents:
            if not isinstance(node, CfgNode) or part not in node:
                raise self._unknown_key(full_key, source)
            node = node[part]
        if not isinstance(node, CfgNode) or leaf not in node:
            raise self._unknown_key(full_key, source)
        current = node[leaf]
        if isinstance(current, CfgNode):
            raise ConfigError(f"{source}: '{full_key}' is a config group, not a value; set one of its keys instead")
        value = CfgNode._decode_cfg_value(raw)
        if full_key == PRETRAINED_KEY and isinstance(value, (bool, str)):
            # Dassl's bool (its own backbones test it for truth) or croft's tag / path; croft's
            # trainers read False as "none" and True as "openai" (croft_config).
            node[leaf] = value
            return
        value = _convert(full_key, value, current)
        try:
            node[leaf] = _check_and_coerce_cfg_value_type(value, current, leaf, full_key)
        except ValueError:
            expected = "a list" if isinstance(current, (list, tuple)) else type(current).__name__
            raise ConfigError(f"{source}: wrong type for '{full_key}': got {value!r} ({type(value).__name__}), "
                              f"expected {expected} (now {current!r})") from None

    def _unknown_key(self, full_key, source):
        known = [key for key, _ in flatten(self)]
        close = difflib.get_close_matches(full_key, known, n=1, cutoff=0.8)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return ConfigKeyError(f"{source}: unknown config key '{full_key}' (not in Dassl's config with croft's "
                              f"keys){hint}")

    def merge_from_file(self, cfg_filename):
        from ..config.merge import config_layers

        for source, items in config_layers(cfg_filename):
            for key, value in items:
                self._merge_item(key, value, source)

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2 != 0:
            raise ConfigError(f"command line: overrides must be KEY VALUE pairs, got an odd number of items: "
                              f"{list(cfg_list)}")
        for key, value in zip(cfg_list[0::2], cfg_list[1::2]):
            self._merge_item(key, value, "command line")


def _add_missing(node, defaults):
    """Add every key of ``defaults`` (a croft config node) that ``node`` lacks; never overwrite."""
    for key, value in defaults.items():
        if key not in node:
            dict.__setitem__(node, key, copy.deepcopy(value))
        elif isinstance(value, dict) and isinstance(node[key], CfgNode):
            _add_missing(node[key], value)


def extend_cfg(cfg):
    """Add croft's keys to the Dassl config ``cfg`` (in place; returns it). Idempotent.

    Adds every croft key that ``cfg`` lacks at croft's default and merges croft's keys into
    existing nodes (``TRAINER.COOP`` of CoOp), never overwriting a value. On the first call it
    converts what differs (module docstring): ``MODEL.BACKBONE.PRETRAINED`` at Dassl's default
    True to ``"openai"`` (False stays False: croft reads it as ``"none"``), ints in croft's float
    keys to floats, and the Dassl defaults of :data:`CONVERTED_DEFAULTS` that are still at Dassl's
    value. It also gives ``cfg`` croft's config node classes (``_BASE_``
    files, int -> float, CoOp's ``TRAINER`` nodes, ``clean_cfg``); a config already extended keeps
    its values, so a second call changes nothing.
    """
    frozen = cfg.is_frozen()
    cfg.defrost()
    first = not isinstance(cfg, CroftDasslConfig)
    defaults = croft_cfg_default()
    _add_missing(cfg, defaults)
    if first:
        flat_defaults = dict(flatten(defaults))
        for key, (dassl_value, croft_value) in CONVERTED_DEFAULTS.items():
            value = get_value(cfg, key, None)
            if value == dassl_value and type(value) is type(dassl_value):
                put_value(cfg, key, croft_value)
        if get_value(cfg, PRETRAINED_KEY, None) is True:  # Dassl's default; False stays a bool (see the docstring)
            put_value(cfg, PRETRAINED_KEY, "openai")
        for key, default in flat_defaults.items():
            value = get_value(cfg, key, None)
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                put_value(cfg, key, float(value))
        if type(cfg) is CfgNode:
            object.__setattr__(cfg, "__class__", CroftDasslConfig)
        if type(cfg.TRAINER) is CfgNode:
            object.__setattr__(cfg.TRAINER, "__class__", CroftTrainerNode)
    if frozen:
        cfg.freeze()
    return cfg


def croft_config(cfg, croft_name=None, check=True, dassl_only="refuse"):
    """croft's config tree (frozen) with the values of the Dassl config ``cfg``.

    Every croft key takes ``cfg``'s value (converted: Dassl's bool ``PRETRAINED``, ints in float
    keys); a key ``cfg`` lacks keeps croft's default (a warning names a missing ``TRAINER`` group of
    the run's trainer, e.g. one removed by a ``clean_cfg`` that ran before :func:`install`).
    ``TRAINER.NAME`` becomes ``croft_name`` (croft's name of the trainer, e.g. ``CoOp`` for
    ``CroftCoOp``), so fingerprints and ``results.json`` are those of ``croft-train``. Dassl keys that
    croft does not have are refused when set to anything but Dassl's default (``dassl_only="refuse"``;
    ``"ignore"`` for a dataset read on behalf of Dassl's own trainers). With ``check``:
    croft's value checks (:func:`croft.config.validate_cfg`) and run checks
    (:func:`croft.engine.checks.check_cfg`), as ``croft-train`` runs them.
    """
    from ..config import validate_cfg
    from ..config.merge import _coerce

    out = croft_cfg_default()
    given = dict(flatten(cfg))
    for key, default in flatten(out):
        if key == "TRAINER.NAME" or key not in given:
            continue
        value = given[key]
        if key == PRETRAINED_KEY:
            value = _pretrained_tag(value)
        put_value(out, key, _coerce(key, value, default, "Dassl config"))
    name = croft_name or given.get("TRAINER.NAME", "")
    out.TRAINER.NAME = name
    group = next((g for g in (name, name.upper()) if g in _croft_groups()), None)
    if group is not None and not any(k.startswith(f"TRAINER.{group}.") for k in given):
        get_logger().warning(f"warning: the Dassl config has no TRAINER.{group} (removed by clean_cfg, or built "
                             f"without croft.dassl_bridge.extend_cfg); croft's defaults of TRAINER.{group} are used")
    if dassl_only == "refuse":
        _refuse_dassl_only_keys(given)
    if check:
        validate_cfg(out)
        if croft_name is not None:
            from ..engine.checks import check_cfg

            check_cfg(out)
    out.freeze()
    return out


def _refuse_dassl_only_keys(given):
    """Dassl keys that croft does not have (Dassl's extra transforms, train_u, ...) must stay at Dassl's default."""
    try:
        from dassl.config import get_cfg_default as dassl_default
    except ImportError:
        return
    croft_keys = _croft_defaults()
    dassl = dict(flatten(dassl_default()))
    bad = [(k, v, dassl[k]) for k, v in given.items()
           if k not in croft_keys and k in dassl and not k.startswith("TRAINER.") and k != "VERSION" and v != dassl[k]]
    if bad:
        raise ConfigError("\n".join(
            f"'{k}' is a Dassl key that croft's trainers do not have (got {v!r}; Dassl's default {d!r}); "
            "remove it from the config or the command line" for k, v, d in bad))

