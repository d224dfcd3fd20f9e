"""Which runs share a row of the results table, and the labels that tell rows apart.

A **setting** (one row) is the set of runs whose recorded settings, results.json's ``fingerprint_values``,
agree on every key except :data:`POOLED_KEYS` (the seed and the held-out domain). A key that one run lacks
(added to croft after it ran) counts as its default. A run whose sections come from evaluation stages also
agrees on those stages. Each row is labelled with the keys in which it differs from the other rows of its
method and block (``row["setting"]``). Older files without ``fingerprint_values`` (schema version 1, or an
early version 2) are grouped by (trainer, dataset, backbone, pretrained, shots, protocol, hparams); they never
share a row with runs that have them.
"""
import functools
import json
import numbers
from collections import OrderedDict, defaultdict

from .stages import stage_identity
from .values import format_value, latex_escape, normalise

__all__ = ["POOLED_KEYS", "BLOCK_FIELDS", "ABSENT", "STAGE_KEY", "UNRECORDED_KEY", "run_identities",
           "differing_keys", "identity_of", "pooled_keys", "label_rows", "block_key", "sort_value",
           "setting_sort_key", "format_setting", "format_hparams"]

#: fingerprint_values keys that may differ between the runs of one row: the seed and the held-out domain.
POOLED_KEYS = ("SEED", "TEST_ENV", "DATASET.SOURCE_DOMAINS", "DATASET.TARGET_DOMAINS")
#: The fields that make a block of the table (one per dataset, backbone, pretrained, shots, protocol).
BLOCK_FIELDS = ("dataset", "backbone", "pretrained", "shots", "protocol")
#: Pseudo keys of a row's identity: the evaluation stages its sections come from, and (for rows of
#: older files next to newer ones) that its settings were not recorded.
STAGE_KEY = "stage"
UNRECORDED_KEY = "settings"
ABSENT = "(absent)"


@functools.lru_cache(maxsize=1)
def _config_defaults():
    from ..config import get_cfg_default
    from ..config.merge import flatten

    return {k: normalise(list(v) if isinstance(v, tuple) else v) for k, v in flatten(get_cfg_default())}


def run_identities(entries):
    """The settings two runs must share to be averaged in one row, one dict per entry.

    ``entries``: ``[(trainer, fingerprint_values or None, fallback)]``. With values: every key except
    :data:`POOLED_KEYS`, where a key that another run of the same trainer has and this one lacks
    counts as its default (:data:`ABSENT` when croft has none). Without: ``fallback`` (what an older
    results.json records, e.g. its ``hparams``).
    """
    keys = defaultdict(set)
    for trainer, values, _ in entries:
        if values is not None:
            keys[trainer].update(values)
    defaults = _config_defaults()
    out = []
    for trainer, values, fallback in entries:
        if values is None:
            out.append(dict(fallback))
            continue
        out.append({k: normalise(values[k]) if k in values else defaults.get(k, ABSENT)
                    for k in sorted(keys[trainer]) if k not in POOLED_KEYS})
    return out


def _same(a, b):
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def differing_keys(identities):
    """Keys whose value is not the same in every identity (a missing key is :data:`ABSENT`), in label order."""
    keys = set().union(*identities) if identities else set()
    differ = [k for k in keys if any(not _same(i.get(k, ABSENT), identities[0].get(k, ABSENT)) for i in identities)]
    return sorted(differ, key=setting_order)


def setting_order(key):
    """Stages first, then the method's own keys (λ first), then the rest, alphabetically."""
    if key in (UNRECORDED_KEY, STAGE_KEY):
        return (0, 0, key)
    short = short_key(key)
    if short != key:
        return (1, not short.startswith("lambda"), short)
    return (2, 0, key)


def short_key(key):
    """``TRAINER.<group>.<name>`` and ``hparams.<name>`` -> ``<name>``; other keys as they are."""
    if key.startswith("TRAINER.") and key.count(".") >= 2:
        return key.split(".", 2)[2]
    if key.startswith("hparams."):
        return key[len("hparams."):]
    return key


def identity_of(run, identity):
    """A run's identity with the evaluation stages it takes sections from."""
    if run.stage_plan:
        identity = dict(identity, **{STAGE_KEY: stage_identity(run.stage_plan)})
    return identity


def pooled_keys(runs):
    """The :data:`POOLED_KEYS` whose values differ between ``runs`` (older files: seed / held-out domain)."""
    if not runs[0].recorded:
        return [name for name, values in (("seed", {r.seed for r in runs}), ("held-out domain", {r.unit for r in runs}))
                if len(values) > 1]
    return [k for k in POOLED_KEYS if len({json.dumps(r.values.get(k), sort_keys=True) for r in runs}) > 1]


def block_key(row):
    return tuple(json.dumps(row[f]) for f in BLOCK_FIELDS)


def label_rows(rows):
    """``row["setting"]``: ``[(key, value)]`` of the keys in which a row differs from the other rows of
    its method and block; runs without recorded settings are compared among themselves."""
    groups = OrderedDict()
    for row in rows:
        groups.setdefault(block_key(row) + (json.dumps(row["trainer"]),), []).append(row)
    for group in groups.values():
        recorded = [r for r in group if r["recorded"]]
        unrecorded = [r for r in group if not r["recorded"]]
        for subset in (recorded, unrecorded):
            keys = differing_keys([r["identity"] for r in subset])
            for row in subset:
                row["setting"] = [(k, row["identity"].get(k, ABSENT)) for k in keys]
        if recorded and unrecorded:
            for row in unrecorded:
                row["setting"].insert(0, (UNRECORDED_KEY, "unrecorded"))
    for row in rows:
        row["setting_str"] = format_setting(row["setting"])


def sort_value(v):
    """Sort key that tolerates None and mixed types (numbers before strings)."""
    if v is None:
        return (2, 0, "")
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0, str(v))


def setting_sort_key(setting):
    return tuple((k, sort_value(v if v is None or isinstance(v, (numbers.Real, str)) else format_value(v)))
                 for k, v in setting)


def _setting_value(v):
    if v == ABSENT:
        return v
    text = format_value(v)
    return json.dumps(text, ensure_ascii=False) if (not text or " " in text) and isinstance(v, str) else text


def format_setting(setting, latex=False):
    """``λ2=10 OPTIM.LR=0.002``: a row's distinguishing ``[(key, value)]`` (the method's own keys short)."""
    parts = []
    for key, value in setting:
        text = _setting_value(value)
        parts.append(f"{_hparam_name(short_key(key), latex)}={latex_escape(text) if latex else text}")
    return " ".join(parts)


def _hparam_name(name, latex=False):
    if name.startswith("lambda") and name[len("lambda"):].isdigit():
        idx = name[len("lambda"):]
        return f"$\\lambda_{{{idx}}}$" if latex else f"λ{idx}"
    return latex_escape(name) if latex else name


def format_hparams(hparams, latex=False):
    """Compact ``λ1=15 λ2=10 gen_step=0 ratio=0.2 ...`` (λ keys first, then alphabetical)."""
    if not hparams:
        return ""
    keys = sorted(hparams, key=lambda k: (not k.startswith("lambda"), k))
    parts = []
    for k in keys:
        value = format_value(hparams[k])
        parts.append(f"{_hparam_name(k, latex)}={latex_escape(value) if latex else value}")
    return " ".join(parts)
