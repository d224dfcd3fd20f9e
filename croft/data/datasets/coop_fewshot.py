"""CoOp's few-shot protocol for its classification datasets: the picks, where they are kept, CoOp's pickles.

**Picks.** For ``DATASET.NUM_SHOTS`` K >= 1 and ``SEED`` S, :func:`draw` takes K images per class
from the split's train list, then min(K, 4) per class from its val list, both from one
``random.Random(S)``. This is CoOp's ``generate_fewshot_dataset(train, K)`` followed by
``generate_fewshot_dataset(val, min(K, 4))`` right after Dassl's ``set_random_seed(S)``
(``random.seed(S)`` and ``random.Random(S)`` give the same stream): label groups in
first-appearance order of the split file, ``sample(group, K)``, and every image of a class that has
fewer than K (Dassl's ``repeat=False``; the engine then logs one warning line and results.json
records ``shots_used``). So with CoOp's split file the subsets are the images CoOp picks for that
seed. The global ``random`` state is not touched.

**Kept as JSON.** The picks are written to ``<dataset>/split_fewshot/shot_K-seed_S.json`` (never a
pickle) with the SHA-256 of the train and val lists they were drawn from; a later run reads them
back, and refuses them, naming the file, when the split has changed since. A folder that is not
writable is a warning: the picks are drawn again, identically, next time.

**CoOp's pickles.** Without croft's JSON, a CoOp ``split_fewshot/shot_K-seed_S.pkl`` that a user
already has is read, with a restricted unpickler that admits Dassl's ``Datum`` records and plain
containers only (no other class, no function call: nothing in the file runs), then matched to the
split by path (the pickle holds absolute paths of the machine that wrote it) and kept as croft's
JSON. Anything else in the file is refused with one line naming it.
"""
import json
import logging
import os
import pickle
import random

from ...utils.atomic import atomic_write_text
from ..fewshot import sample_class_balanced
from ..splits import DatasetError

logger = logging.getLogger(__name__)

FEWSHOT_DIR = "split_fewshot"
FORMAT = "croft-fewshot/1"
#: CoOp's val shots: min(K, VAL_SHOTS_CAP) per class.
VAL_SHOTS_CAP = 4
DASSL_DATUM = ("dassl.data.datasets.base_dataset", "Datum")
EXPECTED_PICKLE = "a dict {'train': [Datum, ...], 'val': [Datum, ...]} of Dassl Datum records (CoOp's few-shot file)"


def fewshot_path(dataset_dir, shots, seed, ext):
    """``<dataset_dir>/split_fewshot/shot_<K>-seed_<S>.<ext>`` (CoOp's name, with ``ext`` json or pkl)."""
    return os.path.join(dataset_dir, FEWSHOT_DIR, f"shot_{shots}-seed_{seed}.{ext}")


def _label(entry):
    return entry[1]


def draw(split, shots, seed, with_val=True):
    """``(train, val)`` entries of the split's train and val lists (see the module docstring)."""
    rng = random.Random(seed)
    train = sample_class_balanced(split["train"], shots, rng, label_of=_label)
    val = sample_class_balanced(split["val"], min(shots, VAL_SHOTS_CAP), rng, label_of=_label) if with_val else []
    return train, val


# ------------------------------------------------------------------ croft's JSON

def _check_listed(entries, split_entries, path, key, source):
    known = {e[0]: tuple(e) for e in split_entries}
    out = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 3 and known.get(entry[0]) == tuple(entry)):
            raise DatasetError(f"{path}: entry {i} of '{key}' ({entry!r}) is not in the '{key}' list of {source}; "
                               "delete the file to draw the few-shot subsets again")
        out.append(known[entry[0]])
    return out


def read_store(path, loaded, shots, seed):
    """The ``(train, val)`` entries kept in croft's JSON ``path``, checked against the current split."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a valid JSON file ({exc}); delete it to draw the few-shot subsets "
                           "again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("train"), list) \
            or not isinstance(data.get("val"), list):
        raise DatasetError(f"{path}: expected croft's few-shot file (format {FORMAT!r}, lists 'train' and 'val'); "
                           "delete it to draw the few-shot subsets again")
    if (data.get("num_shots"), data.get("seed")) != (shots, seed):
        raise DatasetError(f"{path} holds {data.get('num_shots')} shots for seed {data.get('seed')}, not {shots} for "
                           f"{seed}; delete it to draw the few-shot subsets again")
    if data.get("split_sha256") != loaded.digest:
        raise DatasetError(f"{path} was drawn from another version of {loaded.source} (its train/val lists have "
                           "changed since); delete it to draw the few-shot subsets again")
    return (_check_listed(data["train"], loaded.split["train"], path, "train", loaded.source),
            _check_listed(data["val"], loaded.split["val"], path, "val", loaded.source))


def write_store(path, loaded, shots, seed, train, val, drawn_by):
    header = {"format": FORMAT, "num_shots": shots, "seed": seed, "drawn_by": drawn_by, "split": loaded.name,
              "split_sha256": loaded.digest}
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in header.items()]
    for key, entries in (("train", train), ("val", val)):
        body = ",\n".join(f"  {json.dumps(list(e))}" for e in entries)
        lines.append(f" {json.dumps(key)}: [\n{body}\n ]," if entries else f" {json.dumps(key)}: [],")
    text = "{\n" + "\n".join(lines)[:-1] + "\n}\n"  # one entry per line
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        logger.warning("warning: could not keep the few-shot subsets in %s (%s); they are drawn again, "
                       "identically, next time", path, exc)
        return
    logger.info("Saved the few-shot subsets to %s", path)


# ------------------------------------------------------------------ CoOp's pickles

class DasslDatum:
    """A Dassl ``Datum`` read from a pickle: its four fields, nothing else (no Dassl code runs)."""

    __slots__ = ("impath", "label", "domain", "classname")

    def __setstate__(self, state):
        fields = {"_impath": str, "_label": int, "_domain": int, "_classname": str}
        if not isinstance(state, dict) or set(state) != set(fields) or any(
                not isinstance(state[k], t) or isinstance(state[k], bool) for k, t in fields.items()):
            shown = sorted(state) if isinstance(state, dict) else state
            raise pickle.UnpicklingError(f"a Datum with the fields {shown!r}")
        self.impath, self.label = state["_impath"], state["_label"]
        self.domain, self.classname = state["_domain"], state["_classname"]


class FewShotUnpickler(pickle.Unpickler):
    """Resolves Dassl's ``Datum`` to :class:`DasslDatum`; every other global is refused."""

    def find_class(self, module, name):
        if (module, name) == DASSL_DATUM:
            return DasslDatum
        raise pickle.UnpicklingError(f"it references {module}.{name}")


def read_coop_pickle(path, with_val=True):
    """``{"train": [DasslDatum, ...], "val": [...]}`` from CoOp's few-shot pickle ``path`` (no code runs);
    :class:`DatasetError` naming the file for anything that is not such a file."""
    try:
        with open(path, "rb") as f:
            data = FewShotUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a CoOp few-shot file ({exc}); expected {EXPECTED_PICKLE}") from None
    keys = ("train", "val") if with_val else ("train",)
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in keys) or any(
            not isinstance(d, DasslDatum) for k in keys for d in data[k]):
        raise DatasetError(f"{path}: not a CoOp few-shot file; expected {EXPECTED_PICKLE}")
    return {k: data[k] for k in keys}


def match_pickle(items, split_entries, base_dir, path, key, source):
    """The split entries of a pickle's Datums, matched by path: below ``base_dir``, or by the longest
    trailing part of the pickled path that is a relpath of the split (another machine's absolute path)."""
    index = {e[0]: e for e in split_entries}
    depths = sorted({e[0].count("/") + 1 for e in split_entries}, reverse=True)
    prefix = os.path.join(os.path.abspath(base_dir), "")
    out = []
    for i, d in enumerate(items):
        impath = d.impath.replace("\\", "/")
        entry = index.get(impath[len(prefix):]) if impath.startswith(prefix) else None
        parts = impath.split("/")
        for depth in depths:
            if entry is not None:
                break
            entry = index.get("/".join(parts[-depth:]))
        if entry is None:
            raise DatasetError(f"{path}: image {d.impath} (entry {i} of '{key}') is not in the '{key}' list of "
                               f"{source}; expected CoOp's few-shot file for this split")
        if (entry[1], entry[2]) != (d.label, d.classname):
            raise DatasetError(f"{path}: entry {i} of '{key}' labels {entry[0]} {d.label} ({d.classname!r}) but "
                               f"{source} says {entry[1]} ({entry[2]!r}); expected CoOp's few-shot file for this split")
        out.append(entry)
    return out


# ------------------------------------------------------------------ the subsets of a run

def fewshot_subsets(dataset_dir, base_dir, loaded, shots, seed, with_val=True):
    """``(train, val)`` entries for K = ``shots`` and ``seed``: croft's JSON when present, else CoOp's
    pickle, else a fresh draw; the last two are then kept as croft's JSON."""
    json_path = fewshot_path(dataset_dir, shots, seed, "json")
    if os.path.isfile(json_path):
        logger.info("Reading the few-shot subsets from %s", json_path)
        return read_store(json_path, loaded, shots, seed)
    pkl_path = fewshot_path(dataset_dir, shots, seed, "pkl")
    if os.path.isfile(pkl_path):
        logger.info("Reading CoOp's few-shot subsets from %s", pkl_path)
        data = read_coop_pickle(pkl_path, with_val)
        train = match_pickle(data["train"], loaded.split["train"], base_dir, pkl_path, "train", loaded.source)
        val = match_pickle(data["val"], loaded.split["val"], base_dir, pkl_path, "val", loaded.source) \
            if with_val else []
        drawn_by = f"CoOp ({os.path.basename(pkl_path)})"
    else:
        train, val = draw(loaded.split, shots, seed, with_val)
        drawn_by = "croft (Dassl's generate_fewshot_dataset rule)"
    write_store(json_path, loaded, shots, seed, train, val, drawn_by)
    return train, val
