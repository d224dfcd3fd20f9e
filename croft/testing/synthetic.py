"""Small synthetic image datasets in the real on-disk layouts (docs/method.md §7.6).

:func:`make_synthetic_data` writes, under ``root``::

    PACS/images/{art_painting,cartoon,photo,sketch}/<class>/*.jpg + PACS/test_on_<domain>.json
    VLCS/images/{CALTECH,LABELME,PASCAL,SUN}/<class>/*.jpg      + VLCS/test_on_<domain>.json
    dtd/images/<class>/*.jpg             + dtd/split_zhou_DescribableTextures.json
    food-101/images/<class>/*.jpg        + food-101/split_zhou_Food101.json
    caltech-101/101_ObjectCategories/<folder>/*.jpg + caltech-101/split_zhou_Caltech101.json
    imagenet/classnames.txt + imagenet/images/{train,val}/<wnid>/*.JPEG  (10 classes)
    imagenetv2/imagenetv2-matched-frequency-format-val/<0..9>/*.jpg
    imagenet-sketch/images/<wnid>/*.jpg
    imagenet-adversarial/imagenet-a/<wnid>/*.jpg + README.txt   (7 of the 10 classes)
    imagenet-rendition/imagenet-r/<wnid>/*.jpg + README.txt      (7 of the 10 classes)

Design, so that a small model can learn the data and tests can check open-set detection:

- every ID class has its own shape and colour (``ID_OBJECTS``), every domain its own rendering
  style (photo = textured object on a natural gradient, sketch = dark outline on white paper,
  cartoon = flat saturated colours with a black outline, art_painting = noisy brush strokes; VLCS:
  CALTECH = centred object on white, LABELME = small object in an outdoor scene, PASCAL = object in
  clutter, SUN = dark noisy scene);
- the open-set sets look unlike every ID class: DTD = whole-image textures (stripes, checkers, dots,
  marble, zigzags), Food-101 = round dishes on plates, Caltech-101 = other shapes (stars, rings,
  crescents, arrows, ...) in muted colours;
- Caltech-101 includes classes that the exclusion lists of ``croft.data.datasets.openset`` drop
  (``dalmatian``, ``face`` in folder ``Faces``, ``electric_guitar``, ``elephant``, ``chair``,
  ``car_side``) and the three folders that the reference drops by accident (``airplanes``,
  ``Leopards``, ``Motorbikes``, renamed in the zhou split as in CoOp);
- ImageNet: every class has its own shape and colour (``IMAGENET_OBJECTS``); train/val and V2
  are "photo" renderings, Sketch the "sketch" style, A the cluttered "PASCAL" style and R the
  "cartoon" style; A and R hold 7 of the 10 classes (different ones) and a ``README.txt``, as
  the real downloads do;
- every image comes from a NumPy generator seeded by (seed, dataset, domain, class, index) and is
  written as a baseline JPEG, so a rerun writes the same bytes.

Each dataset has its own ``write_*`` function with the signature ``(root, seed, n, image_size)``;
``WRITERS`` lists them in order.

:func:`croft.testing.demo_data.make_demo_data` writes a separate, harder benchmark for ``scripts/demo.sh``
(PACS with art_painting held out, open-set sets painted in the held-out style, and a captioned pretraining
pool of the source styles; docs/demo.md). The drawing is in :mod:`croft.testing.render`.

A dataset folder written here carries a ``.croft_synthetic`` marker; rewriting replaces such a
folder, and a folder without the marker is never touched (FileExistsError).
"""
import json
import os
import zlib

from ..data.splits import DEFAULT_SEED, DEFAULT_VAL_FRACTION, num_val, write_domain_splits
from .render import _fresh_dir, _render_dish, _render_id, _render_object, _render_texture, _rng, _save

PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
PACS_CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
VLCS_DOMAINS = ("CALTECH", "LABELME", "PASCAL", "SUN")
VLCS_CLASSES = ("bird", "car", "chair", "dog", "person")
DTD_CLASSES = ("banded", "chequered", "dotted", "marbled", "zigzagged")
FOOD_CLASSES = ("apple_pie", "pizza", "ramen", "sushi", "waffles")
# Caltech-101 folder -> (zhou class name, shape). Folder names follow the real dataset.
CALTECH_FOLDERS = {
    "accordion": ("accordion", "zigzag"),
    "airplanes": ("airplane", "bowtie"),
    "anchor": ("anchor", "arrow"),
    "barrel": ("barrel", "ring"),
    "car_side": ("car_side", "half_disc"),
    "chair": ("chair", "crescent"),
    "dalmatian": ("dalmatian", "star5"),
    "electric_guitar": ("electric_guitar", "star6"),
    "elephant": ("elephant", "star7"),
    "Faces": ("face", "star8"),
    "Leopards": ("leopard", "double_ring"),
    "Motorbikes": ("motorbike", "hex_ring"),
}

# ID class -> (shape, RGB colour). Classes shared by PACS and VLCS look the same in both.
ID_OBJECTS = {
    "dog": ("circle", (240, 140, 20)),
    "elephant": ("square", (70, 95, 175)),
    "giraffe": ("triangle", (235, 210, 30)),
    "guitar": ("figure8", (190, 25, 40)),
    "horse": ("diamond", (40, 150, 60)),
    "house": ("house", (140, 60, 180)),
    "person": ("plus", (30, 185, 200)),
    "bird": ("triangle", (235, 210, 30)),
    "car": ("wide_rect", (190, 25, 40)),
    "chair": ("ell", (140, 60, 180)),
}



def _write_domain_dataset(root, name, domains, classes, seed, n, size):
    dataset_dir = os.path.join(root, name)
    _fresh_dir(dataset_dir)
    for domain in domains:
        for cls in classes:
            folder = os.path.join(dataset_dir, "images", domain, cls)
            os.makedirs(folder)
            shape, colour = ID_OBJECTS[cls]
            for i in range(n):
                rng = _rng(seed, name, domain, cls, i)
                _save(_render_id(domain, shape, colour, size, rng), os.path.join(folder, f"{cls}_{i:04d}.jpg"))
    write_domain_splits(dataset_dir, DEFAULT_VAL_FRACTION, DEFAULT_SEED)
    return dataset_dir


def write_pacs(root, seed=0, per_class_domain=6, image_size=64):
    """``root/PACS``: 4 domains × 7 classes × ``per_class_domain`` images + ``test_on_*.json``."""
    return _write_domain_dataset(root, "PACS", PACS_DOMAINS, PACS_CLASSES, seed, per_class_domain, image_size)


def write_vlcs(root, seed=0, per_class_domain=6, image_size=64):
    """``root/VLCS``: upper-case domain folders × 5 classes + ``test_on_{caltech,...}.json``."""
    return _write_domain_dataset(root, "VLCS", VLCS_DOMAINS, VLCS_CLASSES, seed, per_class_domain, image_size)


def _write_zhou(path, per_class_entries):
    """A CoOp "zhou" split: per class, the first half train, then 20% val, the rest test."""
    split = {"train": [], "val": [], "test": []}
    for entries in per_class_entries:
        n = len(entries)
        n_train = n // 2
        n_val = num_val(n - n_train, 0.4) if n - n_train >= 2 else 0
        split["train"] += entries[:n_train]
        split["val"] += entries[n_train:n_train + n_val]
        split["test"] += entries[n_train + n_val:]
    with open(path, "w") as f:
        json.dump(split, f)
        f.write("\n")


def _write_class_folders(root, dirname, image_subdir, split_name, folders, render, seed, n, size, file_name):
    """Class-folder OOD set; ``folders`` = [(folder, classname, render_arg)], labels by folder order."""
    set_dir = os.path.join(root, dirname)
    _fresh_dir(set_dir)
    per_class = []
    for label, (folder, classname, arg) in enumerate(folders):
        out = os.path.join(set_dir, image_subdir, folder)
        os.makedirs(out)
        entries = []
        for i in range(n):
            name = file_name(folder, i)
            _save(render(arg, size, _rng(seed, dirname, folder, i)), os.path.join(out, name))
            entries.append([f"{folder}/{name}", label, classname])
        per_class.append(entries)
    _write_zhou(os.path.join(set_dir, split_name), per_class)
    return set_dir


def write_dtd(root, seed=0, per_class=8, image_size=64):
    """``root/dtd``: texture classes in ``images/`` + ``split_zhou_DescribableTextures.json``."""
    return _write_class_folders(
        root, "dtd", "images", "split_zhou_DescribableTextures.json",
        [(c, c, c) for c in DTD_CLASSES], _render_texture, seed, per_class, image_size,
        lambda folder, i: f"{folder}_{i + 1:04d}.jpg",
    )


def write_food101(root, seed=0, per_class=8, image_size=64):
    """``root/food-101``: dish classes in ``images/`` + ``split_zhou_Food101.json``."""
    return _write_class_folders(
        root, "food-101", "images", "split_zhou_Food101.json",
        [(c, c, c) for c in FOOD_CLASSES], _render_dish, seed, per_class, image_size,
        lambda folder, i: f"{100000 + 7919 * i + zlib.crc32(folder.encode()) % 1000}.jpg",
    )


def write_caltech101(root, seed=0, per_class=8, image_size=64):
    """``root/caltech-101``: object classes in ``101_ObjectCategories/`` + ``split_zhou_Caltech101.json``
    (class names renamed as in CoOp: airplanes→airplane, Faces→face, Leopards→leopard, Motorbikes→motorbike)."""
    folders = [(f, CALTECH_FOLDERS[f][0], CALTECH_FOLDERS[f][1]) for f in sorted(CALTECH_FOLDERS)]
    return _write_class_folders(
        root, "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json",
        folders, _render_object, seed, per_class, image_size,
        lambda folder, i: f"image_{i + 1:04d}.jpg",
    )


# ImageNet: (wnid, class name) in classnames.txt order, and each class's (shape, RGB colour).
IMAGENET_CLASSES = (
    ("n01440764", "tench"),
    ("n01530575", "brambling"),
    ("n01641577", "American bullfrog"),
    ("n02085620", "Chihuahua"),
    ("n02123045", "tabby cat"),
    ("n02504458", "African bush elephant"),
    ("n02690373", "airliner"),
    ("n03272010", "electric guitar"),
    ("n03417042", "garbage truck"),
    ("n07747607", "orange"),
)
IMAGENET_OBJECTS = {
    "n01440764": ("circle", (240, 140, 20)),
    "n01530575": ("square", (70, 95, 175)),
    "n01641577": ("triangle", (235, 210, 30)),
    "n02085620": ("figure8", (190, 25, 40)),
    "n02123045": ("diamond", (40, 150, 60)),
    "n02504458": ("house", (140, 60, 180)),
    "n02690373": ("plus", (30, 185, 200)),
    "n03272010": ("wide_rect", (250, 120, 190)),
    "n03417042": ("ell", (120, 70, 30)),
    "n07747607": ("star5", (20, 40, 120)),
}
# Indices (into IMAGENET_CLASSES) of the classes that ImageNet-A / -R hold (the real ones hold 200 of 1000).
IMAGENET_A_CLASSES = (0, 2, 3, 4, 5, 7, 8)
IMAGENET_R_CLASSES = (0, 1, 3, 4, 6, 7, 8)
# variant folder (under root), class folder naming, style, classes
IMAGENET_VARIANT_TREES = (
    ("imagenetv2", "imagenetv2-matched-frequency-format-val", "index", "photo", None),
    ("imagenet-sketch", "images", "wnid", "sketch", None),
    ("imagenet-adversarial", "imagenet-a", "wnid", "PASCAL", IMAGENET_A_CLASSES),
    ("imagenet-rendition", "imagenet-r", "wnid", "cartoon", IMAGENET_R_CLASSES),
)
IMAGENET_README = "Stray file of the real download (class list); croft ignores files that are not class folders.\n"


def write_imagenet(root, seed=0, per_class=6, image_size=64):
    """``root/imagenet`` (``classnames.txt``, ``images/{train,val}/<wnid>/``: ``per_class`` images
    each) and the four variants (``max(2, per_class // 2)`` images per class), as listed in the
    module docstring. Returns the ``imagenet`` folder."""
    imagenet = os.path.join(root, "imagenet")
    _fresh_dir(imagenet)
    with open(os.path.join(imagenet, "classnames.txt"), "w") as f:
        f.writelines(f"{wnid} {name}\n" for wnid, name in IMAGENET_CLASSES)
    for split in ("train", "val"):
        for wnid, _ in IMAGENET_CLASSES:
            folder = os.path.join(imagenet, "images", split, wnid)
            os.makedirs(folder)
            shape, colour = IMAGENET_OBJECTS[wnid]
            for i in range(per_class):
                name = f"{wnid}_{i + 1}.JPEG" if split == "train" else f"ILSVRC2012_val_{_val_number(wnid, i):08d}.JPEG"
                _save(_render_id("photo", shape, colour, image_size, _rng(seed, "imagenet", split, wnid, i)),
                      os.path.join(folder, name))
    n_variant = max(2, per_class // 2)
    for top, sub, naming, style, subset in IMAGENET_VARIANT_TREES:
        base = os.path.join(root, top)
        _fresh_dir(base)
        out = os.path.join(base, sub)
        os.makedirs(out)
        for index, (wnid, _) in enumerate(IMAGENET_CLASSES):
            if subset is not None and index not in subset:
                continue
            folder = os.path.join(out, str(index) if naming == "index" else wnid)
            os.makedirs(folder)
            shape, colour = IMAGENET_OBJECTS[wnid]
            for i in range(n_variant):
                _save(_render_id(style, shape, colour, image_size, _rng(seed, top, wnid, i)),
                      os.path.join(folder, f"{top}_{wnid}_{i:03d}.jpg"))
        if subset is not None:
            with open(os.path.join(out, "README.txt"), "w") as f:
                f.write(IMAGENET_README)
    return imagenet


def _val_number(wnid, i):
    """A distinct ILSVRC-style val image number per (class, index)."""
    return 1 + [w for w, _ in IMAGENET_CLASSES].index(wnid) * 1000 + i


# (name, writer, which count argument of make_synthetic_data it takes)
WRITERS = (
    ("PACS", write_pacs, "per_class_domain"),
    ("VLCS", write_vlcs, "per_class_domain"),
    ("dtd", write_dtd, "ood_per_class"),
    ("food-101", write_food101, "ood_per_class"),
    ("caltech-101", write_caltech101, "ood_per_class"),
    ("imagenet", write_imagenet, "per_class_domain"),
)


def make_synthetic_data(root, seed=0, per_class_domain=6, image_size=64, ood_per_class=8):
    """Write every synthetic dataset under ``root`` (see the module docstring).

    Returns ``{dataset folder name: path}``. Deterministic: the same arguments write the same bytes.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if per_class_domain < 1 or ood_per_class < 1:
        raise ValueError("per_class_domain and ood_per_class must be >= 1")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    os.makedirs(root, exist_ok=True)
    counts = {"per_class_domain": per_class_domain, "ood_per_class": ood_per_class}
    return {name: writer(root, seed, counts[count], image_size) for name, writer, count in WRITERS}
