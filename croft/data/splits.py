"""Leave-one-domain-out split files for multi-domain image folders (PACS, VLCS, your own).

A multi-domain dataset folder holds ``<dir>/images/<domain>/<class>/<image>`` (the reference's
layout, docs/method.md §7.3) or ``<dir>/<domain>/<class>/<image>`` (e.g. DomainBed's download).
For every domain ``D`` this module builds the split ``test_on_<d>.json`` (``d`` = ``D`` in lower
case, as the reference names them) in the reference format::

    {"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}

- ``relpath`` is relative to the image folder (``<dir>/images`` when it exists, else ``<dir>``)
  and keeps the real folder names (VLCS keeps ``CALTECH/...``);
- labels are the indices of the sorted class-folder names, the class name is the folder name;
- ``test`` is the whole held-out domain; ``train``/``val`` are the other domains, each
  (domain, class) folder split at random into ``val_fraction`` val and the rest train, with a
  generator seeded by ``(seed, domain, class)`` only, so a source domain is split the same way
  whichever domain is held out;
- every list is in sorted order (domain, class, file), so the output depends only on the file
  names, ``val_fraction`` and ``seed``.

``tools/prepare_splits.py`` writes these files (``--val-fraction``, default
:data:`DEFAULT_VAL_FRACTION`); the PACS/VLCS/DomainFolder readers build the same split in memory
when the JSON is absent, with ``val_fraction = DATASET.VAL_PERCENT`` (whose croft default is
:data:`DEFAULT_VAL_FRACTION`, so a default run reads the split ``prepare_splits.py`` would
write), and ``croft.testing.synthetic`` uses it for its trees.
"""
import json
import os
import random

from ..config.merge import ConfigError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLIT_KEYS = ("train", "val", "test")
# Share of each source (domain, class) folder that goes to val. The config key
# DATASET.VAL_PERCENT defaults to the same value (croft/config/defaults.py).
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SEED = 1


class DatasetError(ValueError):
    """A dataset folder, split file or dataset setting that croft cannot use."""


class DatasetConfigError(ConfigError, DatasetError):
    """A dataset config value that croft rejects before reading any file.

    Both a :class:`~croft.config.merge.ConfigError` (a bad key or value) and a
    :class:`DatasetError` (what the dataset readers raised before these checks ran first).
    """


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def visible_entries(folder):
    """Sorted entries of ``folder`` without hidden ones (``.DS_Store``, ``._x``, markers)."""
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def image_dir_of(dataset_dir):
    """``<dir>/images`` if it is a folder, else ``<dir>`` (the folder relpaths are relative to)."""
    images = os.path.join(dataset_dir, "images")
    return images if os.path.isdir(images) else dataset_dir


def split_file_name(domain):
    return f"test_on_{domain.lower()}.json"


def scan_domain_folders(dataset_dir):
    """Check and list a multi-domain folder.

    Returns ``(image_dir, tree)`` with ``tree = {domain folder: {class folder: [image file, ...]}}``,
    everything sorted. Raises :class:`FileNotFoundError` or :class:`DatasetError` naming the
    offending path.
    """
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(
            f"dataset folder not found: {dataset_dir} (expected {dataset_dir}/images/<domain>/<class>/<image> "
            f"or {dataset_dir}/<domain>/<class>/<image>)"
        )
    image_dir = image_dir_of(dataset_dir)
    domains = [d for d in visible_entries(image_dir) if os.path.isdir(os.path.join(image_dir, d))]
    if not domains:
        raise DatasetError(
            f"no domain folders in {image_dir}: expected {image_dir}/<domain>/<class>/<image>"
        )
    seen = {}
    for d in domains:
        if d.lower() in seen:
            raise DatasetError(
                f"domain folders {os.path.join(image_dir, seen[d.lower()])} and {os.path.join(image_dir, d)} "
                "differ only in case; domain names are matched case-insensitively"
            )
        seen[d.lower()] = d

    tree = {}
    for d in domains:
        domain_dir = os.path.join(image_dir, d)
        entries = visible_entries(domain_dir)
        stray = [os.path.join(domain_dir, e) for e in entries if not os.path.isdir(os.path.join(domain_dir, e))]
        if stray:
            raise DatasetError(
                f"domain folder {domain_dir} must hold only class folders (images go in "
                f"{domain_dir}/<class>/), but it holds file(s): {_some(stray)}"
            )
        classes = {}
        for c in entries:
            class_dir = os.path.join(domain_dir, c)
            files, bad = [], []
            for name in visible_entries(class_dir):
                path = os.path.join(class_dir, name)
                if os.path.isdir(path) or not is_image_file(name):
                    bad.append(path)
                else:
                    files.append(name)
            if bad:
                raise DatasetError(
                    f"class folder {class_dir} holds entries that are not image files: {_some(bad)} "
                    f"(accepted extensions: {', '.join(IMAGE_EXTENSIONS)})"
                )
            if not files:
                raise DatasetError(f"empty class folder: {class_dir} (no image files)")
            classes[c] = files
        tree[d] = classes

    all_classes = sorted(set().union(*(set(classes) for classes in tree.values())))
    if not all_classes:
        raise DatasetError(f"no class folders under the domain folders of {image_dir}")
    for d, classes in tree.items():
        missing = [c for c in all_classes if c not in classes]
        if missing:
            raise DatasetError(
                f"domain folder {os.path.join(image_dir, d)} lacks class folder(s) {missing} "
                "that other domains have; every domain needs the same classes"
            )
    return image_dir, tree


def _some(paths, limit=5):
    shown = ", ".join(paths[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def num_val(n, val_fraction):
    """How many of ``n`` images of one (domain, class) go to val: round(n·f), at least 1 and
    at most n−1 when n ≥ 2 and f > 0; none when n < 2 or f = 0."""
    if n < 2 or val_fraction <= 0:
        return 0
    return min(n - 1, max(1, int(n * val_fraction + 0.5)))


def _check_fraction(val_fraction):
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val fraction must be in [0, 1), got {val_fraction}")


def make_domain_splits(dataset_dir, val_fraction=DEFAULT_VAL_FRACTION, seed=DEFAULT_SEED):
    """Build every leave-one-domain-out split of ``dataset_dir`` in memory.

    Returns ``{domain folder name: {"train": [...], "val": [...], "test": [...]}}`` with entries
    ``[relpath, label, classname]`` (see the module docstring).
    """
    _check_fraction(val_fraction)
    _, tree = scan_domain_folders(dataset_dir)
    classes = sorted(next(iter(tree.values())))
    labels = {c: i for i, c in enumerate(classes)}
    parts = {}
    for d, class_files in tree.items():
        train, val, everything = [], [], []
        for c in classes:
            files = class_files[c]
            order = list(files)
            random.Random(f"{seed}/{d}/{c}").shuffle(order)
            val_files = set(order[:num_val(len(files), val_fraction)])
            for name in files:
                entry = [f"{d}/{c}/{name}", labels[c], c]
                everything.append(entry)
                (val if name in val_files else train).append(entry)
        parts[d] = (train, val, everything)
    splits = {}
    for held_out in tree:
        sources = [d for d in tree if d != held_out]
        splits[held_out] = {
            "train": [e for d in sources for e in parts[d][0]],
            "val": [e for d in sources for e in parts[d][1]],
            "test": list(parts[held_out][2]),
        }
    return splits


def write_domain_splits(dataset_dir, val_fraction=DEFAULT_VAL_FRACTION, seed=DEFAULT_SEED, out_dir=None):
    """Write ``test_on_<domain>.json`` for every domain of ``dataset_dir`` (into ``out_dir``,
    default ``dataset_dir``). Returns the written paths, in domain order."""
    splits = make_domain_splits(dataset_dir, val_fraction, seed)
    out_dir = out_dir or dataset_dir
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for domain, split in splits.items():
        path = os.path.join(out_dir, split_file_name(domain))
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(split, f)
            f.write("\n")
        os.replace(tmp, path)
        written.append(path)
    return written


def read_split_json(path, keys=SPLIT_KEYS):
    """Read and check a split file ``{"train": [[relpath, label, classname], ...], ...}``.

    Returns ``{key: [(relpath, label, classname), ...]}``. Every error names the file, and for a
    bad entry the key and the entry's index.
    """
    try:
        with open(path, "r") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"split file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a valid JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"{path}: expected a JSON object with keys {list(keys)}, got {type(data).__name__}"
        )
    out = {}
    for key in keys:
        if key not in data:
            raise DatasetError(f"{path}: missing key '{key}' (expected keys {list(keys)})")
        entries = data[key]
        if not isinstance(entries, list):
            raise DatasetError(f"{path}: '{key}' must be a list of [relpath, label, classname] entries")
        items = []
        for i, entry in enumerate(entries):
            if not (
                isinstance(entry, (list, tuple)) and len(entry) == 3
                and isinstance(entry[0], str) and entry[0]
                and isinstance(entry[1], int) and not isinstance(entry[1], bool) and entry[1] >= 0
                and isinstance(entry[2], str)
            ):
                raise DatasetError(
                    f"{path}: entry {i} of '{key}' is {entry!r}; expected "
                    "[relpath (non-empty string), label (int >= 0), classname (string)]"
                )
            items.append((entry[0], entry[1], entry[2]))
        out[key] = items
    return out


def classnames_from_split(split, source):
    """Label-sorted class names of a split read by :func:`read_split_json`.

    Labels must be 0..C−1 and each label must always carry the same class name.
    """
    names = {}
    for key, items in split.items():
        for i, (_, label, classname) in enumerate(items):
            known = names.setdefault(label, (classname, key, i))
            if known[0] != classname:
                raise DatasetError(
                    f"{source}: label {label} is '{known[0]}' at entry {known[2]} of '{known[1]}' but "
                    f"'{classname}' at entry {i} of '{key}'; a label must always name the same class"
                )
    if not names:
        raise DatasetError(f"{source}: the split lists no images")
    missing = [label for label in range(max(names) + 1) if label not in names]
    if missing:
        raise DatasetError(
            f"{source}: labels must be 0..{max(names)} with no gaps, but no entry has label(s) {missing}"
        )
    return [names[label][0] for label in range(len(names))]
