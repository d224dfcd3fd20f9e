"""CoOp's fixed splits: the ``split_zhou_<Name>.json`` files, and croft's deterministic rebuild of them.

A split file is ``{"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}``
(CoOp's format; ``relpath`` relative to the dataset's image folder, or to the dataset folder for
StanfordCars). With the file present croft reads it as it is, so the lists, their order and the
class names are CoOp's. Without it, CoOp builds one and writes it; so does croft, with two
differences (docs/differences.md, "Building a missing CoOp split"): it lists folders sorted instead
of in ``os.listdir`` order, and shuffles each class with its own generator
``random.Random("coop-split/<Name>/<class>")`` instead of the global ``random`` stream, so the
file is the same on every machine and in every process. The fractions are CoOp's:

- :func:`split_trainval` (OxfordPets, StanfordCars, SUN397, UCF101): each class of the official
  train(+val) list goes round(0.2·n) to val, the rest to train; the official test list is test;
- :func:`split_by_ratio` (DTD, EuroSAT, Food101, Caltech101, Flowers102): each class goes
  round(0.5·n) to train, round(0.2·n) to val, the rest to test.

``round`` is Python's (half to even), as in CoOp, so the sizes equal CoOp's. A class too small for
a non-empty part is an error naming it (CoOp stops on an assertion).

A split is read (and its images checked) once per process: :func:`load_split` keeps it, keyed by
the file's path, size and modification time, so the runs of an in-process sweep over SUN397 or
Food101 do not re-read tens of thousands of entries.
"""
import hashlib
import json
import logging
import os
import random
from collections import OrderedDict

from ...utils.atomic import atomic_write_text
from ..splits import DatasetError, SPLIT_KEYS, read_split_json

logger = logging.getLogger(__name__)

#: Splits held per process (a sweep usually runs one dataset at a time; ImageNet's listing is large).
MAX_HELD = 4
_LOADED = OrderedDict()


def class_shuffle(items, name, class_key):
    """A copy of ``items`` shuffled by ``random.Random("coop-split/<name>/<class_key>")``."""
    out = list(items)
    random.Random(f"coop-split/{name}/{class_key}").shuffle(out)
    return out


def _groups(items):
    """``{label: [entry, ...]}`` in first-appearance order (CoOp's tracker)."""
    groups = {}
    for entry in items:
        groups.setdefault(entry[1], []).append(entry)
    return groups


def split_trainval(name, trainval, source, p_val=0.2):
    """CoOp's ``OxfordPets.split_trainval`` with croft's per-class generator: ``(train, val)``."""
    train, val = [], []
    for label, entries in _groups(trainval).items():
        n_val = round(len(entries) * p_val)
        if n_val < 1:
            raise DatasetError(f"{name}: class {label} ({entries[0][2]}) has {len(entries)} image(s) in {source}; "
                               f"the train/val split sends round({p_val}·n) to val, so it needs at least 3")
        for i, entry in enumerate(class_shuffle(entries, name, entries[0][2])):
            (val if i < n_val else train).append(entry)
    return train, val


def split_by_ratio(name, classes, source, p_train=0.5, p_val=0.2):
    """CoOp's ``DescribableTextures.read_and_split_data`` rule: ``classes`` is ``[(label, class key,
    classname, [relpath, ...]), ...]``; returns ``(train, val, test)`` entries."""
    train, val, test = [], [], []
    for label, key, classname, relpaths in classes:
        n = len(relpaths)
        n_train, n_val = round(n * p_train), round(n * p_val)
        if min(n_train, n_val, n - n_train - n_val) < 1:
            raise DatasetError(
                f"{name}: class {classname!r} has {n} image(s) in {source}; the {p_train:.0%}/{p_val:.0%}/"
                f"{1 - p_train - p_val:.0%} train/val/test split needs at least 4 per class")
        order = [(relpath, label, classname) for relpath in class_shuffle(relpaths, name, key)]
        train += order[:n_train]
        val += order[n_train:n_train + n_val]
        test += order[n_train + n_val:]
    return train, val, test


def write_split(path, split):
    """Write ``split`` in CoOp's format (``indent=4``) atomically. Returns False (with a warning) when
    the folder is not writable: the split is used from memory and rebuilt identically next time."""
    text = json.dumps({key: [list(e) for e in split[key]] for key in SPLIT_KEYS}, indent=4, separators=(",", ": "))
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        logger.warning("warning: could not write the split file %s (%s); the split is used from memory and "
                       "rebuilt the same way next time", path, exc)
        return False
    logger.info("Saved the split to %s", path)
    return True


def split_digest(split, keys=("train", "val")):
    """SHA-256 of the ``keys`` lists of a split (what few-shot picks are drawn from)."""
    text = json.dumps({key: [list(e) for e in split.get(key, [])] for key in keys}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_images(split, base_dir, source, name):
    """Every listed image exists, or FileNotFoundError naming the first missing one and where it is listed."""
    total = sum(len(split[key]) for key in SPLIT_KEYS)
    for key in SPLIT_KEYS:
        missing = [(i, relpath) for i, (relpath, _, _) in enumerate(split[key])
                   if not os.path.isfile(os.path.join(base_dir, relpath))]
        if missing:
            i, relpath = missing[0]
            raise FileNotFoundError(
                f"{name}: image not found: {os.path.join(base_dir, relpath)} (listed in {source}, entry {i} of "
                f"'{key}'); {len(missing)} of the {len(split[key])} '{key}' images are missing ({total} listed "
                "in all). Is DATASET.ROOT right? (see datasets/README.md)")


class Loaded:
    """A split held for the process: ``split`` (``{key: [(relpath, label, classname), ...]}``, never
    modified), where it came from (``source``) and the :func:`split_digest` of its train and val lists."""

    def __init__(self, split, source, name=None):
        self.split = split
        self.source = source
        #: How croft's few-shot files name the split (default: the split file's name).
        self.name = name or os.path.basename(source)
        self.digest = split_digest(split)
        #: Label-ordered class names, filled by the first dataset that reads this split.
        self.classnames = None


def remember(key, build):
    """``build()`` (a :class:`Loaded`) once per process for ``key``; the last :data:`MAX_HELD` are kept."""
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    value = build()
    _LOADED[key] = value
    while len(_LOADED) > MAX_HELD:
        _LOADED.popitem(last=False)
    return value


def load_split(path, base_dir, name):
    """The split file ``path`` read and checked (:func:`read_split_json`, every image present), once per
    process: later calls with the same file (path, size, mtime) return the same :class:`Loaded`."""
    st = os.stat(path)
    key = ("file", os.path.abspath(path), os.path.abspath(base_dir), st.st_size, st.st_mtime_ns)

    def build():
        split = read_split_json(path)
        check_images(split, base_dir, path, name)
        return Loaded(split, path)

    return remember(key, build)
