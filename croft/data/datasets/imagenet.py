"""Setup-I: ImageNet with a seeded base/new class split, and ImageNet-V2/-Sketch/-A/-R (datasets/README.md).

Registered as ``ImageNet46`` (the reference's name), ``ImageNetOpenSet`` (a clearer alias) and
``ImageNetOOD46`` (the reference's evaluation dataset: here one dataset does training and every
evaluation). Layout under ``DATASET.ROOT`` (see datasets/README.md)::

    imagenet/classnames.txt                          "<wnid> <class name>" per line, in ImageNet order
    imagenet/images/{train,val}/<wnid>/<image>
    imagenetv2/imagenetv2-matched-frequency-format-val/<0..N-1>/<image>   (folder i = line i of classnames.txt)
    imagenet-sketch/images/<wnid>/<image>
    imagenet-adversarial/imagenet-a/<wnid>/<image>
    imagenet-rendition/imagenet-r/<wnid>/<image>

**Class split.** ``base = RandomState(SEED).choice(N, int(N * DATASET.BASE_RATIO), replace=False)``
over the classes of ``classnames.txt`` in file order: the same draw as the reference's
``np.random.seed(SEED); np.random.choice(classnames, ...)``, but from a private generator, so it
does not depend on what touched NumPy's global RNG before. The label of a base class is its
position in the draw; ``classnames`` lists the base classes in label order. The other classes are
"new" (open-set). The split is logged and written to ``OUTPUT_DIR/class_split.json``; a run folder
that already holds a different split is an error. Class names (and wnids) must be unique.

**Sets** (every per-class draw uses its own ``random.Random`` seeded by (SEED, set, wnid), so a set
does not depend on listing order, on the other classes or on the process history):

- ``train_x``: ``DATASET.NUM_SHOTS`` = K images per base class from ImageNet train (a fixed
  per-class shuffle, so the K-shot sets are nested across K); K < 1: all base-class train images.
  New-class images never enter ``train_x`` (only base-class train folders are even listed).
- ``test``: every ImageNet-val image of the base classes (the ID accuracy, ``closed_set.test_accuracy``).
- ``val`` (model selection), ``V = DATASET.VAL_SHOTS`` per class (<= 0: 4, the reference's value):
  ``TEST.OOD_PROTOCOL reference``: V ImageNet-val images per base class, a subset of ``test``
  (the reference's leak). ``standard``: V ImageNet-*train* images per base class,
  disjoint from the K shots (with K < 1 they are held out of ``train_x``).
  ``DATASET.VAL_PERCENT`` does not apply (a non-default value is an error).
- ``ood = {"ImageNet-new": ...}``: ``DATASET.IMAGENET_OOD_SAMPLES`` (default 1000, the
  reference's number; -1 = all) ImageNet-val images drawn at random from all new classes
  (labels -1), plus any set named in ``DATASET.OOD_SETS`` (DTD, Food101, Caltech101;
  :func:`croft.data.datasets.openset.load_ood_sets`, seed key ``"configured"``).
- ``test_sets``: one entry per variant of ``DATASET.IMAGENET_VARIANTS`` that exists on disk
  (``imagenet_v2``, ``imagenet_sketch``, ``imagenet_a``, ``imagenet_r``), restricted to the base
  classes and labelled with the base labels; they become ``closed_set.per_domain``. A missing
  variant is a logged warning and is skipped; files that are not class folders (README.txt) are
  ignored. ``reference``: every variant is classified over all base classes (the reference's
  400-way A/R). ``standard``: ImageNet-A and -R are classified over the base classes they contain
  (``class_subsets``, applied by the evaluation).

Under ``TEST.OOD_PROTOCOL reference`` the sets have the original's sizes and classes but not its
images: the original drew the K shots, the val images and the 1,000 new-class images from
Python's global ``random`` in ``os.listdir`` order (and through seedless caches), croft from the
private generators above (docs/differences.md, "Sampling with croft's own generators").

No file is cached: the folders are listed (sorted) on every run. Config-only checks (SEED,
variants, keys that do not apply to ImageNet) are in :meth:`ImageNetOpenSet.check_cfg`.
"""
import json
import logging
import os
import random
from collections import Counter, OrderedDict, namedtuple

import numpy as np

from ...utils.layout import CLASS_SPLIT_FILE
from ..datum import Datum
from ..splits import DatasetConfigError, DatasetError, is_image_file, visible_entries
from .base import DATASET_REGISTRY, DatasetBase, reject_non_default
from .domain_folder import README_HINT, check_dataset_root
from .openset import load_ood_sets

logger = logging.getLogger(__name__)

IMAGENET_DIR = "imagenet"
CLASSNAMES_FILE = "classnames.txt"
SPLIT_FILE = CLASS_SPLIT_FILE
OOD_NAME = "ImageNet-new"
ID_DOMAIN = "imagenet"
REFERENCE_VAL_SHOTS = 4

# Keys of the multi-domain datasets that ImageNet46 does not read: a non-default value is an error.
NOT_APPLICABLE_KEYS = {
    "TEST_ENV": "ImageNet46 has no held-out domain; its shifted test sets are DATASET.IMAGENET_VARIANTS",
    "DATASET.SOURCE_DOMAINS": "ImageNet46 trains on ImageNet only",
    "DATASET.TARGET_DOMAINS": "ImageNet46's shifted test sets are DATASET.IMAGENET_VARIANTS",
    "DATASET.VAL_PERCENT": "ImageNet46's val set is DATASET.VAL_SHOTS images per base class",
    "DATASET.FEWSHOT_SAMPLER": "ImageNet46 always draws DATASET.NUM_SHOTS images per base class "
                               "('class_balanced')",
}

# name -> (folder under DATASET.ROOT, "wnid" or "index" class folders, restricted to the classes
# present under the standard protocol)
Variant = namedtuple("Variant", "name folder keyed_by restrict")
VARIANTS = OrderedDict((v.name, v) for v in (
    Variant("imagenet_v2", os.path.join("imagenetv2", "imagenetv2-matched-frequency-format-val"), "index", False),
    Variant("imagenet_sketch", os.path.join("imagenet-sketch", "images"), "wnid", False),
    Variant("imagenet_a", os.path.join("imagenet-adversarial", "imagenet-a"), "wnid", True),
    Variant("imagenet_r", os.path.join("imagenet-rendition", "imagenet-r"), "wnid", True),
))
VARIANT_ALIASES = {
    "imagenetv2": "imagenet_v2", "imagenet-v2": "imagenet_v2", "v2": "imagenet_v2",
    "imagenet_s": "imagenet_sketch", "imagenet-sketch": "imagenet_sketch", "sketch": "imagenet_sketch",
    "imagenet-a": "imagenet_a", "a": "imagenet_a",
    "imagenet-r": "imagenet_r", "r": "imagenet_r",
}


def canonical_variant(name):
    key = str(name).strip().lower()
    key = VARIANT_ALIASES.get(key, key)
    if key not in VARIANTS:
        raise DatasetConfigError(
            f"unknown ImageNet variant '{name}' in DATASET.IMAGENET_VARIANTS; known: {list(VARIANTS)}"
        )
    return key


# ------------------------------------------------------------------ class list and split

def read_classnames(path):
    """``[(wnid, class name), ...]`` in file order from ``<wnid> <class name>`` lines.

    Raises FileNotFoundError naming ``path``, or DatasetError for a malformed line, a repeated
    wnid or repeated class names (membership is tested by name, so names must be unique).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"ImageNet class list not found: {path} (one '<wnid> <class name>' line per class, "
            f"e.g. CoOp's classnames.txt; {README_HINT})"
        )
    classes = []
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or not parts[1].strip():
                raise DatasetError(f"{path}, line {lineno}: expected '<wnid> <class name>', got {line!r}")
            classes.append((parts[0], parts[1].strip()))
    if not classes:
        raise DatasetError(f"{path} lists no classes")
    for what, values in (("wnid", [w for w, _ in classes]), ("class name", [n for _, n in classes])):
        repeated = [v for v, count in Counter(values).items() if count > 1]
        if repeated:
            where = {v: [i + 1 for i, x in enumerate(values) if x == v] for v in repeated}
            shown = "; ".join(f"'{v}' (lines {', '.join(map(str, where[v]))})" for v in repeated[:10])
            more = f" and {len(repeated) - 10} more" if len(repeated) > 10 else ""
            raise DatasetError(f"{path}: duplicate {what}s: {shown}{more}; every {what} must be unique")
    return classes


def num_base_classes(num_classes, base_ratio):
    if not 0.0 < base_ratio <= 1.0:
        raise DatasetConfigError(f"DATASET.BASE_RATIO must be in (0, 1], got {base_ratio}")
    n = int(num_classes * base_ratio)
    if n < 1:
        raise DatasetError(
            f"DATASET.BASE_RATIO {base_ratio} of {num_classes} classes gives no base class "
            f"(int({num_classes} * {base_ratio}) = 0)"
        )
    return n


def draw_base_classes(num_classes, base_ratio, seed):
    """Indices (into the class list) of the base classes, in draw order (= their labels).

    Equal to ``np.random.seed(seed); np.random.choice(classes, n, replace=False)`` (the reference),
    drawn from a private ``RandomState`` so that earlier use of NumPy's global RNG does not matter.
    """
    n = num_base_classes(num_classes, base_ratio)
    return [int(i) for i in np.random.RandomState(seed).choice(num_classes, n, replace=False)]


def _shuffled(items, *key):
    """A copy of ``items`` in an order that depends only on ``key`` (string-seeded, stable across processes)."""
    out = list(items)
    random.Random("/".join(str(k) for k in key)).shuffle(out)
    return out


def _scan(folder, want_dirs):
    """Sorted names of the visible sub-folders (or files) of ``folder`` (``scandir``: no stat per file)."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if not e.name.startswith(".") and e.is_dir() == want_dirs]
    return sorted(names)


def _images_in(folder):
    """Sorted image files of a class folder (hidden and non-image files skipped)."""
    return [os.path.join(folder, name) for name in _scan(folder, want_dirs=False) if is_image_file(name)]


def _class_folders(folder):
    """Sorted sub-folders of ``folder`` (files such as README.txt are ignored)."""
    return _scan(folder, want_dirs=True)


def _write_json_atomic(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------ the dataset

@DATASET_REGISTRY.register("ImageNet46")
class ImageNetOpenSet(DatasetBase):
    """ImageNet base classes for training and ID test, new classes as open-set, four shifted variants."""
    setup = "setup1"

    NAME = "ImageNet46"
    reference_detection_split = "val"
    #: Seed key of the DATASET.OOD_SETS draws (croft.data.datasets.openset.OOD_SEED_KEYS).
    OOD_SEED_KEY = "configured"

    @classmethod
    def check_cfg(cls, cfg):
        """The common dataset keys, ``SEED`` (the class split needs one), ``DATASET.IMAGENET_VARIANTS``,
        ``DATASET.IMAGENET_OOD_SAMPLES`` and the keys that do not apply (must keep their defaults)."""
        super().check_cfg(cfg)
        name = cfg.DATASET.NAME or cls.NAME
        if cfg.SEED < 0:
            raise DatasetConfigError(
                f"{name}: the base/new class split is drawn from SEED, which is {cfg.SEED}; pass --seed "
                "(e.g. 1, 2 or 3 for the reference's three splits)"
            )
        reject_non_default(cfg, NOT_APPLICABLE_KEYS, name)
        for variant in cfg.DATASET.IMAGENET_VARIANTS:
            canonical_variant(variant)
        n_ood = cfg.DATASET.IMAGENET_OOD_SAMPLES
        if not isinstance(n_ood, int) or isinstance(n_ood, bool) or n_ood < -1:
            raise DatasetConfigError(
                f"invalid value for 'DATASET.IMAGENET_OOD_SAMPLES': {n_ood!r}; expected -1 (all) or an int >= 0"
            )

    def __init__(self, cfg):
        root = check_dataset_root(cfg)
        self.NAME = cfg.DATASET.NAME or self.NAME
        seed = cfg.SEED
        protocol = cfg.TEST.OOD_PROTOCOL
        self.protocol = protocol
        self.imagenet_dir = os.path.join(root, IMAGENET_DIR)
        classes = read_classnames(os.path.join(self.imagenet_dir, CLASSNAMES_FILE))
        self.all_classes = classes
        wnid_index = {wnid: i for i, (wnid, _) in enumerate(classes)}
        train_dir = os.path.join(self.imagenet_dir, "images", "train")
        val_dir = os.path.join(self.imagenet_dir, "images", "val")
        for split_dir in (train_dir, val_dir):
            if not os.path.isdir(split_dir):
                raise FileNotFoundError(
                    f"{self.NAME}: ImageNet folder not found: {split_dir} (expected {split_dir}/<wnid>/<image>; "
                    f"{README_HINT})"
                )

        # ---- class split
        base_idx = draw_base_classes(len(classes), cfg.DATASET.BASE_RATIO, seed)
        label_of = {classes[i][0]: label for label, i in enumerate(base_idx)}  # wnid -> label
        base_set = set(base_idx)
        new_idx = [i for i in range(len(classes)) if i not in base_set]
        self.base_classes = [classes[i] for i in base_idx]
        self.new_classes = [classes[i] for i in new_idx]
        classnames = [name for _, name in self.base_classes]

        # ---- ImageNet train (base classes only) and val
        train_folders = self._check_folders(train_dir, wnid_index)
        val_folders = self._check_folders(val_dir, wnid_index)
        k = cfg.DATASET.NUM_SHOTS
        v = cfg.DATASET.VAL_SHOTS if cfg.DATASET.VAL_SHOTS > 0 else REFERENCE_VAL_SHOTS
        train_x, val, test = [], [], []
        for label, (wnid, name) in enumerate(self.base_classes):
            if wnid not in train_folders:
                raise DatasetError(
                    f"{self.NAME}: base class {wnid} ({name}) has no training folder {os.path.join(train_dir, wnid)}"
                )
            files = _images_in(os.path.join(train_dir, wnid))
            if not files:
                raise DatasetError(f"{self.NAME}: empty training folder {os.path.join(train_dir, wnid)}")
            order = _shuffled(files, "imagenet-train", seed, wnid)
            if k >= 1:
                shots = order[:k]
                held = order[max(k, len(order) - v):]
            else:
                held = order[len(order) - v:] if protocol == "standard" and len(order) > v else []
                shots = order[:len(order) - len(held)]
            train_x += [self._datum(p, label, name) for p in sorted(shots)]
            val_files = _images_in(os.path.join(val_dir, wnid)) if wnid in val_folders else []
            test += [self._datum(p, label, name) for p in val_files]
            if protocol == "standard":
                val += [self._datum(p, label, name) for p in sorted(held)]
            else:
                val += [self._datum(p, label, name)
                        for p in sorted(_shuffled(val_files, "imagenet-val", seed, wnid)[:v])]
        if not test:
            raise DatasetError(f"{self.NAME}: no ImageNet-val image of any base class in {val_dir}")

        # ---- open-set: ImageNet-val images of the new classes
        pool = []
        for i in new_idx:
            wnid, name = classes[i]
            if wnid in val_folders:
                pool += [Datum(p, -1, 0, name, ID_DOMAIN) for p in _images_in(os.path.join(val_dir, wnid))]
        n_ood = cfg.DATASET.IMAGENET_OOD_SAMPLES
        if 0 <= n_ood < len(pool):
            keep = sorted(random.Random(f"imagenet-ood/{seed}").sample(range(len(pool)), n_ood))
            pool = [pool[i] for i in keep]
        ood = OrderedDict()
        if pool:
            ood[OOD_NAME] = pool
        elif n_ood == 0:
            logger.info("%s: DATASET.IMAGENET_OOD_SAMPLES is 0: no '%s' open-set set", self.NAME, OOD_NAME)
        else:
            logger.warning("%s: no ImageNet-val image of a new class (%d new classes); no '%s' open-set set",
                           self.NAME, len(new_idx), OOD_NAME)
        ood.update(load_ood_sets(cfg, root, "none", self.OOD_SEED_KEY))

        # ---- covariate-shifted variants
        test_sets = OrderedDict()
        class_subsets = {}
        names = [canonical_variant(n) for n in cfg.DATASET.IMAGENET_VARIANTS]
        for variant_name in OrderedDict.fromkeys(names):
            items = self._read_variant(root, VARIANTS[variant_name], classes, label_of)
            if items is None:
                continue
            test_sets[variant_name] = items
            if protocol == "standard" and VARIANTS[variant_name].restrict:
                class_subsets[variant_name] = sorted({d.label for d in items})
        self.variant_names = list(test_sets)

        super().__init__(train_x, val, test, classnames, ood=ood, test_sets=test_sets or None,
                         source_domains=[ID_DOMAIN], target_domains=[], class_subsets=class_subsets)
        self._save_split(cfg, seed)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _datum(path, label, name, domain=0, domainname=ID_DOMAIN):
        return Datum(path, label, domain, name, domainname)

    def _check_folders(self, split_dir, wnid_index):
        folders = _class_folders(split_dir)
        if not folders and any(is_image_file(n) for n in visible_entries(split_dir)):
            raise DatasetError(
                f"{self.NAME}: {split_dir} holds images directly; sort them into one folder per class, "
                f"{split_dir}/<wnid>/<image> ({README_HINT})"
            )
        unknown = [f for f in folders if f not in wnid_index]
        if unknown:
            raise DatasetError(
                f"{self.NAME}: class folder(s) not in {os.path.join(self.imagenet_dir, CLASSNAMES_FILE)}: "
                f"{', '.join(os.path.join(split_dir, f) for f in unknown[:5])}"
                + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
            )
        return set(folders)

    def _read_variant(self, root, variant, classes, label_of):
        """Base-class items of one variant, or None (with a warning) when it is absent or has none."""
        folder = os.path.join(root, variant.folder)
        if not os.path.isdir(folder):
            logger.warning("%s: variant %s not found at %s; skipped (%s)", self.NAME, variant.name, folder,
                           README_HINT)
            return None
        domain = list(VARIANTS).index(variant.name) + 1
        wnids = {w for w, _ in classes}
        items = []
        bad = []
        for sub in _class_folders(folder):
            if variant.keyed_by == "index":
                if not sub.isdigit() or int(sub) >= len(classes):
                    bad.append(sub)
                    continue
                wnid = classes[int(sub)][0]
            else:
                if sub not in wnids:
                    bad.append(sub)
                    continue
                wnid = sub
            if wnid not in label_of:
                continue
            label = label_of[wnid]
            name = self.base_classes[label][1]
            items += [Datum(p, label, domain, name, variant.name) for p in _images_in(os.path.join(folder, sub))]
        if bad:
            expected = f"0..{len(classes) - 1}" if variant.keyed_by == "index" else "wnids of classnames.txt"
            raise DatasetError(
                f"{self.NAME}: {variant.name}: unexpected class folder(s) in {folder}: {bad[:5]}"
                + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "") + f"; expected {expected}"
            )
        if not items:
            logger.warning("%s: variant %s at %s has no image of the %d base classes; skipped",
                           self.NAME, variant.name, folder, len(self.base_classes))
            return None
        return items

    def split_record(self, seed):
        return {
            "dataset": self.NAME, "seed": seed, "num_classes": len(self.all_classes),
            "num_base": len(self.base_classes), "num_new": len(self.new_classes),
            "protocol": self.protocol,
            "base_classes": [{"label": i, "wnid": w, "name": n} for i, (w, n) in enumerate(self.base_classes)],
            "new_classes": [{"wnid": w, "name": n} for w, n in self.new_classes],
        }

    def _save_split(self, cfg, seed):
        record = self.split_record(seed)
        logger.info("%s: base/new split (seed %d, BASE_RATIO %s): %d base classes (labels in draw order), "
                    "%d new; base: %s", self.NAME, seed, cfg.DATASET.BASE_RATIO, len(self.base_classes),
                    len(self.new_classes), ", ".join(f"{w} {n}" for w, n in self.base_classes))
        sizes = {"train_x": len(self.train_x), "val": len(self.val), "test": len(self.test)}
        sizes.update({k: len(v) for k, v in self.test_sets.items() if k in self.variant_names})
        sizes.update({f"ood/{k}": len(v) for k, v in self.ood.items()})
        logger.info("%s (%s protocol): %s%s", self.NAME, self.protocol,
                    ", ".join(f"{k} {v}" for k, v in sizes.items()),
                    "".join(f"; {k} classified over its {len(v)} base classes" for k, v in self.class_subsets.items()))
        output_dir = cfg.OUTPUT_DIR
        if not output_dir:
            return
        path = os.path.join(output_dir, SPLIT_FILE)
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    old = json.load(f)
                same = [c["wnid"] for c in old.get("base_classes", [])] == [w for w, _ in self.base_classes]
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                same = False
            if not same:
                raise DatasetError(
                    f"{self.NAME}: {path} holds a different base/new class split (another SEED, BASE_RATIO or "
                    "classnames.txt); its checkpoints would not match this run's labels. Use another --output-dir"
                )
        record["sizes"] = sizes
        _write_json_atomic(path, record)
        logger.info("%s: class split saved to %s", self.NAME, path)


DATASET_REGISTRY.register("ImageNetOpenSet")(ImageNetOpenSet)
DATASET_REGISTRY.register("ImageNetOOD46")(ImageNetOpenSet)
