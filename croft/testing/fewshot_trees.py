"""CoOp's few-shot classification datasets as small synthetic trees in their native layouts.

:func:`make_fewshot_trees` writes, under ``root``, the seven datasets that
:func:`croft.testing.synthetic.make_synthetic_data` does not (it writes ``dtd/``, ``food-101/``,
``caltech-101/`` and ``imagenet/``, which CoOp's ``DescribableTextures``, ``Food101``, ``Caltech101``
and ``ImageNet`` read as they are)::

    oxford_pets/images/<Breed>_<n>.jpg, annotations/{trainval,test}.txt, split_zhou_OxfordPets.json
    oxford_flowers/jpg/image_<00001>.jpg, imagelabels.mat, cat_to_name.json, split_zhou_OxfordFlowers.json
    fgvc_aircraft/images/<id>.jpg, variants.txt, images_variant_{train,val,test}.txt
    eurosat/2750/<Class>/<Class>_<n>.jpg, split_zhou_EuroSAT.json
    stanford_cars/cars_{train,test}/<00001>.jpg, devkit/cars_{meta,train_annos}.mat,
        cars_test_annos_withlabels.mat, split_zhou_StanfordCars.json
    sun397/SUN397/<l>/<class>[/<sub>]/sun_<id>.jpg, ClassName.txt, {Training,Testing}_01.txt, split_zhou_SUN397.json
    ucf101/UCF-101-midframes/<Renamed_Action>/v_<Action>_g<gg>_c01.jpg,
        ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt, split_zhou_UCF101.json

Four classes each, with the real datasets' naming quirks (capitalised and lower-case pet breeds,
a two-level SUN397 class, a CamelCase UCF action, a car model whose year moves to the front, EuroSAT
folders CoOp renames), so the readers' class names are exercised. Every class has its own shape and
colour. The ``split_zhou_*.json`` files are written here, independently of croft's split builder
(per class, in image order: the first round(0.2·n) train(+val) images to val; or 50/20/30), with
the sizes CoOp's builder gives, so a test can tell a read split from a rebuilt one. Each image comes
from a generator seeded by (seed, dataset, class, index); the ``.mat`` files get a fixed header
instead of scipy's creation date: a rerun writes the same bytes.
"""
import io
import json
import os

import numpy as np

from .render import _fresh_dir, _render_id, _rng, _save

# The trainval-style datasets: train(+val) and test images per class; val = round(0.2 * TRAINVAL).
TRAINVAL, TEST = 5, 3
# The 50/20/30 datasets (Flowers102, EuroSAT): images per class and the split sizes CoOp's rule gives.
PER_CLASS, RATIO_SIZES = 10, (5, 2, 3)
# FGVCAircraft's own train/val/test lists, per class.
FGVC_SIZES = (4, 2, 2)

SHAPES = ("circle", "square", "triangle", "plus", "star5", "ring", "crescent", "hexagon")
COLOURS = ((230, 60, 40), (40, 120, 230), (240, 200, 30), (60, 180, 80), (160, 60, 200), (30, 200, 200),
           (240, 130, 20), (120, 70, 30))

PETS = (("Abyssinian", 1), ("american_bulldog", 2), ("Bengal", 1), ("yorkshire_terrier", 2))  # (image prefix, species)
FLOWERS = ("pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea")
# Flowers102 labels (from 1) of image_00001 ... in file order: the classes interleaved, as in the real file.
FLOWER_ORDER = tuple((3 * i) % len(FLOWERS) + 1 for i in range(PER_CLASS * len(FLOWERS)))
AIRCRAFT = ("707-320", "A320", "Cessna 172", "Spitfire")
EUROSAT = ("AnnualCrop", "Forest", "Highway", "SeaLake")
CARS = ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "BMW M3 Coupe 2012", "Tesla Model S Sedan 2012")
SUN = ("a/abbey", "a/apartment_building/outdoor", "b/bedroom", "s/shoe_shop")
UCF = ("ApplyEyeMakeup", "BalanceBeam", "PlayingPiano", "YoYo")
UCF_FOLDERS = ("Apply_Eye_Makeup", "Balance_Beam", "Playing_Piano", "Yo_Yo")
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by croft.testing.fewshot_trees (synthetic)"


def _image(dataset, label, index, seed, size, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shape, colour = SHAPES[label % len(SHAPES)], COLOURS[(label * 3) % len(COLOURS)]
    _save(_render_id("photo", shape, colour, size, _rng(seed, "fewshot", dataset, label, index)), path)


def _text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{line}\n" for line in lines)


def _json(path, data, indent=None):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)
        f.write("\n")


def _mat(path, variables):
    """``scipy.io.savemat`` with a fixed header text (scipy writes the creation time there)."""
    from scipy.io import savemat

    buffer = io.BytesIO()
    savemat(buffer, variables)
    data = buffer.getvalue()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(MAT_HEADER.ljust(116, b" ") + data[116:])


def _trainval_split(per_class, test):
    """``{"train", "val", "test"}``: of each class's train(+val) entries, the first round(0.2·n) to val."""
    split = {"train": [], "val": [], "test": list(test)}
    for entries in per_class:
        n_val = round(len(entries) * 0.2)
        split["val"] += entries[:n_val]
        split["train"] += entries[n_val:]
    return split


def _ratio_split(per_class):
    n_train, n_val, _ = RATIO_SIZES
    split = {"train": [], "val": [], "test": []}
    for entries in per_class:
        split["train"] += entries[:n_train]
        split["val"] += entries[n_train:n_train + n_val]
        split["test"] += entries[n_train + n_val:]
    return split


def write_oxford_pets(root, seed=0, image_size=64):
    """``root/oxford_pets``; class ids by lower-cased breed (as the real list), class names lower case."""
    folder = os.path.join(root, "oxford_pets")
    _fresh_dir(folder)
    order = sorted(range(len(PETS)), key=lambda i: PETS[i][0].lower())
    trainval_lines, test_lines, per_class, test = [], [], [], []
    for label, i in enumerate(order):
        prefix, species = PETS[i]
        breed_id = [p for p, s in sorted(PETS, key=lambda p: p[0].lower()) if s == species].index(prefix) + 1
        entries = []
        for n in range(1, TRAINVAL + TEST + 1):
            name = f"{prefix}_{n}"
            _image("oxford_pets", label, n, seed, image_size, os.path.join(folder, "images", name + ".jpg"))
            line = f"{name} {label + 1} {species} {breed_id}"
            entry = [name + ".jpg", label, prefix.lower()]
            if n <= TRAINVAL:
                trainval_lines.append(line)
                entries.append(entry)
            else:
                test_lines.append(line)
                test.append(entry)
        per_class.append(entries)
    _text(os.path.join(folder, "annotations", "trainval.txt"), trainval_lines)
    _text(os.path.join(folder, "annotations", "test.txt"), test_lines)
    _json(os.path.join(folder, "split_zhou_OxfordPets.json"), _trainval_split(per_class, test))
    return folder


def write_oxford_flowers(root, seed=0, image_size=64):
    """``root/oxford_flowers``: ``jpg/image_<i>.jpg`` with labels from ``imagelabels.mat`` (interleaved)."""
    folder = os.path.join(root, "oxford_flowers")
    _fresh_dir(folder)
    per_class = [[] for _ in FLOWERS]
    for i, label in enumerate(FLOWER_ORDER):
        name = f"image_{i + 1:05d}.jpg"
        _image("oxford_flowers", label - 1, i, seed, image_size, os.path.join(folder, "jpg", name))
        per_class[label - 1].append([name, label - 1, FLOWERS[label - 1]])
    _mat(os.path.join(folder, "imagelabels.mat"), {"labels": np.asarray([FLOWER_ORDER], dtype=np.uint8)})
    _json(os.path.join(folder, "cat_to_name.json"), {str(i + 1): name for i, name in enumerate(FLOWERS)})
    _json(os.path.join(folder, "split_zhou_OxfordFlowers.json"), _ratio_split(per_class))
    return folder


def write_fgvc_aircraft(root, seed=0, image_size=64):
    """``root/fgvc_aircraft``: ``images/<7-digit id>.jpg`` and the variant lists (no split_zhou file)."""
    folder = os.path.join(root, "fgvc_aircraft")
    _fresh_dir(folder)
    _text(os.path.join(folder, "variants.txt"), AIRCRAFT)
    lines = {"train": [], "val": [], "test": []}
    image_id = 1000000
    for label, variant in enumerate(AIRCRAFT):
        n = 0
        for key, count in zip(("train", "val", "test"), FGVC_SIZES):
            for _ in range(count):
                image_id += 7
                _image("fgvc_aircraft", label, n, seed, image_size, os.path.join(folder, "images", f"{image_id}.jpg"))
                lines[key].append(f"{image_id} {variant}")
                n += 1
    for key, key_lines in lines.items():
        _text(os.path.join(folder, f"images_variant_{key}.txt"), key_lines)
    return folder


def write_eurosat(root, seed=0, image_size=64):
    """``root/eurosat/2750/<Class>/``; the split file carries CoOp's renamed class names."""
    from ..data.datasets.coop_layouts import EUROSAT_NAMES

    folder = os.path.join(root, "eurosat")
    _fresh_dir(folder)
    per_class = []
    for label, name in enumerate(sorted(EUROSAT)):
        entries = []
        for n in range(1, PER_CLASS + 1):
            _image("eurosat", label, n, seed, image_size, os.path.join(folder, "2750", name, f"{name}_{n}.jpg"))
            entries.append([f"{name}/{name}_{n}.jpg", label, EUROSAT_NAMES[name]])
        per_class.append(entries)
    _json(os.path.join(folder, "split_zhou_EuroSAT.json"), _ratio_split(per_class))
    return folder


def _cars_annotations(labels):
    dtype = [(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    out = np.zeros((1, len(labels)), dtype=dtype)
    for i, label in enumerate(labels):
        box = [np.array([[v]], dtype=np.uint16) for v in (2, 3, 60, 61)]
        out[0, i] = (*box, np.array([[label + 1]], dtype=np.uint8), np.array([f"{i + 1:05d}.jpg"]))
    return out


def write_stanford_cars(root, seed=0, image_size=64):
    """``root/stanford_cars``: ``cars_{train,test}/<n>.jpg`` and the devkit's ``.mat`` annotations."""
    folder = os.path.join(root, "stanford_cars")
    _fresh_dir(folder)
    names = np.empty((1, len(CARS)), dtype=object)
    for i, name in enumerate(CARS):
        names[0, i] = np.array([name])
    _mat(os.path.join(folder, "devkit", "cars_meta.mat"), {"class_names": names})
    per_class, test = [[] for _ in CARS], []
    for sub, count, anno in (("cars_train", TRAINVAL, os.path.join(folder, "devkit", "cars_train_annos.mat")),
                             ("cars_test", TEST, os.path.join(folder, "cars_test_annos_withlabels.mat"))):
        labels = [label for n in range(count) for label in range(len(CARS))]
        for i, label in enumerate(labels):
            name = f"{i + 1:05d}.jpg"
            _image(f"stanford_cars/{sub}", label, i, seed, image_size, os.path.join(folder, sub, name))
            words = CARS[label].split(" ")
            entry = [f"{sub}/{name}", label, " ".join([words[-1]] + words[:-1])]
            (per_class[label] if sub == "cars_train" else test).append(entry)
        _mat(anno, {"annotations": _cars_annotations(labels)})
    _json(os.path.join(folder, "split_zhou_StanfordCars.json"), _trainval_split(per_class, test))
    return folder


def write_sun397(root, seed=0, image_size=64):
    """``root/sun397``: ``SUN397/<letter>/<class>/sun_<id>.jpg`` and the first partition's lists."""
    folder = os.path.join(root, "sun397")
    _fresh_dir(folder)
    _text(os.path.join(folder, "ClassName.txt"), [f"/{c}" for c in SUN])
    lines = {"train": [], "test": []}
    per_class, test = [], []
    for label, cls in enumerate(SUN):
        classname = " ".join(cls.split("/")[1:][::-1])
        entries = []
        for n in range(TRAINVAL + TEST):
            relpath = f"{cls}/sun_{''.join(chr(97 + (label * 7 + n * 3 + k) % 26) for k in range(16))}.jpg"
            _image("sun397", label, n, seed, image_size, os.path.join(folder, "SUN397", relpath))
            key = "train" if n < TRAINVAL else "test"
            lines[key].append(f"/{relpath}")
            (entries if key == "train" else test).append([relpath, label, classname])
        per_class.append(entries)
    _text(os.path.join(folder, "Training_01.txt"), lines["train"])
    _text(os.path.join(folder, "Testing_01.txt"), lines["test"])
    _json(os.path.join(folder, "split_zhou_SUN397.json"), _trainval_split(per_class, test))
    return folder


def write_ucf101(root, seed=0, image_size=64):
    """``root/ucf101``: middle frames ``UCF-101-midframes/<Renamed_Action>/`` and the first split's lists."""
    folder = os.path.join(root, "ucf101")
    _fresh_dir(folder)
    lists = os.path.join(folder, "ucfTrainTestlist")
    _text(os.path.join(lists, "classInd.txt"), [f"{i + 1} {action}" for i, action in enumerate(UCF)])
    lines = {"train": [], "test": []}
    per_class, test = [], []
    for label, (action, renamed) in enumerate(zip(UCF, UCF_FOLDERS)):
        entries = []
        for n in range(TRAINVAL + TEST):
            group = n - TRAINVAL + 1 if n >= TRAINVAL else n + 8  # test clips: groups 1-7, train clips: 8-25
            clip = f"v_{action}_g{group:02d}_c01"
            path = os.path.join(folder, "UCF-101-midframes", renamed, clip + ".jpg")
            _image("ucf101", label, n, seed, image_size, path)
            if n < TRAINVAL:
                lines["train"].append(f"{action}/{clip}.avi {label + 1}")
                entries.append([f"{renamed}/{clip}.jpg", label, renamed])
            else:
                lines["test"].append(f"{action}/{clip}.avi")
                test.append([f"{renamed}/{clip}.jpg", label, renamed])
        per_class.append(entries)
    _text(os.path.join(lists, "trainlist01.txt"), lines["train"])
    _text(os.path.join(lists, "testlist01.txt"), lines["test"])
    _json(os.path.join(folder, "split_zhou_UCF101.json"), _trainval_split(per_class, test))
    return folder


# (folder under root, writer)
FEWSHOT_WRITERS = (
    ("oxford_pets", write_oxford_pets),
    ("oxford_flowers", write_oxford_flowers),
    ("fgvc_aircraft", write_fgvc_aircraft),
    ("eurosat", write_eurosat),
    ("stanford_cars", write_stanford_cars),
    ("sun397", write_sun397),
    ("ucf101", write_ucf101),
)


def make_fewshot_trees(root, seed=0, image_size=64):
    """Write the seven trees of the module docstring under ``root``; returns ``{folder: path}``.

    Deterministic: the same arguments write the same bytes. A folder written here carries the
    ``.croft_synthetic`` marker and is replaced on a rewrite; any other existing folder is refused.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    os.makedirs(root, exist_ok=True)
    return {name: writer(root, seed, image_size) for name, writer in FEWSHOT_WRITERS}
