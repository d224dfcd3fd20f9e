"""CoOp's 11 few-shot datasets: readers on their native layouts, split files (read and rebuilt), the few-shot
picks and where they are kept, CoOp's pickles, base-to-new, Flowers102 as an open-set set, bad input, and one
tiny run per dataset config.

Every expected value below is written from the layout the synthetic trees hold and from CoOp's rules, not
from croft's readers. The comparison with CoOp's own readers is in tests/test_fewshot_coop.py.
"""
import json
import os
import pickle
import random
import shutil
import sys
import types
from collections import Counter

import pytest

from croft.config import ConfigError, get_cfg_default
from croft.data.datasets import DATASET_REGISTRY, build_dataset
from croft.data.datasets import coop_fewshot
from croft.data.datasets.coop_fewshot import fewshot_path
from croft.data.splits import DatasetError
from croft.testing.fewshot_trees import make_fewshot_trees

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = ("dtd", "food-101", "caltech-101", "imagenet")  # written by croft.testing.synthetic, read as they are

# name -> (folder, split file or None, class names as CoOp produces them, (train, val, test) sizes)
EXPECTED = {
    "OxfordPets": ("oxford_pets", "split_zhou_OxfordPets.json",
                   ["abyssinian", "american_bulldog", "bengal", "yorkshire_terrier"], (16, 4, 12)),
    "OxfordFlowers": ("oxford_flowers", "split_zhou_OxfordFlowers.json",
                      ["pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea"], (20, 8, 12)),
    "FGVCAircraft": ("fgvc_aircraft", None, ["707-320", "A320", "Cessna 172", "Spitfire"], (16, 8, 8)),
    "DescribableTextures": ("dtd", "split_zhou_DescribableTextures.json",
                            ["banded", "chequered", "dotted", "marbled", "zigzagged"], (20, 10, 10)),
    "EuroSAT": ("eurosat", "split_zhou_EuroSAT.json",
                ["Annual Crop Land", "Forest", "Highway or Road", "Sea or Lake"], (20, 8, 12)),
    "StanfordCars": ("stanford_cars", "split_zhou_StanfordCars.json",
                     ["2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 BMW M3 Coupe",
                      "2012 Tesla Model S Sedan"], (16, 4, 12)),
    "Food101": ("food-101", "split_zhou_Food101.json", ["apple_pie", "pizza", "ramen", "sushi", "waffles"],
                (20, 10, 10)),
    "SUN397": ("sun397", "split_zhou_SUN397.json",
               ["abbey", "outdoor apartment_building", "bedroom", "shoe_shop"], (16, 4, 12)),
    "Caltech101": ("caltech-101", "split_zhou_Caltech101.json",
                   ["face", "leopard", "motorbike", "accordion", "airplane", "anchor", "barrel", "car_side", "chair",
                    "dalmatian", "electric_guitar", "elephant"], (48, 24, 24)),
    "UCF101": ("ucf101", "split_zhou_UCF101.json", ["Apply_Eye_Makeup", "Balance_Beam", "Playing_Piano", "Yo_Yo"],
               (16, 4, 12)),
    "ImageNet": ("imagenet", None, ["tench", "brambling", "American bullfrog", "Chihuahua", "tabby cat",
                                    "African bush elephant", "airliner", "electric guitar", "garbage truck",
                                    "orange"], (60, 0, 60)),
}
# The image folder each split file's paths are relative to.
BASE = {"OxfordPets": "images", "OxfordFlowers": "jpg", "DescribableTextures": "images", "EuroSAT": "2750",
        "StanfordCars": "", "Food101": "images", "SUN397": "SUN397", "Caltech101": "101_ObjectCategories",
        "UCF101": "UCF-101-midframes"}
CONFIGS = {"OxfordPets": "oxford_pets", "OxfordFlowers": "oxford_flowers", "FGVCAircraft": "fgvc_aircraft",
           "DescribableTextures": "dtd", "EuroSAT": "eurosat", "StanfordCars": "stanford_cars", "Food101": "food101",
           "SUN397": "sun397", "Caltech101": "caltech101", "UCF101": "ucf101", "ImageNet": "imagenet"}
BUILT = [name for name, (_, split, _, _) in EXPECTED.items() if split]  # CoOp builds these splits when absent


@pytest.fixture(scope="module")
def fewshot_root(synthetic_root, tmp_path_factory):
    """All 11 datasets: the seven few-shot trees plus copies of the shared synthetic ones (the readers write
    ``split_fewshot/`` into a dataset folder, so the session's read-only tree is copied, not used)."""
    root = tmp_path_factory.mktemp("fewshot_data")
    make_fewshot_trees(str(root))
    for name in SHARED:
        shutil.copytree(os.path.join(synthetic_root, name), os.path.join(str(root), name))
    return str(root)


def make_cfg(root, name, **keys):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.SEED = 1
    for key, value in keys.items():
        *path, leaf = key.split("__")
        node = cfg
        for part in path:
            node = node[part]
        node[leaf] = value
    return cfg


def build(root, name, **keys):
    return build_dataset(make_cfg(root, name, **keys))


def copy_of(fewshot_root, tmp_path, *names):
    for name in names:
        folder = EXPECTED[name][0] if name in EXPECTED else name
        shutil.copytree(os.path.join(fewshot_root, folder), os.path.join(str(tmp_path), folder),
                        ignore=shutil.ignore_patterns("split_fewshot"))
    return str(tmp_path)


def rel(items, base):
    return [[os.path.relpath(d.impath, base).replace(os.sep, "/"), d.label, d.classname] for d in items]


def lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


# ------------------------------------------------------------------ each reader on its tree

@pytest.mark.parametrize("name", list(EXPECTED))
def test_reader_reads_the_tree_it_was_given(fewshot_root, name):
    folder, split_file, classnames, sizes = EXPECTED[name]
    ds = build(fewshot_root, name)
    assert DATASET_REGISTRY.get(name).NAME == name
    assert ds.classnames == classnames
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == sizes
    assert ds.setup == "custom" and ds.test_sets == {"test": ds.test} and ds.ood == {}
    for items in (ds.train_x, ds.val, ds.test):
        assert all(ds.classnames[d.label] == d.classname and os.path.isfile(d.impath) for d in items)
    dataset_dir = os.path.join(fewshot_root, folder)
    if split_file:  # the file's lists, in its order
        with open(os.path.join(dataset_dir, split_file)) as f:
            split = json.load(f)
        base = os.path.join(dataset_dir, BASE[name])
        assert rel(ds.train_x, base) == split["train"] and rel(ds.val, base) == split["val"]
        assert rel(ds.test, base) == split["test"]
    elif name == "FGVCAircraft":  # its own lists are the split
        for key, items in (("train", ds.train_x), ("val", ds.val), ("test", ds.test)):
            listed = [line.split(" ", 1) for line in lines(os.path.join(dataset_dir, f"images_variant_{key}.txt"))]
            assert [(os.path.basename(d.impath), d.classname) for d in items] == [(i + ".jpg", v) for i, v in listed]
    else:  # ImageNet: every train image; ImageNet-val is the test set; labels = sorted train folders
        wnids = sorted(os.listdir(os.path.join(dataset_dir, "images", "train")))
        names = dict(line.split(" ", 1) for line in lines(os.path.join(dataset_dir, "classnames.txt")))
        assert ds.classnames == [names[w] for w in wnids]
        for sub, items in (("train", ds.train_x), ("val", ds.test)):
            expected = [(f"{sub}/{w}/{f}", i) for i, w in enumerate(wnids)
                        for f in sorted(os.listdir(os.path.join(dataset_dir, "images", sub, w)))]
            assert [(p, label) for p, label, _ in rel(items, os.path.join(dataset_dir, "images"))] == expected


@pytest.mark.parametrize("name", BUILT)
def test_missing_split_is_built_as_coop_does_and_written(fewshot_root, tmp_path, name):
    folder, split_file, classnames, sizes = EXPECTED[name]
    roots = [copy_of(fewshot_root, tmp_path / run, name) for run in ("a", "b")]
    for root in roots:
        os.remove(os.path.join(root, folder, split_file))
    ds = build(roots[0], name)
    written = os.path.join(roots[0], folder, split_file)
    assert os.path.isfile(written)
    assert ds.classnames == classnames and (len(ds.train_x), len(ds.val), len(ds.test)) == sizes
    with open(written) as f:
        split = json.load(f)
    base = os.path.join(roots[0], folder, BASE[name])
    assert rel(ds.train_x, base) == split["train"] and rel(ds.test, base) == split["test"]
    # CoOp's fractions per class: train+val (trainval lists) or all images (50/20/30), split without overlap
    parts = {key: Counter(e[1] for e in split[key]) for key in ("train", "val", "test")}
    everything = [e[0] for key in ("train", "val", "test") for e in split[key]]
    assert len(everything) == len(set(everything))
    for label in range(len(classnames)):
        n_train, n_val, n_test = (parts[key][label] for key in ("train", "val", "test"))
        if name in ("OxfordPets", "StanfordCars", "SUN397", "UCF101"):
            n = n_train + n_val
            assert (n_val, n_train) == (round(0.2 * n), n - round(0.2 * n))
        else:
            n = n_train + n_val + n_test
            assert (n_train, n_val) == (round(0.5 * n), round(0.2 * n))
    # the same file in another folder and process state: built from sorted listings and per-class generators
    random.seed(12345)
    build(roots[1], name)
    with open(os.path.join(roots[1], folder, split_file), "rb") as f, open(written, "rb") as g:
        assert f.read() == g.read()
    # the next run reads the file: same lists
    again = build(roots[0], name)
    assert rel(again.train_x, base) == rel(ds.train_x, base) and rel(again.val, base) == rel(ds.val, base)


# ------------------------------------------------------------------ few-shot picks and their JSON

def dassl_rule(entries, shots, rng):
    """Dassl's generate_fewshot_dataset (repeat=False), written out: label groups in first-appearance order."""
    groups = {}
    for entry in entries:
        groups.setdefault(entry[1], []).append(entry)
    out = []
    for items in groups.values():
        out += rng.sample(items, shots) if len(items) >= shots else items
    return out


@pytest.mark.parametrize("name,shots,seed", [("OxfordPets", 1, 1), ("OxfordPets", 2, 3), ("StanfordCars", 4, 2),
                                             ("DescribableTextures", 8, 1), ("FGVCAircraft", 3, 2)])
def test_fewshot_picks_follow_dassls_rule_and_are_kept_as_json(fewshot_root, tmp_path, name, shots, seed):
    root = copy_of(fewshot_root, tmp_path, name)
    full = build(root, name)
    base = os.path.join(root, EXPECTED[name][0], BASE.get(name, "images"))
    train_all, val_all = rel(full.train_x, base), rel(full.val, base)
    random.seed(seed)  # what Dassl's set_random_seed(SEED) does before CoOp builds the dataset
    expected_train = dassl_rule(train_all, shots, random)
    expected_val = dassl_rule(val_all, min(shots, 4), random)
    random.seed(999)  # croft draws from its own generator: the global state does not matter
    ds = build(root, name, DATASET__NUM_SHOTS=shots, SEED=seed)
    assert rel(ds.train_x, base) == expected_train and rel(ds.val, base) == expected_val
    assert ds.train_full == ds.train_x
    path = fewshot_path(os.path.join(root, EXPECTED[name][0]), shots, seed, "json")
    with open(path) as f:
        kept = json.load(f)
    assert kept["train"] == expected_train and kept["val"] == expected_val
    assert (kept["num_shots"], kept["seed"]) == (shots, seed)
    # read back, not drawn again: a kept subset that differs from the rule is what the run uses
    kept["train"] = kept["train"][1:]
    with open(path, "w") as f:
        json.dump(kept, f)
    assert rel(build(root, name, DATASET__NUM_SHOTS=shots, SEED=seed).train_x, base) == expected_train[1:]


def test_kept_subsets_of_another_split_are_refused(fewshot_root, tmp_path):
    root = copy_of(fewshot_root, tmp_path, "OxfordPets")
    build(root, "OxfordPets", DATASET__NUM_SHOTS=2)
    split_path = os.path.join(root, "oxford_pets", "split_zhou_OxfordPets.json")
    with open(split_path) as f:
        split = json.load(f)
    split["train"] = split["train"][::-1]
    with open(split_path, "w") as f:
        json.dump(split, f)
    kept = fewshot_path(os.path.join(root, "oxford_pets"), 2, 1, "json")
    with pytest.raises(DatasetError, match=f"{kept} was drawn from another version of {split_path}.*delete it"):
        build(root, "OxfordPets", DATASET__NUM_SHOTS=2)
    with open(kept, "w") as f:
        f.write("{not json")
    with pytest.raises(DatasetError, match=f"{kept}: not a valid JSON file"):
        build(root, "OxfordPets", DATASET__NUM_SHOTS=2)


def test_unwritable_folder_is_a_warning_and_the_picks_stay(fewshot_root, tmp_path, monkeypatch):
    import logging

    root = copy_of(fewshot_root, tmp_path, "OxfordPets")
    expected = rel(build(copy_of(fewshot_root, tmp_path / "other", "OxfordPets"), "OxfordPets",
                         DATASET__NUM_SHOTS=2).train_x, os.path.join(str(tmp_path / "other"), "oxford_pets", "images"))

    def refuse(path, text):
        raise PermissionError(f"[Errno 13] Permission denied: '{path}'")

    monkeypatch.setattr(coop_fewshot, "atomic_write_text", refuse)
    records = []
    handler = logging.Handler()
    handler.emit = records.append  # croft's logging setup may stop propagation to pytest's caplog
    logger = logging.getLogger(coop_fewshot.__name__)
    logger.addHandler(handler)
    try:
        ds = build(root, "OxfordPets", DATASET__NUM_SHOTS=2)
    finally:
        logger.removeHandler(handler)
    assert rel(ds.train_x, os.path.join(root, "oxford_pets", "images")) == expected
    assert not os.path.exists(fewshot_path(os.path.join(root, "oxford_pets"), 2, 1, "json"))
    assert any("could not keep the few-shot subsets" in r.getMessage() for r in records)


def test_more_shots_than_a_class_has_takes_all_of_it(fewshot_root, tmp_path):
    root = copy_of(fewshot_root, tmp_path, "OxfordPets")
    ds = build(root, "OxfordPets", DATASET__NUM_SHOTS=16)
    full = build(root, "OxfordPets")
    assert Counter(d.label for d in ds.train_x) == Counter(d.label for d in full.train_x) == {0: 4, 1: 4, 2: 4, 3: 4}
    assert Counter(d.label for d in ds.val) == {0: 1, 1: 1, 2: 1, 3: 1}  # min(16, 4) capped by what val has


# ------------------------------------------------------------------ CoOp's pickles

class FakeDatum:
    """Pickles as Dassl's Datum does (module dassl.data.datasets.base_dataset, four private fields)."""

    def __init__(self, impath, label, classname):
        self._impath, self._label, self._domain, self._classname = impath, label, 0, classname


def dassl_pickle(path, data):
    module = types.ModuleType("dassl.data.datasets.base_dataset")
    FakeDatum.__module__, FakeDatum.__qualname__ = module.__name__, "Datum"
    module.Datum = FakeDatum
    saved = {name: sys.modules.get(name) for name in ("dassl", "dassl.data", "dassl.data.datasets", module.__name__)}
    for name in saved:
        sys.modules[name] = module if name == module.__name__ else types.ModuleType(name)
    try:
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def test_coop_pickle_from_another_machine_is_read_and_kept_as_json(fewshot_root, tmp_path):
    root = copy_of(fewshot_root, tmp_path, "OxfordPets")
    dataset_dir = os.path.join(root, "oxford_pets")
    with open(os.path.join(dataset_dir, "split_zhou_OxfordPets.json")) as f:
        split = json.load(f)
    train = [split["train"][i] for i in (3, 0, 5, 9, 12, 14, 1, 7)]  # 2 per class, not the draw's picks
    val = split["val"][:4]
    elsewhere = "/home/someone/DATA/oxford_pets/images/"
    os.makedirs(os.path.join(dataset_dir, "split_fewshot"))
    dassl_pickle(fewshot_path(dataset_dir, 2, 1, "pkl"),
                 {"train": [FakeDatum(elsewhere + p, label, c) for p, label, c in train],
                  "val": [FakeDatum(elsewhere + p, label, c) for p, label, c in val]})
    ds = build(root, "OxfordPets", DATASET__NUM_SHOTS=2)
    base = os.path.join(dataset_dir, "images")
    assert rel(ds.train_x, base) == train and rel(ds.val, base) == val
    with open(fewshot_path(dataset_dir, 2, 1, "json")) as f:
        kept = json.load(f)
    assert kept["train"] == train and kept["drawn_by"] == "CoOp (shot_2-seed_1.pkl)"


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("content,message", [
    ("exploit", r"not a CoOp few-shot file \(it references (posix|nt)\.system\)"),
    ("list", r"not a CoOp few-shot file; expected a dict \{'train': \[Datum"),
    ("bytes", r"not a CoOp few-shot file \("),
    ("other_image", r"image /elsewhere/not_in_split\.jpg \(entry 0 of 'train'\) is not in the 'train' list of"),
])
def test_a_pickle_that_is_not_a_coop_fewshot_file_is_refused(fewshot_root, tmp_path, content, message):
    root = copy_of(fewshot_root, tmp_path, "OxfordPets")
    dataset_dir = os.path.join(root, "oxford_pets")
    os.makedirs(os.path.join(dataset_dir, "split_fewshot"))
    path = fewshot_path(dataset_dir, 2, 1, "pkl")
    marker = tmp_path / "ran"
    if content == "exploit":
        with open(path, "wb") as f:
            pickle.dump({"train": [Exploit(marker)], "val": []}, f)
    elif content == "list":
        with open(path, "wb") as f:
            pickle.dump([1, 2, 3], f)
    elif content == "bytes":
        with open(path, "wb") as f:
            f.write(b"this is not a pickle")
    else:
        dassl_pickle(path, {"train": [FakeDatum("/elsewhere/not_in_split.jpg", 0, "abyssinian")], "val": []})
    with pytest.raises(DatasetError, match=f"{path}: .*{message}" if content != "other_image" else message):
        build(root, "OxfordPets", DATASET__NUM_SHOTS=2)
    assert not marker.exists()  # nothing in the file ran
    assert not os.path.exists(fewshot_path(dataset_dir, 2, 1, "json"))


# ------------------------------------------------------------------ base-to-new (CoCoOp)

@pytest.mark.parametrize("name", ["OxfordPets", "Caltech101"])
def test_base_to_new_after_the_fewshot_draw(fewshot_root, tmp_path, name):
    root = copy_of(fewshot_root, tmp_path, name)
    full = build(root, name, DATASET__NUM_SHOTS=2)
    c = len(full.classnames)
    m = -(-c // 2)
    for subsample, kept in (("base", range(m)), ("new", range(m, c))):
        ds = build(root, name, DATASET__NUM_SHOTS=2, DATASET__SUBSAMPLE_CLASSES=subsample)
        assert ds.classnames == [full.classnames[k] for k in kept]
        offset = kept[0]
        for part in ("train_x", "val", "test"):  # the same picks, restricted and relabelled from 0
            expected = [(d.impath, d.label - offset) for d in getattr(full, part) if d.label in kept]
            assert [(d.impath, d.label) for d in getattr(ds, part)] == expected, part


# ------------------------------------------------------------------ the shared folders in the open-set role

def test_flowers102_is_an_open_set_set_with_or_without_its_split(fewshot_root, synthetic_root, tmp_path):
    root = copy_of(fewshot_root, tmp_path / "a", "OxfordFlowers")
    shutil.copytree(os.path.join(synthetic_root, "PACS"), os.path.join(root, "PACS"))
    cfg = make_cfg(root, "PACS", TEST_ENV="test_on_sketch.json", DATASET__OOD_PER_CLASS=3)
    from croft.config import merge_from_file

    merge_from_file(cfg, os.path.join(REPO, "configs", "datasets", "PACS_flowers.yaml"))
    ds = build_dataset(cfg)
    flowers = ds.ood["Flowers102"]
    assert Counter(d.classname for d in flowers) == {name: 3 for name in EXPECTED["OxfordFlowers"][2]}
    pool = {os.path.basename(d.impath) for d in build(root, "OxfordFlowers").train_x + build(root, "OxfordFlowers").test
            + build(root, "OxfordFlowers").val}
    assert {os.path.basename(d.impath) for d in flowers} <= pool
    # without the split file: the images of imagelabels.mat, nothing written
    os.remove(os.path.join(root, "oxford_flowers", "split_zhou_OxfordFlowers.json"))
    cfg.DATASET.OOD_PER_CLASS = -1
    ds = build_dataset(cfg)
    assert {os.path.basename(d.impath) for d in ds.ood["Flowers102"]} == pool
    assert not os.path.exists(os.path.join(root, "oxford_flowers", "split_zhou_OxfordFlowers.json"))


def test_dtd_as_id_dataset_cannot_be_its_own_open_set(fewshot_root):
    cfg = make_cfg(fewshot_root, "DescribableTextures", DATASET__OOD_SETS=["dtd"])
    with pytest.raises(ConfigError, match=r"DescribableTextures: DATASET\.OOD_SETS \['dtd'\] names DTD, the ID "
                                          r"dataset's own folder"):
        DATASET_REGISTRY.get("DescribableTextures").check_cfg(cfg)
    ds = build(fewshot_root, "OxfordPets", DATASET__OOD_SETS=["DTD"], DATASET__OOD_PER_CLASS=2)
    assert Counter(d.classname for d in ds.ood["DTD"]) == {c: 2 for c in EXPECTED["DescribableTextures"][2]}


# ------------------------------------------------------------------ bad input: one line naming the file

def test_bad_input_names_the_file_and_what_was_expected(fewshot_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"OxfordPets: dataset folder not found: {empty}/oxford_pets "
                                                r"\(expected CoOp's layout.*datasets/README\.md\)"):
        build(empty, "OxfordPets")
    root = copy_of(fewshot_root, tmp_path / "noanno", "OxfordPets")
    os.remove(os.path.join(root, "oxford_pets", "split_zhou_OxfordPets.json"))
    shutil.rmtree(os.path.join(root, "oxford_pets", "annotations"))
    with pytest.raises(FileNotFoundError, match=r"OxfordPets: annotation list not found: .*oxford_pets/annotations/"
                                                r"trainval\.txt"):
        build(root, "OxfordPets")
    root = copy_of(fewshot_root, tmp_path / "noimage", "SUN397")
    os.remove(os.path.join(root, "sun397", "SUN397", "b", "bedroom", os.listdir(
        os.path.join(root, "sun397", "SUN397", "b", "bedroom"))[0]))
    with pytest.raises(FileNotFoundError, match=r"SUN397: image not found: .*sun397/SUN397/b/bedroom/sun_\w+\.jpg "
                                                r"\(listed in .*split_zhou_SUN397\.json, entry \d+ of '\w+'\)"):
        build(root, "SUN397")
    root = copy_of(fewshot_root, tmp_path / "small", "Food101")
    os.remove(os.path.join(root, "food-101", "split_zhou_Food101.json"))
    pizza = os.path.join(root, "food-101", "images", "pizza")
    for image in sorted(os.listdir(pizza))[3:]:
        os.remove(os.path.join(pizza, image))
    with pytest.raises(DatasetError, match=r"Food101: class 'pizza' has 3 image\(s\) in class folder .*; the "
                                           r"50%/20%/30% train/val/test split needs at least 4 per class"):
        build(root, "Food101")


@pytest.mark.parametrize("keys,message", [
    (dict(DATASET__NUM_SHOTS=4, SEED=-1), r"OxfordPets: DATASET\.NUM_SHOTS 4 draws the few-shot subsets from SEED, "
                                          r"which is -1; pass --seed"),
    (dict(TEST_ENV="test_on_sketch.json"), r"OxfordPets: 'TEST_ENV' has no effect on this dataset"),
    (dict(DATASET__VAL_SHOTS=16), r"'DATASET\.VAL_SHOTS' has no effect.*min\(NUM_SHOTS, 4\)"),
    (dict(DATASET__FEWSHOT_SAMPLER="reference_balance"), r"'DATASET\.FEWSHOT_SAMPLER' has no effect"),
])
def test_config_errors_before_any_file_is_read(keys, message):
    cfg = make_cfg("/nonexistent", "OxfordPets", **keys)
    with pytest.raises(ConfigError, match=message):
        DATASET_REGISTRY.get("OxfordPets").check_cfg(cfg)


# ------------------------------------------------------------------ one tiny run per dataset config

FAST = ["DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False",
        "OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "64"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_one_tiny_run_per_dataset_config(fewshot_root, tmp_path, name):
    from croft.train import main

    trainer = "CoOp" if list(EXPECTED).index(name) % 2 else "CRoFT"
    shots = "8" if name == "OxfordPets" else "1"
    out = tmp_path / "run"
    rc = main(["--root", fewshot_root, "--seed", "1", "--trainer", trainer, "--backbone", "tiny",
               "--dataset-config-file", os.path.join(REPO, "configs", "datasets", f"{CONFIGS[name]}.yaml"),
               "--config-file", os.path.join(REPO, "configs", "trainers", trainer, "rn50_ep30.yaml"),
               "--output-dir", str(out), "DATASET.NUM_SHOTS", shots, *FAST])
    assert rc == 0
    with open(out / "results.json") as f:
        results = json.load(f)
    classnames, sizes = EXPECTED[name][2], EXPECTED[name][3]
    assert results["dataset"] == name and results["trainer"] == trainer and results["setup"] == "custom"
    assert 0.0 <= results["closed_set"]["test_accuracy"] <= 100.0
    used = results["shots_used"]
    assert sorted(used) == sorted(classnames)
    with open(out / "config.yaml") as f:
        assert DATASET_REGISTRY.get(name).LAYOUT.template in f.read()  # CoOp's prompt for the dataset
    if name == "OxfordPets":  # K = 8 > the 4 train images of each class: all of them, and one warning line
        assert set(used.values()) == {4}
        with open(out / "log.txt") as f:
            assert "warning: DATASET.NUM_SHOTS 8: 4 class(es) have fewer training images" in f.read()
    else:
        assert set(used.values()) == {1}
    assert (results["closed_set"]["val_accuracy"] is None) == (sizes[1] == 0)


def test_base_to_new_evaluates_the_base_model_on_the_new_classes(fewshot_root, tmp_path, capsys):
    """CoCoOp's protocol: train on base, ``--eval-only DATASET.SUBSAMPLE_CLASSES new`` on the same model; a
    trainer whose learnt state depends on the class list (CoOp with class-specific contexts) is refused."""
    from croft.train import main

    def run(out, subsample, *flags, csc="False"):
        return main(["--root", fewshot_root, "--seed", "1", "--trainer", "CoOp", "--backbone", "tiny",
                     "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "oxford_pets.yaml"),
                     "--config-file", os.path.join(REPO, "configs", "trainers", "CoOp", "rn50_ep30.yaml"),
                     "--output-dir", str(tmp_path / out), *flags, "DATASET.NUM_SHOTS", "2", *FAST,
                     "DATASET.SUBSAMPLE_CLASSES", subsample, "TRAINER.COOP.CSC", csc])

    assert run("base", "base") == 0
    capsys.readouterr()
    assert run("new", "new", "--eval-only", "--model-dir", str(tmp_path / "base")) == 0
    captured = capsys.readouterr()
    assert "evaluated with DATASET.SUBSAMPLE_CLASSES 'base' -> 'new'" in captured.out + captured.err
    results = {}
    for name in ("base", "new"):
        with open(tmp_path / name / "results.json") as f:
            results[name] = json.load(f)
    assert sorted(results["base"]["shots_used"]) == ["abyssinian", "american_bulldog"]
    assert sorted(results["new"]["shots_used"]) == ["bengal", "yorkshire_terrier"]
    assert run("csc", "base", csc="True") == 0
    capsys.readouterr()
    assert run("csc_new", "new", "--eval-only", "--model-dir", str(tmp_path / "csc"), csc="True") != 0
    message = capsys.readouterr().err
    assert "DATASET.SUBSAMPLE_CLASSES 'base' -> 'new'" in message
    assert "a trainer whose learnt state depends on the class list cannot be evaluated on other classes" in message
    assert not (tmp_path / "csc_new" / "results.json").exists()


def test_large_datasets_are_read_and_checked_once_per_process(fewshot_root, tmp_path, monkeypatch):
    """An in-process sweep over SUN397 or ImageNet reads the split (or lists the folders) and checks its images
    once; a changed split file is read again."""
    from croft.data.datasets import coop_imagenet, coop_split

    root = copy_of(fewshot_root, tmp_path, "SUN397", "ImageNet")
    calls = Counter()

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(coop_split, "read_split_json", counting("read", coop_split.read_split_json))
    monkeypatch.setattr(coop_split, "check_images", counting("check", coop_split.check_images))
    monkeypatch.setattr(coop_imagenet, "_images", counting("list", coop_imagenet._images))
    for shots in (-1, 1, 2):
        build(root, "SUN397", DATASET__NUM_SHOTS=shots)
        build(root, "ImageNet", DATASET__NUM_SHOTS=shots)
    assert calls == {"read": 1, "check": 1, "list": 20}  # ImageNet: 10 train + 10 val folders, listed once
    split_path = os.path.join(root, "sun397", "split_zhou_SUN397.json")
    with open(split_path) as f:
        split = json.load(f)
    split["test"] = split["test"][1:]
    with open(split_path, "w") as f:
        json.dump(split, f)
    assert len(build(root, "SUN397").test) == EXPECTED["SUN397"][3][2] - 1
    assert (calls["read"], calls["check"]) == (2, 2)
