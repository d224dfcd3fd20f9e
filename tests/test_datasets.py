"""PACS / VLCS / DomainFolder readers, open-set sets, split files, dataset YAMLs, and their errors."""
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from croft.config import get_cfg_default, merge_from_file
from croft.data.datasets import DATASET_REGISTRY, build_dataset
from croft.data.datasets.openset import canonical_ood_name, load_ood_set
from croft.data.splits import DatasetError, make_domain_splits, write_domain_splits
from croft.testing.synthetic import PACS_CLASSES, PACS_DOMAINS, VLCS_CLASSES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_CALTECH = {"accordion", "airplane", "anchor", "barrel", "car_side", "chair", "dalmatian", "electric_guitar",
               "elephant", "face", "leopard", "motorbike"}


def make_cfg(root, name="PACS", **keys):
    """A default config with DATASET.ROOT/NAME set; ``keys`` use ``__`` for dots (DATASET__NUM_SHOTS=3)."""
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    for key, value in keys.items():
        *path, leaf = key.split("__")
        node = cfg
        for part in path:
            node = node[part]
        node[leaf] = value
    return cfg


def build(root, name="PACS", seed=1, **keys):
    random.seed(seed)
    return build_dataset(make_cfg(root, name, **keys))


def copy_dataset(synthetic_root, tmp_path, *names):
    for name in names:
        shutil.copytree(os.path.join(synthetic_root, name), os.path.join(str(tmp_path), name))
    return str(tmp_path)


def remove_jsons(dataset_dir):
    for path in glob.glob(os.path.join(dataset_dir, "test_on_*.json")):
        os.remove(path)


def rel_items(items, base):
    return [(os.path.relpath(d.impath, base), d.label, d.domain, d.classname, d.domainname) for d in items]


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


# ------------------------------------------------------------------ PACS / VLCS / DomainFolder

def test_registered():
    assert {"PACS", "VLCS", "DomainFolder"} <= set(DATASET_REGISTRY.names())


def test_pacs_from_split_json(synthetic_root):
    ds = build(synthetic_root, TEST_ENV="test_on_sketch.json")
    assert ds.classnames == sorted(PACS_CLASSES) and ds.num_classes == 7
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (3 * 7 * 5, 3 * 7 * 1, 7 * 6)
    assert ds.split_source == os.path.join(synthetic_root, "PACS", "test_on_sketch.json")
    assert {(d.domain, d.domainname) for d in ds.test} == {(3, "sketch")}
    assert {(d.domain, d.domainname) for d in ds.train_x} == {(0, "art_painting"), (1, "cartoon"), (2, "photo")}
    for d in ds.train_x + ds.val + ds.test:
        assert os.path.isfile(d.impath)
        assert ds.classnames[d.label] == d.classname == os.path.basename(os.path.dirname(d.impath))
        assert f"/images/{d.domainname}/" in d.impath
    assert ds.source_domains == ["art_painting", "cartoon", "photo"] and ds.target_domains == ["sketch"]
    assert list(ds.test_sets) == ["sketch"] and ds.test_sets["sketch"] == ds.test
    assert ds.ood == {}


@pytest.mark.parametrize("keys", [
    {"TEST_ENV": "test_on_photo.json"},
    {"TEST_ENV": "test_on_photo"},
    {"DATASET__TARGET_DOMAINS": ("photo",)},
    {"DATASET__TARGET_DOMAINS": ("PHOTO",)},
    {"TEST_ENV": "test_on_photo.json", "DATASET__TARGET_DOMAINS": ("Photo",)},
])
def test_pacs_held_out_domain_from_test_env_or_target_domains(synthetic_root, keys):
    ds = build(synthetic_root, **keys)
    assert ds.target_domains == ["photo"] and {d.domain for d in ds.test} == {2}


def test_pacs_folder_layouts_give_the_json_split(synthetic_root, tmp_path):
    reference = build(synthetic_root, DATASET__TARGET_DOMAINS=("cartoon",))
    base = os.path.join(synthetic_root, "PACS", "images")
    expected = [rel_items(getattr(reference, key), base) for key in ("train_x", "val", "test")]

    # images/<domain>/<class> without split files: same split, built in memory.
    root = copy_dataset(synthetic_root, tmp_path / "a", "PACS")
    remove_jsons(os.path.join(root, "PACS"))
    ds = build(root, DATASET__TARGET_DOMAINS=("cartoon",))
    assert ds.split_source.startswith("folder layout")
    assert [rel_items(getattr(ds, k), os.path.join(root, "PACS", "images")) for k in ("train_x", "val", "test")] == expected

    # <domain>/<class> (no images/ level), PACS and DomainFolder readers.
    root = copy_dataset(synthetic_root, tmp_path / "b", "PACS")
    pacs = os.path.join(root, "PACS")
    remove_jsons(pacs)
    for domain in PACS_DOMAINS:
        shutil.move(os.path.join(pacs, "images", domain), os.path.join(pacs, domain))
    os.rmdir(os.path.join(pacs, "images"))
    ds = build(root, DATASET__TARGET_DOMAINS=("cartoon",))
    assert [rel_items(getattr(ds, k), pacs) for k in ("train_x", "val", "test")] == expected
    generic = build(pacs, "DomainFolder", DATASET__TARGET_DOMAINS=("cartoon",))
    assert [rel_items(getattr(generic, k), pacs) for k in ("train_x", "val", "test")] == expected
    assert generic.domains == list(PACS_DOMAINS)


def test_vlcs_domains_are_case_insensitive(synthetic_root):
    sets = []
    for keys in ({"DATASET__TARGET_DOMAINS": ("CALTECH",)}, {"DATASET__TARGET_DOMAINS": ("caltech",)},
                 {"TEST_ENV": "test_on_caltech.json"}, {"TEST_ENV": "test_on_CALTECH"}):
        ds = build(synthetic_root, "VLCS", **keys)
        sets.append([d.impath for d in ds.test])
        assert ds.classnames == sorted(VLCS_CLASSES)
        assert ds.target_domains == ["caltech"] and ds.source_domains == ["pascal", "labelme", "sun"]
    assert all(s == sets[0] for s in sets) and len(sets[0]) == 5 * 6
    # Domain indices from the upper-case folders, in the reference's order (docs/method.md §7.3).
    folder_index = {"CALTECH": 0, "PASCAL": 1, "LABELME": 2, "SUN": 3}
    for d in ds.train_x + ds.val + ds.test:
        folder = d.impath.split(os.sep)[-3]
        assert d.domain == folder_index[folder] and d.domainname == folder.lower()
    assert {d.domain for d in ds.train_x} == {1, 2, 3}


def test_vlcs_domainbed_folder_names(synthetic_root, tmp_path):
    root = copy_dataset(synthetic_root, tmp_path, "VLCS")
    images = os.path.join(root, "VLCS", "images")
    remove_jsons(os.path.join(root, "VLCS"))
    for old, new in [("CALTECH", "Caltech101"), ("LABELME", "LabelMe"), ("PASCAL", "VOC2007"), ("SUN", "SUN09")]:
        os.rename(os.path.join(images, old), os.path.join(images, new))
    ds = build(root, "VLCS", DATASET__TARGET_DOMAINS=("pascal",))
    assert {(d.domain, d.domainname) for d in ds.test} == {(1, "pascal")} and len(ds.test) == 30
    assert {d.domainname for d in ds.train_x} == {"caltech", "labelme", "sun"}


def test_kshot_counts(synthetic_root):
    ds = build(synthetic_root, TEST_ENV="test_on_art_painting.json", DATASET__NUM_SHOTS=3)
    assert Counter(d.label for d in ds.train_x) == {label: 3 for label in range(7)}
    assert Counter(d.label for d in ds.val) == {label: 3 for label in range(7)}  # 3 val images per class
    ds = build(synthetic_root, TEST_ENV="test_on_art_painting.json", DATASET__NUM_SHOTS=4, DATASET__VAL_SHOTS=2)
    assert Counter(d.label for d in ds.train_x) == {label: 4 for label in range(7)}
    assert Counter(d.label for d in ds.val) == {label: 2 for label in range(7)}
    assert len(ds.test) == 42  # the whole held-out domain, never sampled
    ds = build(synthetic_root, "VLCS", TEST_ENV="test_on_sun.json", DATASET__NUM_SHOTS=50)  # more than there are
    assert Counter(d.label for d in ds.train_x) == {label: 15 for label in range(5)}


@pytest.mark.parametrize("shots,per_domain", [(6, 2), (7, 2), (9, 3)])
def test_reference_balance_sampler(synthetic_root, shots, per_domain):
    ds = build(synthetic_root, TEST_ENV="test_on_sketch.json", DATASET__NUM_SHOTS=shots,
               DATASET__FEWSHOT_SAMPLER="reference_balance")
    assert len(ds.train_x) == 7 * 3 * per_domain  # n_labels x n_domains x floor(K / n_domains)
    assert Counter(d.domain for d in ds.train_x) == {0: 7 * per_domain, 1: 7 * per_domain, 2: 7 * per_domain}


def test_sampling_follows_python_random(synthetic_root):
    def sample(seed):
        ds = build(synthetic_root, seed=seed, TEST_ENV="test_on_sketch.json", DATASET__NUM_SHOTS=2)
        return [d.impath for d in ds.train_x]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_source_domains_restrict_train_and_val(synthetic_root):
    ds = build(synthetic_root, TEST_ENV="test_on_sketch.json", DATASET__SOURCE_DOMAINS=("Photo",))
    assert ds.source_domains == ["photo"]
    assert {d.domainname for d in ds.train_x + ds.val} == {"photo"}
    with pytest.raises(DatasetError, match=r"SOURCE_DOMAINS.*\['sketch'\] are not source domains"):
        build(synthetic_root, TEST_ENV="test_on_sketch.json", DATASET__SOURCE_DOMAINS=("photo", "sketch"))


# ------------------------------------------------------------------ reader errors

def test_error_dataset_root(tmp_path):
    with pytest.raises(DatasetError, match="DATASET.ROOT is not set"):
        build("", TEST_ENV="test_on_sketch.json")
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="DATASET.ROOT not found: " + re.escape(missing)):
        build(missing, TEST_ENV="test_on_sketch.json")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="DATASET.ROOT is not a directory: " + re.escape(str(a_file))):
        build(str(a_file), TEST_ENV="test_on_sketch.json")


def test_error_dataset_folder_absent(tmp_path):
    folder = os.path.join(str(tmp_path), "PACS")
    with pytest.raises(FileNotFoundError, match=re.escape(f"dataset folder not found: {folder}") + r".*"
                       + re.escape(f"{folder}/images/<domain>/<class>/<image>") + r".*"
                       + re.escape(f"{folder}/<domain>/<class>/<image>")):
        build(str(tmp_path), TEST_ENV="test_on_sketch.json")
    with pytest.raises(FileNotFoundError, match=r"VLCS: dataset folder not found: .*VLCS"):
        build(str(tmp_path), "VLCS", TEST_ENV="test_on_sun.json")


def test_error_split_json_missing(synthetic_root, tmp_path):
    pacs = tmp_path / "PACS"
    pacs.mkdir()
    shutil.copy(os.path.join(synthetic_root, "PACS", "test_on_photo.json"), pacs)
    expected = re.escape(f"split file not found: {pacs / 'test_on_sketch.json'}") + r".*test_on_photo\.json"
    with pytest.raises(FileNotFoundError, match=expected):
        build(str(tmp_path), TEST_ENV="test_on_sketch.json")


def _pacs_with_json(synthetic_root, tmp_path, data):
    root = copy_dataset(synthetic_root, tmp_path, "PACS")
    path = os.path.join(root, "PACS", "test_on_sketch.json")
    if isinstance(data, str):
        with open(path, "w") as f:
            f.write(data)
    else:
        write_json(path, data)
    return root, path


def _split(synthetic_root):
    with open(os.path.join(synthetic_root, "PACS", "test_on_sketch.json")) as f:
        return json.load(f)


def test_error_split_json_not_json(synthetic_root, tmp_path):
    root, path = _pacs_with_json(synthetic_root, tmp_path, "{not json")
    with pytest.raises(DatasetError, match=re.escape(path) + ": not a valid JSON file"):
        build(root, TEST_ENV="test_on_sketch.json")


def test_error_split_json_missing_key(synthetic_root, tmp_path):
    data = _split(synthetic_root)
    del data["val"]
    root, path = _pacs_with_json(synthetic_root, tmp_path, data)
    with pytest.raises(DatasetError, match=re.escape(path) + ": missing key 'val'"):
        build(root, TEST_ENV="test_on_sketch.json")


@pytest.mark.parametrize("bad", [["a/b.jpg", "0", "dog"], ["a/b.jpg", 0], "a/b.jpg", ["a/b.jpg", True, "dog"],
                                 ["a/b.jpg", -1, "dog"]])
def test_error_split_json_bad_entry(synthetic_root, tmp_path, bad):
    data = _split(synthetic_root)
    data["train"][3] = bad
    root, path = _pacs_with_json(synthetic_root, tmp_path, data)
    with pytest.raises(DatasetError, match=re.escape(path) + r": entry 3 of 'train' is .*expected \[relpath"):
        build(root, TEST_ENV="test_on_sketch.json")


def test_error_split_json_label_names_disagree(synthetic_root, tmp_path):
    data = _split(synthetic_root)
    data["test"][5][2] = "cat"
    root, path = _pacs_with_json(synthetic_root, tmp_path, data)
    with pytest.raises(DatasetError, match=re.escape(path) + r": label 0 is 'dog' .* but 'cat' at entry 5 of 'test'"):
        build(root, TEST_ENV="test_on_sketch.json")


def test_error_every_label_must_be_in_train_x(synthetic_root, tmp_path):
    data = _split(synthetic_root)
    data["train"] = [e for e in data["train"] if e[1] != 6]
    root, path = _pacs_with_json(synthetic_root, tmp_path, data)
    with pytest.raises(DatasetError, match=r"no image of class\(es\) 6 \(person\).*every label 0\.\.6"):
        build(root, TEST_ENV="test_on_sketch.json")


def test_error_listed_image_missing(synthetic_root, tmp_path):
    root = copy_dataset(synthetic_root, tmp_path, "PACS")
    victim = os.path.join(root, "PACS", "images", "photo", "horse", "horse_0003.jpg")
    os.remove(victim)
    json_path = os.path.join(root, "PACS", "test_on_sketch.json")
    with pytest.raises(FileNotFoundError, match=re.escape(f"image not found: {victim} (listed in {json_path}")):
        build(root, TEST_ENV="test_on_sketch.json")


def test_error_unknown_held_out_domain(synthetic_root):
    with pytest.raises(DatasetError, match=r"unknown held-out domain 'clipart'.*art_painting.*sketch"):
        build(synthetic_root, DATASET__TARGET_DOMAINS=("clipart",))
    with pytest.raises(DatasetError, match=r"unknown held-out domain 'clipart' \(from TEST_ENV"):
        build(synthetic_root, TEST_ENV="test_on_clipart.json")
    with pytest.raises(DatasetError, match=r"VLCS: unknown held-out domain 'photo'.*caltech"):
        build(synthetic_root, "VLCS", DATASET__TARGET_DOMAINS=("photo",))


def test_error_held_out_domain_not_given_or_ambiguous(synthetic_root):
    with pytest.raises(DatasetError, match=r"set TEST_ENV .* or DATASET\.TARGET_DOMAINS"):
        build(synthetic_root)
    with pytest.raises(DatasetError, match=r"TARGET_DOMAINS must name one held-out domain"):
        build(synthetic_root, DATASET__TARGET_DOMAINS=("photo", "sketch"))
    with pytest.raises(DatasetError, match=r"holds out 'photo' but DATASET\.TARGET_DOMAINS"):
        build(synthetic_root, TEST_ENV="test_on_photo.json", DATASET__TARGET_DOMAINS=("sketch",))
    with pytest.raises(DatasetError, match=r"TEST_ENV 'sketch\.json' should name a split file test_on_<domain>\.json"):
        build(synthetic_root, TEST_ENV="sketch.json")


def test_error_unexpected_domain_folder(synthetic_root, tmp_path):
    root = copy_dataset(synthetic_root, tmp_path, "PACS")
    remove_jsons(os.path.join(root, "PACS"))
    shutil.copytree(os.path.join(root, "PACS", "images", "photo"), os.path.join(root, "PACS", "images", "clipart"))
    with pytest.raises(DatasetError, match=r"unexpected domain folder\(s\) \['clipart'\] in .*PACS.images"):
        build(root, TEST_ENV="test_on_photo.json")


def test_error_held_out_domain_folder_missing(synthetic_root, tmp_path):
    root = copy_dataset(synthetic_root, tmp_path, "PACS")
    remove_jsons(os.path.join(root, "PACS"))
    shutil.rmtree(os.path.join(root, "PACS", "images", "sketch"))
    with pytest.raises(FileNotFoundError, match=r"no folder for the held-out domain 'sketch' in .*PACS.images"):
        build(root, DATASET__TARGET_DOMAINS=("sketch",))
    # with sketch held out no more, its folder is a missing *source* domain: an error, never a
    # silently smaller training set
    with pytest.raises(DatasetError, match=r"source domain\(s\) \['sketch'\] have no training or val image"):
        build(root, DATASET__TARGET_DOMAINS=("photo",))
    assert build(root, DATASET__TARGET_DOMAINS=("photo",), DATASET__SOURCE_DOMAINS=("art_painting", "cartoon")
                 ).source_domains == ["art_painting", "cartoon"]


def test_error_domain_folder_without_domains(tmp_path):
    with pytest.raises(DatasetError, match="DomainFolder: no domain folders in " + re.escape(str(tmp_path))):
        build(str(tmp_path), "DomainFolder", DATASET__TARGET_DOMAINS=("a",))


# ------------------------------------------------------------------ open-set sets

def test_ood_sets_per_class_cap(synthetic_root):
    dtd = load_ood_set("DTD", synthetic_root, "PACS", 3, "standard", random.Random(0))
    assert Counter(d.classname for d in dtd) == {c: 3 for c in ("banded", "chequered", "dotted", "marbled", "zigzagged")}
    assert all(d.domain == 0 and d.domainname == "" and os.path.isfile(d.impath) for d in dtd)
    assert {d.label for d in dtd} == set(range(5))
    food = load_ood_set("food101", synthetic_root, "VLCS", -1, "standard", random.Random(0))
    assert len(food) == 5 * 8  # per_class < 1: everything (train + val + test)
    assert [d.impath for d in load_ood_set("FOOD-101", synthetic_root, "vlcs", 4, "standard", random.Random(1))] == \
        [d.impath for d in load_ood_set("Food101", synthetic_root, "VLCS", 4, "standard", random.Random(1))]
    assert canonical_ood_name("caltech-101") == "Caltech101" and canonical_ood_name("dtd") == "DTD"


@pytest.mark.parametrize("exclude,protocol,dropped", [
    ("PACS", "standard", {"face", "dalmatian", "electric_guitar", "elephant"}),
    ("PACS", "reference", {"face", "dalmatian", "electric_guitar", "elephant", "airplane", "leopard", "motorbike"}),
    ("VLCS", "standard", {"face", "car_side", "chair", "dalmatian"}),
    ("VLCS", "reference", {"face", "car_side", "chair", "dalmatian", "airplane", "leopard", "motorbike"}),
    ("none", "standard", set()),
    ("none", "reference", set()),
])
def test_caltech_exclusion_lists(synthetic_root, exclude, protocol, dropped):
    items = load_ood_set("Caltech101", synthetic_root, exclude, 2, protocol, random.Random(0))
    assert set(Counter(d.classname for d in items).items()) == {(c, 2) for c in ALL_CALTECH - dropped}


def test_dtd_and_food_keep_every_class(synthetic_root):
    for name, n in (("DTD", 5), ("Food101", 5)):
        for exclude in ("PACS", "VLCS"):
            assert len({d.classname for d in load_ood_set(name, synthetic_root, exclude, 1, "reference", random)}) == n


def test_ood_from_class_folders_without_zhou_split(synthetic_root, tmp_path):
    root = copy_dataset(synthetic_root, tmp_path, "caltech-101", "dtd")
    os.remove(os.path.join(root, "caltech-101", "split_zhou_Caltech101.json"))
    os.remove(os.path.join(root, "dtd", "split_zhou_DescribableTextures.json"))
    background = os.path.join(root, "caltech-101", "101_ObjectCategories", "BACKGROUND_Google")
    shutil.copytree(os.path.join(root, "caltech-101", "101_ObjectCategories", "barrel"), background)
    items = load_ood_set("Caltech101", root, "PACS", -1, "standard", random)
    assert {d.classname for d in items} == ALL_CALTECH - {"face", "dalmatian", "electric_guitar", "elephant"}
    assert not any("BACKGROUND_Google" in d.impath for d in items)
    assert len(load_ood_set("DTD", root, "PACS", -1, "standard", random)) == 40


def test_dtd_paths_are_rebuilt_from_class_and_basename(synthetic_root, tmp_path):
    root = copy_dataset(synthetic_root, tmp_path, "dtd")
    path = os.path.join(root, "dtd", "split_zhou_DescribableTextures.json")
    with open(path) as f:
        data = json.load(f)
    for key in data:
        data[key] = [[f"somewhere/else/{os.path.basename(r)}", label, c] for r, label, c in data[key]]
    write_json(path, data)
    items = load_ood_set("DTD", root, "none", -1, "standard", random)
    assert len(items) == 40
    assert all(d.impath == os.path.join(root, "dtd", "images", d.classname, os.path.basename(d.impath)) for d in items)


def test_readers_fill_ood_from_config(synthetic_root):
    ds = build(synthetic_root, TEST_ENV="test_on_sketch.json", DATASET__OOD_SETS=["dtd", "Caltech101"],
               DATASET__OOD_PER_CLASS=2)
    assert set(ds.ood) == {"DTD", "Caltech101"}
    assert len(ds.ood["DTD"]) == 10
    assert {d.classname for d in ds.ood["Caltech101"]} == ALL_CALTECH - {"face", "dalmatian", "electric_guitar", "elephant"}
    ds = build(synthetic_root, TEST_ENV="test_on_sketch.json", DATASET__OOD_SETS=["Caltech101"],
               DATASET__OOD_EXCLUDE="VLCS", TEST__OOD_PROTOCOL="reference")
    assert {d.classname for d in ds.ood["Caltech101"]} == {"accordion", "anchor", "barrel", "electric_guitar", "elephant"}
    ds = build(synthetic_root, "VLCS", TEST_ENV="test_on_sun.json", DATASET__OOD_SETS=["Caltech101"])
    assert "chair" not in {d.classname for d in ds.ood["Caltech101"]}
    # DomainFolder: ROOT is the dataset folder; the open-set sets are looked up next to it.
    ds = build(os.path.join(synthetic_root, "PACS"), "DomainFolder", TEST_ENV="test_on_sketch.json",
               DATASET__OOD_SETS=["Caltech101"])
    assert {d.classname for d in ds.ood["Caltech101"]} == ALL_CALTECH  # no exclusion list by default


def test_ood_errors(synthetic_root, tmp_path):
    missing = os.path.join(str(tmp_path), "dtd")
    with pytest.raises(FileNotFoundError, match=re.escape(missing) + r".*datasets/README\.md"):
        load_ood_set("DTD", str(tmp_path), "PACS", 10, "standard", random)
    with pytest.raises(FileNotFoundError, match=r"open-set dataset DTD not found: .*dtd.*datasets/README\.md"):
        build(copy_dataset(synthetic_root, tmp_path / "c", "PACS"), TEST_ENV="test_on_sketch.json",
              DATASET__OOD_SETS=["DTD"])
    with pytest.raises(DatasetError, match=r"unknown open-set dataset 'Flowers'.*DTD, Food101, Caltech101"):
        load_ood_set("Flowers", synthetic_root, "PACS", 10, "standard", random)
    with pytest.raises(DatasetError, match=r"unknown open-set exclusion list 'OfficeHome' \(DATASET\.OOD_EXCLUDE\)"):
        load_ood_set("Caltech101", synthetic_root, "OfficeHome", 10, "standard", random)
    root = copy_dataset(synthetic_root, tmp_path / "d", "food-101")
    victim = os.path.join(root, "food-101", "images", "pizza", sorted(os.listdir(os.path.join(root, "food-101", "images", "pizza")))[0])
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=re.escape(f"image not found: {victim} (listed in ") + r".*split_zhou_Food101\.json"):
        load_ood_set("Food101", root, "PACS", 10, "standard", random)
    empty = tmp_path / "e" / "caltech-101"
    empty.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"neither .*split_zhou_Caltech101\.json nor the image folder .*101_ObjectCategories"):
        load_ood_set("Caltech101", str(tmp_path / "e"), "PACS", 10, "standard", random)


# ------------------------------------------------------------------ split files (prepare_splits)

def test_prepare_splits_cli_reproduces_the_synthetic_split_files(synthetic_root, tmp_path):
    root = copy_dataset(synthetic_root, tmp_path, "PACS")
    pacs = os.path.join(root, "PACS")
    remove_jsons(pacs)
    for _ in range(2):  # deterministic: a rerun writes the same bytes
        proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "prepare_splits.py"), "--dataset-dir", pacs],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        for domain in PACS_DOMAINS:
            with open(os.path.join(pacs, f"test_on_{domain}.json"), "rb") as a, \
                    open(os.path.join(synthetic_root, "PACS", f"test_on_{domain}.json"), "rb") as b:
                assert a.read() == b.read()
    ds = build(root, TEST_ENV="test_on_photo.json", DATASET__NUM_SHOTS=2)
    assert ds.split_source.endswith("test_on_photo.json") and len(ds.train_x) == 14
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "prepare_splits.py"), "--dataset-dir",
                           os.path.join(root, "nothing")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "error: dataset folder not found" in proc.stderr


def test_split_options(synthetic_root, tmp_path):
    vlcs = os.path.join(synthetic_root, "VLCS")
    default = make_domain_splits(vlcs)
    assert set(default) == {"CALTECH", "LABELME", "PASCAL", "SUN"}
    assert default == make_domain_splits(vlcs)
    other_seed = make_domain_splits(vlcs, seed=2)
    assert default["SUN"]["test"] == other_seed["SUN"]["test"] and default["SUN"]["val"] != other_seed["SUN"]["val"]
    half = make_domain_splits(vlcs, val_fraction=0.5)["SUN"]
    assert (len(half["train"]), len(half["val"])) == (3 * 5 * 3, 3 * 5 * 3)
    # A source domain is split the same way whichever domain is held out.
    assert set(map(tuple, default["SUN"]["val"])) & set(map(tuple, default["CALTECH"]["val"])) == \
        {tuple(e) for e in default["SUN"]["val"] if e[0].startswith(("LABELME", "PASCAL"))}
    written = write_domain_splits(vlcs, out_dir=str(tmp_path))
    assert [os.path.basename(p) for p in written] == [f"test_on_{d}.json" for d in ("caltech", "labelme", "pascal", "sun")]
    with pytest.raises(DatasetError, match=r"val fraction must be in \[0, 1\)"):
        make_domain_splits(vlcs, val_fraction=1.0)


def _domain_tree(tmp_path):
    base = tmp_path / "DS"
    for domain in ("d1", "d2"):
        for cls in ("a", "b"):
            (base / domain / cls).mkdir(parents=True)
            for i in range(3):
                (base / domain / cls / f"{i}.png").write_bytes(b"")
    return base


def test_split_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="dataset folder not found: " + re.escape(str(missing))):
        write_domain_splits(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no domain folders in " + re.escape(str(tmp_path / "empty"))):
        write_domain_splits(str(tmp_path / "empty"))

    base = _domain_tree(tmp_path / "1")
    shutil.rmtree(base / "d2" / "b")
    with pytest.raises(DatasetError, match=re.escape(str(base / "d2")) + r" lacks class folder\(s\) \['b'\]"):
        write_domain_splits(str(base))

    base = _domain_tree(tmp_path / "2")
    for f in (base / "d1" / "a").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="empty class folder: " + re.escape(str(base / "d1" / "a"))):
        write_domain_splits(str(base))

    base = _domain_tree(tmp_path / "3")
    (base / "d2" / "a" / "notes.txt").write_text("x")
    (base / "d2" / "a" / ".DS_Store").write_text("x")  # hidden files are ignored
    with pytest.raises(DatasetError, match=re.escape(str(base / "d2" / "a")) + r" holds entries that are not image "
                       r"files: " + re.escape(str(base / "d2" / "a" / "notes.txt")) + r" \(accepted extensions"):
        write_domain_splits(str(base))

    base = _domain_tree(tmp_path / "4")
    (base / "d1" / "stray.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"must hold only class folders .*" + re.escape(str(base / "d1" / "stray.jpg"))):
        write_domain_splits(str(base))

    base = _domain_tree(tmp_path / "5")
    (base / "D1").mkdir()
    with pytest.raises(DatasetError, match=r"differ only in case"):
        write_domain_splits(str(base))

    base = _domain_tree(tmp_path / "6")
    assert len(write_domain_splits(str(base))) == 2  # the tree itself is fine
    assert os.path.isfile(base / "test_on_d1.json")


# ------------------------------------------------------------------ dataset YAMLs

@pytest.mark.parametrize("name,ood", [("PACS", []), ("VLCS", []), ("PACS_DTD", ["DTD"]), ("PACS_food101", ["Food101"]),
                                      ("PACS_Caltech101", ["Caltech101"]), ("VLCS_DTD", ["DTD"]),
                                      ("VLCS_food101", ["Food101"]), ("VLCS_Caltech101", ["Caltech101"])])
def test_dataset_yamls(name, ood):
    cfg = get_cfg_default()
    merge_from_file(cfg, os.path.join(REPO, "configs", "datasets", f"{name}.yaml"))
    assert cfg.DATASET.NAME == name.split("_")[0]
    assert list(cfg.DATASET.OOD_SETS) == ood
    assert cfg.TRAINER.CRoFT.EDR_WCCF_BRANCH is (not name.startswith("VLCS"))
    for set_name in ood:
        canonical_ood_name(set_name)


def test_pacs_yaml_documents_the_reference_sampler():
    with open(os.path.join(REPO, "configs", "datasets", "PACS.yaml")) as f:
        assert "DATASET.FEWSHOT_SAMPLER reference_balance" in f.read()
