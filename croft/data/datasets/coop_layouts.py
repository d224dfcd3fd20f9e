"""Where CoOp's classification datasets live under ``DATASET.ROOT``, and the readers of their raw files.

One :class:`Layout` per dataset, with CoOp's folder names (datasets/README.md)::

    oxford_pets/images/<image>            annotations/{trainval,test}.txt     split_zhou_OxfordPets.json
    oxford_flowers/jpg/<image>            imagelabels.mat, cat_to_name.json   split_zhou_OxfordFlowers.json
    fgvc_aircraft/images/<id>.jpg         variants.txt, images_variant_{train,val,test}.txt (the split)
    dtd/images/<class>/<image>                                                split_zhou_DescribableTextures.json
    eurosat/2750/<class>/<image>                                              split_zhou_EuroSAT.json
    stanford_cars/cars_{train,test}/<image>  devkit/cars_{meta,train_annos}.mat, cars_test_annos_withlabels.mat,
                                                                              split_zhou_StanfordCars.json
    food-101/images/<class>/<image>                                           split_zhou_Food101.json
    sun397/SUN397/<letter>/<class...>/<image>  ClassName.txt, {Training,Testing}_01.txt  split_zhou_SUN397.json
    caltech-101/101_ObjectCategories/<folder>/<image>                         split_zhou_Caltech101.json
    ucf101/UCF-101-midframes/<Action>/<image>  ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt
                                                                              split_zhou_UCF101.json
    imagenet/images/{train,val}/<wnid>/<image>  classnames.txt

The same layout serves both roles of a folder: the classification dataset (croft.data.datasets.coop)
and the open-set set of Setup-II (croft.data.datasets.openset: DTD, Food101, Caltech101, Flowers102).
The readers here return ``(relpath, label, classname)`` entries with class names exactly as CoOp
builds them (they become the prompts); they never draw anything at random.
"""
import json
import os
import re
from dataclasses import dataclass, field

from ..splits import DatasetError, is_image_file, visible_entries


@dataclass(frozen=True)
class Layout:
    """One dataset's place under ``DATASET.ROOT`` (see the module docstring)."""

    #: CoOp's registered name (``DATASET.NAME``).
    name: str
    #: The dataset folder under ``DATASET.ROOT``.
    folder: str
    #: The image folder inside ``folder``.
    image_dir: str
    #: The split file inside ``folder`` ("" = none: the split comes from the dataset's own lists).
    split_file: str
    #: CoOp's prompt template for the dataset (configs/datasets/<name>.yaml sets it).
    template: str
    #: What split-file paths are relative to: "image_dir" or "folder" (StanfordCars).
    relative_to: str = "image_dir"
    #: Class folders CoOp skips, and the class names it gives to folders it renames.
    ignored: tuple = ()
    renamed: dict = field(default_factory=dict)

    def dataset_dir(self, root):
        return os.path.join(root, self.folder)

    def base_dir(self, root):
        """The folder split-file paths are relative to."""
        folder = self.dataset_dir(root)
        return os.path.join(folder, self.image_dir) if self.relative_to == "image_dir" else folder


EUROSAT_NAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}
CALTECH_IGNORED = ("BACKGROUND_Google", "Faces_easy")
CALTECH_RENAMED = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}

LAYOUTS = {layout.name: layout for layout in (
    Layout("OxfordPets", "oxford_pets", "images", "split_zhou_OxfordPets.json", "a photo of a {}, a type of pet."),
    Layout("OxfordFlowers", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
           "a photo of a {}, a type of flower."),
    Layout("FGVCAircraft", "fgvc_aircraft", "images", "", "a photo of a {}, a type of aircraft."),
    Layout("DescribableTextures", "dtd", "images", "split_zhou_DescribableTextures.json", "{} texture."),
    Layout("EuroSAT", "eurosat", "2750", "split_zhou_EuroSAT.json", "a centered satellite photo of {}.",
           renamed=EUROSAT_NAMES),
    Layout("StanfordCars", "stanford_cars", "", "split_zhou_StanfordCars.json", "a photo of a {}.",
           relative_to="folder"),
    Layout("Food101", "food-101", "images", "split_zhou_Food101.json", "a photo of {}, a type of food."),
    Layout("SUN397", "sun397", "SUN397", "split_zhou_SUN397.json", "a photo of a {}."),
    Layout("Caltech101", "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json", "a photo of a {}.",
           ignored=CALTECH_IGNORED, renamed=CALTECH_RENAMED),
    Layout("UCF101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", "a photo of a person doing {}."),
    Layout("ImageNet", "imagenet", "images", "", "a photo of a {}."),
)}

README_HINT = "see datasets/README.md"


def _missing(path, what, layout):
    return FileNotFoundError(f"{layout.name}: {what} not found: {path} ({README_HINT})")


def _lines(path, what, layout):
    """``[(line number, stripped line)]`` of the non-empty lines of an annotation file."""
    if not os.path.isfile(path):
        raise _missing(path, what, layout)
    with open(path, "r", encoding="utf-8") as f:
        return [(i, line.strip()) for i, line in enumerate(f, 1) if line.strip()]


def _bad_line(path, lineno, line, expected):
    return DatasetError(f"{path}, line {lineno}: expected {expected}, got {line!r}")


# ------------------------------------------------------------------ class folders (DTD, EuroSAT, Food101, Caltech101)

def scan_class_folders(layout, image_dir):
    """``([(folder, classname, [image path, ...]), ...], [skipped path, ...])``.

    The sorted visible class folders of ``image_dir`` less ``layout.ignored``, each with its sorted
    image files (label = position in the list); class names follow ``layout.renamed``. Entries
    that are not image files are returned apart, for the caller to report.
    """
    folders = [f for f in visible_entries(image_dir)
               if os.path.isdir(os.path.join(image_dir, f)) and f not in layout.ignored]
    classes, skipped = [], []
    for folder in folders:
        class_dir = os.path.join(image_dir, folder)
        paths = []
        for name in visible_entries(class_dir):
            path = os.path.join(class_dir, name)
            (paths if is_image_file(name) and os.path.isfile(path) else skipped).append(path)
        classes.append((folder, layout.renamed.get(folder, folder), paths))
    return classes, skipped


# ------------------------------------------------------------------ annotation lists

def read_pets_list(layout, dataset_dir, list_file):
    """OxfordPets ``annotations/<list_file>``: ``<image> <class id> <species> <breed id>`` lines; the
    class name is the lower-cased image name without its trailing ``_<n>``."""
    path = os.path.join(dataset_dir, "annotations", list_file)
    items = []
    for lineno, line in _lines(path, "annotation list", layout):
        parts = line.split(" ")
        if len(parts) != 4 or not parts[1].isdigit() or int(parts[1]) < 1 or "_" not in parts[0]:
            raise _bad_line(path, lineno, line, "'<breed>_<n> <class id from 1> <species> <breed id>'")
        breed = "_".join(parts[0].split("_")[:-1]).lower()
        items.append((parts[0] + ".jpg", int(parts[1]) - 1, breed))
    return items


def read_flowers(layout, dataset_dir):
    """Flowers102: ``imagelabels.mat`` (label from 1 of ``image_<i:05d>.jpg``, i from 1) and
    ``cat_to_name.json``. Returns ``{label: (classname, [relpath, ...])}`` in first-appearance order."""
    label_file = os.path.join(dataset_dir, "imagelabels.mat")
    names_file = os.path.join(dataset_dir, "cat_to_name.json")
    if not os.path.isfile(label_file):
        raise _missing(label_file, "label file (imagelabels.mat)", layout)
    if not os.path.isfile(names_file):
        raise _missing(names_file, "class-name file (cat_to_name.json)", layout)
    from scipy.io import loadmat

    try:
        labels = loadmat(label_file)["labels"].reshape(-1)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DatasetError(f"{label_file}: expected a MATLAB file with a 'labels' array ({exc})") from None
    try:
        with open(names_file, "r", encoding="utf-8") as f:
            names = json.load(f)
    except ValueError as exc:
        raise DatasetError(f"{names_file}: not a valid JSON file ({exc})") from None
    groups = {}
    for i, label in enumerate(labels):
        label = int(label)
        if str(label) not in names:
            raise DatasetError(f"{names_file}: no name for class {label} (used by image {i + 1} in {label_file})")
        groups.setdefault(label - 1, (names[str(label)], []))[1].append(f"image_{i + 1:05d}.jpg")
    return groups


def read_fgvc(layout, dataset_dir, split):
    """FGVCAircraft: ``images_variant_<split>.txt`` lines ``<image id> <variant>`` over ``variants.txt``."""
    variants_file = os.path.join(dataset_dir, "variants.txt")
    classnames = [line for _, line in _lines(variants_file, "class list (variants.txt)", layout)]
    labels = {name: i for i, name in enumerate(classnames)}
    path = os.path.join(dataset_dir, f"images_variant_{split}.txt")
    items = []
    for lineno, line in _lines(path, f"{split} list", layout):
        parts = line.split(" ", 1)
        if len(parts) != 2:
            raise _bad_line(path, lineno, line, "'<image id> <variant>'")
        if parts[1] not in labels:
            raise DatasetError(f"{path}, line {lineno}: variant {parts[1]!r} is not in {variants_file}")
        items.append((parts[0] + ".jpg", labels[parts[1]], parts[1]))
    return items, classnames


def read_cars(layout, dataset_dir, image_subdir, anno_file, meta_file):
    """StanfordCars: a ``.mat`` annotation file (``fname``, ``class`` from 1) and ``cars_meta.mat``; the
    class name puts the year first ("AM General Hummer SUV 2000" -> "2000 AM General Hummer SUV")."""
    from scipy.io import loadmat

    for path, what in ((anno_file, "annotation file"), (meta_file, "class-name file (devkit/cars_meta.mat)")):
        if not os.path.isfile(path):
            raise _missing(path, what, layout)
    try:
        annotations = loadmat(anno_file)["annotations"][0]
        meta = loadmat(meta_file)["class_names"][0]
        items = []
        for entry in annotations:
            label = int(entry["class"][0, 0]) - 1
            words = str(meta[label][0]).split(" ")
            items.append((f"{image_subdir}/{entry['fname'][0]}", label, " ".join([words[-1]] + words[:-1])))
    except (ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        raise DatasetError(f"{anno_file} / {meta_file}: expected the Stanford Cars devkit's 'annotations' "
                           f"(fname, class) and 'class_names' arrays ({exc.__class__.__name__}: {exc})") from None
    return items


def read_sun_classes(layout, dataset_dir):
    """SUN397 ``ClassName.txt`` (``/a/abbey`` lines): ``{"a/abbey": label}``."""
    path = os.path.join(dataset_dir, "ClassName.txt")
    return {line[1:]: i for i, (_, line) in enumerate(_lines(path, "class list (ClassName.txt)", layout))}


def read_sun_list(layout, dataset_dir, text_file, labels):
    """SUN397 ``<text_file>`` (``/a/abbey/sun_x.jpg`` lines). The class name reverses the folder words
    below the letter: ``a/apartment_building/outdoor`` -> "outdoor apartment_building"."""
    path = os.path.join(dataset_dir, text_file)
    items = []
    for lineno, line in _lines(path, "image list", layout):
        relpath = line[1:]
        folder = os.path.dirname(relpath)
        if folder not in labels:
            raise DatasetError(f"{path}, line {lineno}: class folder {folder!r} is not in "
                               f"{os.path.join(dataset_dir, 'ClassName.txt')}")
        items.append((relpath, labels[folder], " ".join(folder.split("/")[1:][::-1])))
    return items


def read_ucf_classes(layout, dataset_dir):
    """UCF101 ``ucfTrainTestlist/classInd.txt`` (``1 ApplyEyeMakeup`` lines): ``{action: label}``."""
    path = os.path.join(dataset_dir, "ucfTrainTestlist", "classInd.txt")
    labels = {}
    for lineno, line in _lines(path, "class list (classInd.txt)", layout):
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0].isdigit():
            raise _bad_line(path, lineno, line, "'<class id from 1> <Action>'")
        labels[parts[1]] = int(parts[0]) - 1
    return labels


def ucf_classname(action):
    """``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup`` (CoOp's folder and class name of a UCF101 action)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


def read_ucf_list(layout, dataset_dir, text_file, labels):
    """UCF101 ``ucfTrainTestlist/<text_file>`` (``Action/v_Action_g01_c01.avi [label]`` lines); the
    image is the clip's middle frame ``<Renamed_Action>/v_..._c01.jpg``."""
    path = os.path.join(dataset_dir, "ucfTrainTestlist", text_file)
    items = []
    for lineno, line in _lines(path, "clip list", layout):
        clip = line.split(" ")[0]
        parts = clip.split("/")
        if len(parts) != 2 or not parts[1].endswith(".avi"):
            raise _bad_line(path, lineno, line, "'<Action>/<clip>.avi [class id]'")
        if parts[0] not in labels:
            raise DatasetError(f"{path}, line {lineno}: action {parts[0]!r} is not in classInd.txt")
        name = ucf_classname(parts[0])
        items.append((f"{name}/{parts[1][:-4]}.jpg", labels[parts[0]], name))
    return items
