"""Open-set (semantic-shift) evaluation sets: DTD, Food101, Caltech101, Flowers102 (docs/method.md §7.5).

Each set is read from CoOp's layout under the OOD root (``DATASET.ROOT`` for PACS/VLCS), the same
folder and :class:`~croft.data.datasets.coop_layouts.Layout` as the classification dataset of that
name (``DescribableTextures``, ``Food101``, ``Caltech101``, ``OxfordFlowers``)::

    dtd/images/<class>/<image>                    + dtd/split_zhou_DescribableTextures.json
    food-101/images/<class>/<image>               + food-101/split_zhou_Food101.json
    caltech-101/101_ObjectCategories/<folder>/<image> + caltech-101/split_zhou_Caltech101.json
    oxford_flowers/jpg/<image>                    + oxford_flowers/split_zhou_OxfordFlowers.json

or, when the zhou split file is absent, from the class folders alone (labels = sorted folder
order; for Caltech-101 ``BACKGROUND_Google`` and ``Faces_easy`` are skipped and ``airplanes``,
``Faces``, ``Leopards``, ``Motorbikes`` are renamed ``airplane``, ``face``, ``leopard``,
``motorbike``, as in CoOp's zhou split; Flowers102: ``imagelabels.mat`` and ``cat_to_name.json``,
in label order). This role never writes a split file: the pool of a set without one is the same
on every run. The zhou split's train + val + test lists are pooled
and sampled class-balanced, at most ``per_class`` per class (``DATASET.OOD_PER_CLASS``, the
reference's 100). Items are ``Datum``s with domain 0, an empty domain name and the set's own
label (never used by the ID classifier).

Class exclusion (classes that overlap the ID classes, so they are not semantic shift):

- ``OOD_EXCLUSIONS`` lists them per ID dataset and per OOD set; ``DATASET.OOD_EXCLUDE`` picks the
  list (``""`` = the ID dataset's own: ``PACS``, ``VLCS``; ``none`` = no exclusion; DomainFolder
  defaults to ``none``).
- Only Caltech-101 has excluded classes. The reference also defines class filters for DTD and
  Food-101, but only in a method it never calls (dead code), so the published numbers
  use every DTD and Food-101 class; croft does the same. (No DTD texture, Food-101 dish or
  Flowers-102 species is a PACS/VLCS class either.)
- The reference's Caltech allow-lists use the raw folder names ``airplanes``/``Leopards``/
  ``Motorbikes`` while the zhou split renames them, so it drops ``airplane``, ``leopard`` and
  ``motorbike`` by accident. croft drops them only with ``TEST.OOD_PROTOCOL
  reference`` (and an ID exclusion list), to reproduce the published sets.

Every dataset loads the sets named in ``DATASET.OOD_SETS`` through :func:`load_ood_sets`; the
per-dataset difference is only the seed key of the class-balanced draw (:data:`OOD_SEED_KEYS`).
"""
import logging
import os
import random
from collections import namedtuple

from ..datum import Datum
from ..fewshot import sample_class_balanced
from ..splits import DatasetConfigError, DatasetError, read_split_json
from .coop_layouts import CALTECH_IGNORED, CALTECH_RENAMED, LAYOUTS, read_flowers, scan_class_folders

logger = logging.getLogger(__name__)

OODSet = namedtuple("OODSet", "name folder image_dir split_file layout")


def _ood_set(name, layout_name):
    layout = LAYOUTS[layout_name]
    return OODSet(name, layout.folder, layout.image_dir, layout.split_file, layout)


OOD_SETS = {
    "dtd": _ood_set("DTD", "DescribableTextures"),
    "food101": _ood_set("Food101", "Food101"),
    "caltech101": _ood_set("Caltech101", "Caltech101"),
    "flowers102": _ood_set("Flowers102", "OxfordFlowers"),
}
_ALIASES = {
    "describabletextures": "dtd",
    "food-101": "food101",
    "caltech-101": "caltech101",
    "oxfordflowers": "flowers102",
    "oxford_flowers": "flowers102",
}

# Caltech-101 folders that CoOp's zhou split skips or renames (the same applies to the fallback).
CALTECH_IGNORED_FOLDERS = CALTECH_IGNORED
CALTECH_RENAMED_FOLDERS = CALTECH_RENAMED

# OOD set -> exclusion list name -> zhou class names that overlap that ID dataset's classes.
OOD_EXCLUSIONS = {
    "Caltech101": {
        # PACS classes: dog, elephant, giraffe, guitar, horse, house, person.
        "pacs": ("face", "dalmatian", "snoopy", "electric_guitar", "elephant"),
        # VLCS classes: bird, car, chair, dog, person.
        "vlcs": ("face", "car_side", "chair", "windsor_chair", "wheelchair", "dalmatian", "snoopy", "emu",
                 "flamingo", "flamingo_head", "ibis", "pigeon", "wild_cat"),
    },
}
EXCLUSION_LISTS = ("pacs", "vlcs", "none")
# Dropped only under TEST.OOD_PROTOCOL "reference" (the allow-list / renaming mismatch, docs/method.md §7.5).
REFERENCE_ACCIDENTAL_DROPS = {"Caltech101": ("airplane", "leopard", "motorbike")}


def _spec(name):
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in OOD_SETS:
        known = ", ".join(spec.name for spec in OOD_SETS.values())
        raise DatasetConfigError(f"unknown open-set dataset '{name}' (DATASET.OOD_SETS); known: {known}")
    return OOD_SETS[key]


def canonical_ood_name(name):
    """``dtd`` → ``DTD``, ``food101`` → ``Food101``, ``caltech-101`` → ``Caltech101``, ``oxford_flowers`` →
    ``Flowers102``."""
    return _spec(name).name


def excluded_classes(name, id_dataset_name, protocol="standard"):
    """The zhou class names of OOD set ``name`` dropped for the ID dataset's exclusion list."""
    spec = _spec(name)
    list_name = (id_dataset_name or "none").lower()
    if list_name not in EXCLUSION_LISTS:
        raise DatasetConfigError(
            f"unknown open-set exclusion list '{id_dataset_name}' (DATASET.OOD_EXCLUDE); expected one of "
            f"{['PACS', 'VLCS', 'none']}"
        )
    if list_name == "none":
        return set()
    drops = set(OOD_EXCLUSIONS.get(spec.name, {}).get(list_name, ()))
    if protocol == "reference":
        drops |= set(REFERENCE_ACCIDENTAL_DROPS.get(spec.name, ()))
    return drops


def _read_zhou(spec, image_dir, split_path):
    split = read_split_json(split_path)
    items = []
    for key in ("train", "val", "test"):
        for relpath, label, classname in split[key]:
            if spec.name == "DTD":
                # The reference rebuilds DTD paths as images/<classname>/<basename>.
                relpath = f"{classname}/{os.path.basename(relpath)}"
            items.append((os.path.join(image_dir, relpath), label, classname))
    return items


def _read_folders(spec, image_dir):
    if spec.name == "Flowers102":
        groups = read_flowers(spec.layout, os.path.dirname(image_dir))
        return [(os.path.join(image_dir, relpath), label, name)
                for label, (name, relpaths) in sorted(groups.items()) for relpath in relpaths]
    classes, skipped = scan_class_folders(spec.layout, image_dir)
    if not classes:
        raise DatasetError(f"{spec.name}: no class folders in {image_dir}")
    items = [(path, label, classname) for label, (_, classname, paths) in enumerate(classes) for path in paths]
    if skipped:
        logger.warning("%s: skipped %d non-image entries in %s, e.g. %s",
                       spec.name, len(skipped), image_dir, skipped[0])
    return items


def load_ood_set(name, root, id_dataset_name, per_class, protocol="standard", rng=random):
    """Load open-set set ``name`` (``DTD``, ``Food101``, ``Caltech101``, ``Flowers102``; any case) from ``root``.

    ``id_dataset_name`` picks the exclusion list (``PACS``, ``VLCS`` or ``none``), ``per_class``
    caps the images per class (< 1 = all), ``protocol`` is ``TEST.OOD_PROTOCOL``; ``rng`` is the
    random module or a ``random.Random`` used for the class-balanced draw.
    Returns a list of :class:`~croft.data.datum.Datum` (domain 0, the set's own labels).
    """
    spec = _spec(name)
    drops = excluded_classes(name, id_dataset_name, protocol)
    set_dir = os.path.join(root, spec.folder)
    if not os.path.isdir(set_dir):
        raise FileNotFoundError(
            f"open-set dataset {spec.name} not found: {set_dir} (expected {set_dir}/{spec.image_dir}/"
            f"{'<image>' if spec.name == 'Flowers102' else '<class>/<image>'} and {set_dir}/{spec.split_file}); "
            "see datasets/README.md"
        )
    image_dir = os.path.join(set_dir, spec.image_dir)
    split_path = os.path.join(set_dir, spec.split_file)
    if os.path.isfile(split_path):
        items = _read_zhou(spec, image_dir, split_path)
        source = split_path
    elif os.path.isdir(image_dir):
        items = _read_folders(spec, image_dir)
        source = f"class folders in {image_dir}"
    else:
        raise FileNotFoundError(
            f"open-set dataset {spec.name}: neither {split_path} nor the image folder {image_dir} exists "
            "(see datasets/README.md)"
        )
    items = [item for item in items if item[2] not in drops]
    missing = [path for path, _, _ in items if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"image not found: {missing[0]} (listed in {source}); {len(missing)} of {len(items)} {spec.name} images "
            "are missing (see datasets/README.md)"
        )
    data = [Datum(path, label, 0, classname, "") for path, label, classname in items]
    if not data:
        raise DatasetError(f"open-set dataset {spec.name} has no image (read from {source}"
                           + (f", after excluding {sorted(drops)}" if drops else "") + "); expected at least one")
    return sample_class_balanced(data, per_class, rng)


# ------------------------------------------------------------------ the configured sets of a dataset

#: How a dataset seeds the class-balanced draw of each open-set set. Each draw depends only on the
#: set and SEED, never on the other sets of the run (so a set evaluated alone or after others gets
#: the same images), on NUM_SHOTS or on the few-shot sampler:
#:
#: - ``"canonical"`` (PACS, VLCS, DomainFolder): under ``TEST.OOD_PROTOCOL standard`` a private
#:   ``random.Random(f"ood-set/{canonical name}/{SEED}")`` (``DTD``, ``Food101``, ``Caltech101``,
#:   whatever the spelling in ``DATASET.OOD_SETS``). Under ``reference``, the original's draw: the
#:   original evaluated one open-set set per ``--eval-only`` run (dataset ``PACS_DTD``, ...), which
#:   ran with ``NUM_SHOTS -1`` and so drew nothing before the open-set pick; its pick is therefore
#:   the first draw of Python's ``random`` right after seeding with SEED, i.e. of
#:   ``random.Random(SEED)``, which every set gets afresh (docs/differences.md, "Open-set picks
#:   under reference"). Python's global ``random`` is never advanced. Without a seed
#:   (SEED < 0) every set gets a copy of the global state as it was before the first set.
#: - ``"configured"`` (ImageNet46): ``random.Random(f"ood-set/{name as written in
#:   DATASET.OOD_SETS}/{SEED}")`` under both protocols (``dtd`` and ``DTD`` draw differently).
OOD_SEED_KEYS = ("canonical", "configured")


def ood_rng(name, seed, protocol, seed_key, state=None):
    """The generator of the draw of open-set set ``name`` (as written in ``DATASET.OOD_SETS``).

    ``state`` (``random.getstate()``) is used only under ``reference`` with the ``"canonical"`` key
    and no seed (``seed < 0``): the returned generator then starts from that state. Every call
    returns a new generator, so sets never share one.
    """
    if seed_key == "canonical":
        if protocol == "reference":
            rng = random.Random()
            if seed >= 0:
                rng.seed(seed)
            else:
                rng.setstate(random.getstate() if state is None else state)
            return rng
        return random.Random(f"ood-set/{canonical_ood_name(name)}/{seed}")
    if seed_key == "configured":
        return random.Random(f"ood-set/{name}/{seed}")
    raise ValueError(f"unknown open-set seed key {seed_key!r}; expected one of {list(OOD_SEED_KEYS)}")


def check_ood_cfg(cfg):
    """Config-only checks of the open-set keys (no file is read); raises :class:`DatasetConfigError`."""
    names = cfg.DATASET.OOD_SETS
    if not isinstance(names, (list, tuple)):
        raise DatasetConfigError(
            f"invalid value for 'DATASET.OOD_SETS': {names!r}; expected a list of open-set names from "
            f"{[spec.name for spec in OOD_SETS.values()]}"
        )
    seen = {}
    for name in names:
        canonical = canonical_ood_name(name)
        if canonical in seen:
            raise DatasetConfigError(
                f"invalid value for 'DATASET.OOD_SETS': {list(names)} names {canonical} twice "
                f"('{seen[canonical]}' and '{name}'); list each open-set set once"
            )
        seen[canonical] = name
    excluded_classes("DTD", cfg.DATASET.OOD_EXCLUDE or "none")  # raises for an unknown list
    per_class = cfg.DATASET.OOD_PER_CLASS
    if not isinstance(per_class, int) or isinstance(per_class, bool):
        raise DatasetConfigError(
            f"invalid value for 'DATASET.OOD_PER_CLASS': {per_class!r}; expected an int (images per class, "
            "< 1 = all)"
        )


def load_ood_sets(cfg, default_root, default_exclude, seed_key):
    """``{canonical name: [Datum, ...]}`` of every set in ``DATASET.OOD_SETS``, in that order.

    The one open-set loader of every dataset. Sets are read from ``DATASET.OOD_ROOT`` (``""`` =
    ``default_root``) with the exclusion list ``DATASET.OOD_EXCLUDE`` (``""`` =
    ``default_exclude``), at most ``DATASET.OOD_PER_CLASS`` images per class, under
    ``TEST.OOD_PROTOCOL``; ``seed_key`` (one of :data:`OOD_SEED_KEYS`) says how each draw is seeded.
    Each set's draw is independent of the others, so ``["DTD"]`` and ``["Food101", "DTD"]`` pick the
    same DTD images.
    """
    if seed_key not in OOD_SEED_KEYS:
        raise ValueError(f"unknown open-set seed key {seed_key!r}; expected one of {list(OOD_SEED_KEYS)}")
    names = list(cfg.DATASET.OOD_SETS)
    if not names:
        return {}
    root = cfg.DATASET.OOD_ROOT or default_root
    exclude = cfg.DATASET.OOD_EXCLUDE or default_exclude
    protocol = cfg.TEST.OOD_PROTOCOL
    # Unseeded reference runs: every set starts from the same copy of the global state.
    state = random.getstate() if cfg.SEED < 0 else None
    ood = {}
    for name in names:
        ood[canonical_ood_name(name)] = load_ood_set(
            name, root, exclude, cfg.DATASET.OOD_PER_CLASS, protocol,
            ood_rng(name, cfg.SEED, protocol, seed_key, state),
        )
    return ood
