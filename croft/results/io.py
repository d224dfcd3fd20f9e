"""Reading and writing a run's ``results.json`` and ``scores.npz``: the one key scheme of both files.

Both files are written atomically: the content goes to a temporary file in the same folder,
which is then renamed over the final name with :func:`os.replace`. A reader therefore sees
either the previous complete file or the new complete file, never a partial one, and a failed
write (for example a value that JSON cannot represent) leaves the previous file untouched.

Score arrays (``scores.npz``) use these keys, where ``<score>`` is one of ``energy``, ``mcm``,
``max_logit`` or ``knn`` and every score is "higher means more in-distribution" (the energy is
the positive ``logsumexp`` of the logits, docs/method.md §0; keys: docs/results-schema.md §3):

The full schema of both files: ``docs/results-schema.md``.

- ``<score>/id``: the ID samples of open-set detection (the positives);
- ``correct/id``: whether each of those ID samples is classified correctly (bool);
- ``<score>/ood/<SET>``: each open-set (semantic-shift) set;
- ``energy/val``: the source / ID validation set;
- ``energy/shift/<domain>``: each covariate-shifted test domain or variant.
"""
import json
import math
import numbers
import os
import zipfile

import numpy as np

from ..utils.atomic import atomic_write, atomic_write_text
from ..utils.layout import RESULTS_FILE, SCHEMA_VERSION, SCORES_FILE

REQUIRED_KEYS = ("trainer", "dataset", "seed", "closed_set")
#: Versions this code reads; a newer file may mean something else by the same keys.
READ_SCHEMA_VERSIONS = (1, 2)
#: ``setup`` values: Setup-I (ImageNet-style, covariate variants), Setup-II (leave-one-domain-out), custom.
SETUPS = ("setup1", "setup2", "custom")
VAL_ENERGY_KEY = "energy/val"

__all__ = [
    "RESULTS_FILE", "SCORES_FILE", "REQUIRED_KEYS", "SCHEMA_VERSION", "READ_SCHEMA_VERSIONS", "SETUPS",
    "VAL_ENERGY_KEY", "UnreadableSchemaVersion", "id_key", "ood_key", "shift_key", "correct_key", "named_keys",
    "validate_results", "schema_version",
    "write_results_json", "read_results_json", "save_scores", "load_scores",
]


def id_key(score="energy"):
    """``<score>/id``: scores of the ID (positive) detection samples."""
    return f"{score}/id"


def ood_key(ood_set, score="energy"):
    """``<score>/ood/<SET>``: scores of one open-set set."""
    return f"{score}/ood/{ood_set}"


def shift_key(domain):
    """``energy/shift/<domain>``: energies of one covariate-shifted test domain."""
    return f"energy/shift/{domain}"


def correct_key():
    """``correct/id``: whether each ID detection sample is classified correctly."""
    return "correct/id"


def named_keys(scores, kind, score="energy"):
    """Sorted ``[(name, key)]`` of the ``<score>/<kind>/<name>`` keys in ``scores`` (kind: ``ood`` or ``shift``)."""
    prefix = ood_key("", score) if kind == "ood" else shift_key("") if kind == "shift" else None
    if prefix is None or (kind == "shift" and score != "energy"):
        raise ValueError(f"named_keys: kind must be 'ood' or 'shift' (shift keys exist for energy only), got {kind!r}")
    return sorted((k[len(prefix):], k) for k in scores if k.startswith(prefix))


# ---------------------------------------------------------------------------------------------
# results.json

def _json_default(obj):
    """Convert numpy / torch scalars and arrays; anything else is an error naming its type."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch.Tensor, without importing torch
        return obj.detach().cpu().tolist()
    raise TypeError(f"value of type {type(obj).__name__} is not JSON serialisable: {obj!r:.80}")


def validate_results(results, source="results"):
    """Check the keys every results.json must have; raise ValueError naming ``source`` and the key."""
    if not isinstance(results, dict):
        raise ValueError(f"{source}: expected a JSON object at the top level, got {type(results).__name__}")
    for key in REQUIRED_KEYS:
        if key not in results:
            raise ValueError(f"{source}: missing required key '{key}'")
    for key in ("trainer", "dataset"):
        if not isinstance(results[key], str) or not results[key]:
            raise ValueError(f"{source}: key '{key}' must be a non-empty string, got {results[key]!r}")
    seed = results["seed"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        if not (isinstance(seed, float) and math.isfinite(seed) and seed.is_integer()):
            raise ValueError(f"{source}: key 'seed' must be an integer, got {seed!r}")
    if not isinstance(results["closed_set"], dict):
        raise ValueError(f"{source}: key 'closed_set' must be an object, "
                         f"got {type(results['closed_set']).__name__}")
    for key in ("open_set", "hparams"):
        if results.get(key) is not None and not isinstance(results[key], dict):
            raise ValueError(f"{source}: key '{key}' must be an object, got {type(results[key]).__name__}")
    return results


def write_results_json(output_dir, results):
    """Write ``OUTPUT_DIR/results.json`` atomically and return its path.

    The dict is validated (required keys) and serialised completely before anything touches
    the disk; numpy and torch scalars/arrays are converted. A value JSON cannot represent raises
    TypeError and leaves any previous results.json unchanged.
    """
    path = os.path.join(output_dir, RESULTS_FILE)
    validate_results(results, source=path)
    return atomic_write_text(path, json.dumps(results, indent=2, default=_json_default) + "\n")


class UnreadableSchemaVersion(ValueError):
    """A results.json of a ``schema_version`` this code does not read (a newer croft wrote it)."""


def schema_version(results, source="results"):
    """The file's ``schema_version`` (1 when absent); raise :class:`UnreadableSchemaVersion` naming ``source``
    for a version outside :data:`READ_SCHEMA_VERSIONS`, ValueError for one that is not an integer."""
    version = results.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, numbers.Integral):
        raise ValueError(f"{source}: 'schema_version' must be an integer, got {version!r}")
    if version not in READ_SCHEMA_VERSIONS:
        raise UnreadableSchemaVersion(
            f"{source}: schema_version {version} is not read by this croft (it reads versions "
            f"{', '.join(map(str, READ_SCHEMA_VERSIONS))}); skipped")
    return int(version)


def read_results_json(path):
    """Read and validate one results.json (a file path or a run folder).

    Raises ValueError naming the file for unreadable JSON, a top level that is not an object,
    or a missing required key (``trainer``, ``dataset``, ``seed``, ``closed_set``).
    """
    if os.path.isdir(path):
        path = os.path.join(path, RESULTS_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    return validate_results(data, source=path)


# ---------------------------------------------------------------------------------------------
# scores.npz

def _as_array(value):
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def save_scores(output_dir, scores):
    """Write ``{key: 1-D array}`` to ``OUTPUT_DIR/scores.npz`` atomically; return its path."""
    path = os.path.join(output_dir, SCORES_FILE)
    arrays = {}
    for key, value in scores.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{path}: score keys must be non-empty strings, got {key!r}")
        arr = _as_array(value)
        if arr.dtype == object:
            raise ValueError(f"{path}: scores['{key}'] is not a numeric array")
        arrays[key] = arr
    return atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)


def load_scores(path):
    """Read a scores.npz (a file path or a run folder) into a plain ``{key: np.ndarray}`` dict."""
    if os.path.isdir(path):
        path = os.path.join(path, SCORES_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; expected the scores.npz of an evaluated run")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path} is truncated or not a scores.npz ({exc.__class__.__name__}: {str(exc)[:120]}); "
                         "expected the file written by the run's final evaluation") from None
