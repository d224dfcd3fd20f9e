"""Synthetic data: layouts, determinism, speed, and that classes/domains are visually distinct."""
import hashlib
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from croft.testing import synthetic
from croft.data.splits import DEFAULT_VAL_FRACTION, num_val
from croft.testing.synthetic import make_synthetic_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULTS = inspect.signature(make_synthetic_data).parameters
PER_CLASS_DOMAIN = _DEFAULTS["per_class_domain"].default  # images per (domain, class) of PACS and VLCS
OOD_PER_CLASS = _DEFAULTS["ood_per_class"].default        # images per class of DTD, Food-101, Caltech-101


def tree_hashes(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_deterministic(tmp_path, synthetic_root):
    make_synthetic_data(str(tmp_path / "a"))
    first = tree_hashes(str(tmp_path / "a"))
    assert first == tree_hashes(synthetic_root)  # same defaults, other folder: same bytes
    jpegs = {}
    for path in first:
        if path.endswith(".jpg"):
            jpegs[path.split(os.sep)[0]] = jpegs.get(path.split(os.sep)[0], 0) + 1
    assert jpegs["PACS"] == len(synthetic.PACS_DOMAINS) * len(synthetic.PACS_CLASSES) * PER_CLASS_DOMAIN
    assert jpegs["VLCS"] == len(synthetic.VLCS_DOMAINS) * len(synthetic.VLCS_CLASSES) * PER_CLASS_DOMAIN
    assert jpegs["dtd"] == len(synthetic.DTD_CLASSES) * OOD_PER_CLASS
    assert jpegs["food-101"] == len(synthetic.FOOD_CLASSES) * OOD_PER_CLASS
    assert jpegs["caltech-101"] == len(synthetic.CALTECH_FOLDERS) * OOD_PER_CLASS


def test_seed_changes_images(tmp_path):
    synthetic.write_dtd(str(tmp_path / "s0"), seed=0, per_class=2)
    synthetic.write_dtd(str(tmp_path / "s1"), seed=1, per_class=2)
    a, b = tree_hashes(str(tmp_path / "s0")), tree_hashes(str(tmp_path / "s1"))
    assert a.keys() == b.keys()
    assert any(a[k] != b[k] for k in a if k.endswith(".jpg"))


def test_layouts(synthetic_root):
    pacs = os.path.join(synthetic_root, "PACS")
    n, classes, sources = PER_CLASS_DOMAIN, len(synthetic.PACS_CLASSES), len(synthetic.PACS_DOMAINS) - 1
    n_val = num_val(n, DEFAULT_VAL_FRACTION)
    assert 0 < n_val < n
    for domain in synthetic.PACS_DOMAINS:
        assert sorted(os.listdir(os.path.join(pacs, "images", domain))) == sorted(synthetic.PACS_CLASSES)
        assert len(os.listdir(os.path.join(pacs, "images", domain, "dog"))) == n
        with open(os.path.join(pacs, f"test_on_{domain}.json")) as f:
            split = json.load(f)
        assert set(split) == {"train", "val", "test"}
        # the held-out domain is the test set; each source (domain, class) gives n_val images to val
        assert len(split["test"]) == classes * n and all(e[0].startswith(domain + "/") for e in split["test"])
        assert len(split["train"]) == sources * classes * (n - n_val) and len(split["val"]) == sources * classes * n_val
        assert not any(e[0].startswith(domain + "/") for e in split["train"] + split["val"])
        assert not {e[0] for e in split["train"]} & {e[0] for e in split["val"]}
        for relpath, label, classname in split["train"]:
            assert synthetic.PACS_CLASSES[label] == classname == relpath.split("/")[1]
            assert os.path.isfile(os.path.join(pacs, "images", relpath))
    vlcs = os.path.join(synthetic_root, "VLCS")
    assert sorted(os.listdir(os.path.join(vlcs, "images"))) == ["CALTECH", "LABELME", "PASCAL", "SUN"]
    with open(os.path.join(vlcs, "test_on_caltech.json")) as f:
        assert json.load(f)["test"][0][0].startswith("CALTECH/")  # real (upper-case) folder names

    for folder, images, split_name in [
        ("dtd", "images", "split_zhou_DescribableTextures.json"),
        ("food-101", "images", "split_zhou_Food101.json"),
        ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json"),
    ]:
        with open(os.path.join(synthetic_root, folder, split_name)) as f:
            split = json.load(f)
        entries = split["train"] + split["val"] + split["test"]
        assert len(entries) == 8 * len(os.listdir(os.path.join(synthetic_root, folder, images)))
        for relpath, label, classname in entries:
            assert os.path.isfile(os.path.join(synthetic_root, folder, images, relpath))
    caltech = os.listdir(os.path.join(synthetic_root, "caltech-101", "101_ObjectCategories"))
    assert {"airplanes", "Faces", "Leopards", "Motorbikes", "dalmatian"} <= set(caltech)
    with open(os.path.join(synthetic_root, "caltech-101", "split_zhou_Caltech101.json")) as f:
        names = {e[2] for e in json.load(f)["test"]}
    assert {"airplane", "face", "leopard", "motorbike"} <= names and "Faces" not in names

    img = Image.open(os.path.join(pacs, "images", "photo", "dog", "dog_0000.jpg"))
    assert img.format == "JPEG" and img.size == (64, 64) and img.mode == "RGB"


def _features(paths):
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((16, 16)), dtype=np.float64).ravel()
                     for p in paths])


def _nearest_centroid_accuracy(features, labels):
    """Leave-one-out nearest-centroid accuracy."""
    labels = np.asarray(labels)
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        classes = sorted(set(labels[keep]))
        centroids = np.stack([features[keep & (labels == c)].mean(0) for c in classes])
        pred = classes[int(np.argmin(((centroids - features[i]) ** 2).sum(1)))]
        correct += pred == labels[i]
    return correct / len(labels)


def test_classes_and_domains_are_distinct(synthetic_root):
    images = os.path.join(synthetic_root, "PACS", "images")
    # Classes within a style, from raw pixels (shape and colour differ per class).
    for domain in ("photo", "cartoon"):
        paths, labels = [], []
        for label, cls in enumerate(synthetic.PACS_CLASSES):
            folder = os.path.join(images, domain, cls)
            paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
            labels += [label] * len(os.listdir(folder))
        assert _nearest_centroid_accuracy(_features(paths), labels) >= 0.8, domain
    # Domains (rendering styles), from simple style statistics of every image.
    for dataset, domains in (("PACS", synthetic.PACS_DOMAINS), ("VLCS", synthetic.VLCS_DOMAINS)):
        paths, labels = [], []
        for d, domain in enumerate(domains):
            for cls in sorted(os.listdir(os.path.join(synthetic_root, dataset, "images", domain))):
                folder = os.path.join(synthetic_root, dataset, "images", domain, cls)
                paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
                labels += [d] * len(os.listdir(folder))
        features = np.array([_style(p) for p in paths])
        features = (features - features.mean(0)) / features.std(0)
        assert _nearest_centroid_accuracy(features, labels) >= 0.8, dataset


def _style(path):
    """Brightness, contrast, saturation, edge energy, share of white and of dark pixels."""
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    g = a.mean(2)
    edges = np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean()
    return [g.mean(), g.std(), (a.max(2) - a.min(2)).mean(), edges, (g > 235).mean(), (g < 40).mean()]


def test_rewrite_replaces_synthetic_but_never_other_folders(tmp_path):
    root = str(tmp_path)
    synthetic.write_dtd(root, per_class=3)
    synthetic.write_dtd(root, per_class=2)  # a marked folder is replaced, leaving no stale files
    assert len(os.listdir(os.path.join(root, "dtd", "images", "banded"))) == 2
    os.makedirs(os.path.join(root, "other", "PACS"))
    open(os.path.join(root, "other", "PACS", "mine.txt"), "w").close()
    with pytest.raises(FileExistsError, match=r"refusing to overwrite .*other.PACS"):
        make_synthetic_data(os.path.join(root, "other"))
    assert os.path.isfile(os.path.join(root, "other", "PACS", "mine.txt"))


def test_cli(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_synthetic_data.py"), "--root", str(out),
                           "--seed", "3", "--per-class-domain", "2", "--ood-per-class", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(out / "PACS" / "test_on_sketch.json")
    assert len(os.listdir(out / "VLCS" / "images" / "SUN" / "car")) == 2
