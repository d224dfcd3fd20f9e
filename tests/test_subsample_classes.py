"""DATASET.SUBSAMPLE_CLASSES: CoCoOp's base-to-new class split, applied to every dataset."""
import random

import pytest

from croft.config import ConfigError, get_cfg_default
from croft.data.datasets import DATASET_REGISTRY, DatasetBase, build_dataset, subsample_classes
from croft.data.datum import Datum
from croft.data.splits import DatasetError

NAMES = ["ant", "bee", "cat", "dog", "eel"]  # 5 classes: base = labels 0, 1, 2 (ceil(5/2)), new = 3, 4


def items(prefix, per_class, labels=range(len(NAMES)), domain=0):
    return [Datum(f"/data/{prefix}/{NAMES[c]}_{i}.jpg", c, domain, NAMES[c], prefix)
            for i in range(per_class) for c in labels]


class Tiny(DatasetBase):
    """A synthetic dataset (no files): 5 classes, two test sets, a class subset, an open-set set."""

    NAME = "Tiny"

    def __init__(self, cfg):
        test = items("test", 3)
        super().__init__(
            train_x=items("train", 2), val=items("val", 1), test=test, classnames=NAMES,
            ood={"Noise": [Datum("/data/noise/0.jpg", -1, 0, "noise", "")]},
            test_sets={"test": test, "sketch": items("sketch", 2, labels=(1, 3), domain=1),
                       "only_new": items("only_new", 1, labels=(4,), domain=2)},
            class_subsets={"sketch": [1, 3], "only_new": [4]},
            train_full=items("train", 4),
        )


def tiny_cfg(subsample="all"):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = "/nonexistent"  # Tiny reads no file
    cfg.DATASET.NAME = "Tiny"
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    return cfg


def by_path(dataset):
    """``{impath: (label, classname)}`` over every ID set."""
    sets = [dataset.train_x, dataset.val, dataset.test, dataset.train_full, *dataset.test_sets.values()]
    return {d.impath: (d.label, d.classname) for s in sets for d in s}


def test_all_is_a_no_op():
    plain = Tiny(tiny_cfg())
    built = Tiny.build(tiny_cfg("all"))
    for name in ("train_x", "val", "test", "train_full", "classnames", "ood", "class_subsets"):
        assert getattr(built, name) == getattr(plain, name), name
    assert built.test_sets == plain.test_sets
    assert built.test_sets["test"] is built.test
    assert built.subsample_labels == list(range(5))
    # the function itself leaves every list object untouched
    lists = {name: getattr(plain, name) for name in ("train_x", "val", "test", "train_full", "test_sets")}
    assert subsample_classes(plain, "all") == list(range(5))
    assert all(getattr(plain, name) is value for name, value in lists.items())


@pytest.mark.parametrize("mode,kept", [("base", [0, 1, 2]), ("new", [3, 4])])
def test_base_and_new_keep_their_classes_relabelled(mode, kept):
    full = Tiny(tiny_cfg())
    ds = Tiny.build(tiny_cfg(mode))
    assert ds.subsample_labels == kept
    assert ds.classnames == [NAMES[c] for c in kept] and ds.num_classes == len(kept)
    relabel = {old: new for new, old in enumerate(kept)}
    for name in ("train_x", "val", "test", "train_full"):
        expected = [(d.impath, relabel[d.label], d.classname) for d in getattr(full, name) if d.label in relabel]
        assert [(d.impath, d.label, d.classname) for d in getattr(ds, name)] == expected, name
        assert {d.label for d in getattr(ds, name)} == set(range(len(kept))), name
        assert all(ds.classnames[d.label] == d.classname for d in getattr(ds, name))
    assert ds.test_sets["test"] is ds.test
    assert [d.label for d in ds.test_sets["sketch"]] == [relabel[d.label] for d in full.test_sets["sketch"]
                                                         if d.label in relabel]
    assert ds.class_subsets["sketch"] == [relabel[c] for c in (1, 3) if c in relabel]
    # a test set with no image of the kept classes is dropped, with its class subset
    assert ("only_new" in ds.test_sets) == (mode == "new")
    assert ("only_new" in ds.class_subsets) == (mode == "new")
    # the open-set sets are not subsampled
    assert ds.ood == full.ood


def test_base_and_new_are_disjoint_and_cover_every_class():
    base, new, full = Tiny.build(tiny_cfg("base")), Tiny.build(tiny_cfg("new")), Tiny.build(tiny_cfg("all"))
    assert not set(base.classnames) & set(new.classnames)
    assert base.classnames + new.classnames == full.classnames
    assert len(base.classnames) == 3  # ceil(5 / 2)
    b, n, f = by_path(base), by_path(new), by_path(full)
    assert not set(b) & set(n) and set(b) | set(n) == set(f)
    assert {f[p][1] for p in b} == set(base.classnames) and {f[p][1] for p in n} == set(new.classnames)


def test_train_full_identity_is_kept():
    class Shared(Tiny):
        def __init__(self, cfg):
            DatasetBase.__init__(self, items("train", 2), items("val", 1), items("test", 1), NAMES)

    ds = Shared.build(tiny_cfg("new"))
    assert ds.train_full is ds.train_x and ds.test_sets == {"test": ds.test} and ds.test_sets["test"] is ds.test


def test_invalid_value_is_rejected_by_check_cfg():
    with pytest.raises(ConfigError, match=r"'DATASET\.SUBSAMPLE_CLASSES': 'Base'; expected one of "
                                          r"\['all', 'base', 'new'\]"):
        Tiny.check_cfg(tiny_cfg("Base"))
    with pytest.raises(DatasetError, match=r"'DATASET\.SUBSAMPLE_CLASSES': 'half'"):
        Tiny.build(tiny_cfg("half"))


def test_one_class_has_no_new_half():
    class One(DatasetBase):
        def __init__(self, cfg):
            super().__init__(items("train", 1, labels=(0,)), [], items("test", 1, labels=(0,)), ["ant"])

    assert One.build(tiny_cfg("base")).classnames == ["ant"]
    with pytest.raises(ConfigError, match=r"SUBSAMPLE_CLASSES new: One has 1 class\(es\)"):
        One.build(tiny_cfg("new"))


# ------------------------------------------------------------------ the registered datasets

def pacs(synthetic_root, subsample):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = synthetic_root
    cfg.DATASET.NAME = "PACS"
    cfg.TEST_ENV = "test_on_sketch.json"
    cfg.DATASET.NUM_SHOTS = 2
    cfg.DATASET.OOD_SETS = ["DTD"]
    cfg.DATASET.OOD_PER_CLASS = 2
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    random.seed(1)
    return build_dataset(cfg)


def test_pacs_honours_subsample_classes(synthetic_root):
    full, base, new = (pacs(synthetic_root, s) for s in ("all", "base", "new"))
    assert base.classnames == full.classnames[:4] and new.classnames == full.classnames[4:]
    for ds, offset in ((base, 0), (new, 4)):
        # same few-shot draw, restricted to the kept classes
        assert [(d.impath, d.label + offset) for d in ds.train_x] == \
            [(d.impath, d.label) for d in full.train_x if d.classname in ds.classnames]
        assert [(d.impath, d.label + offset) for d in ds.test_sets["sketch"]] == \
            [(d.impath, d.label) for d in full.test if d.classname in ds.classnames]
        assert [d.impath for d in ds.train_full] == [d.impath for d in full.train_full if d.classname in ds.classnames]
        assert ds.ood == full.ood


def test_imagenet_honours_subsample_classes(synthetic_root, tmp_path):
    def build(subsample):
        cfg = get_cfg_default()
        cfg.DATASET.ROOT = synthetic_root
        cfg.DATASET.NAME = "ImageNet46"
        cfg.SEED = 1
        cfg.DATASET.NUM_SHOTS = 2
        cfg.DATASET.SUBSAMPLE_CLASSES = subsample
        cfg.OUTPUT_DIR = str(tmp_path / subsample)
        return build_dataset(cfg)

    full, new = build("all"), build("new")
    m = -(-full.num_classes // 2)
    assert new.classnames == full.classnames[m:]
    assert set(new.test_sets) <= set(full.test_sets)
    for name, subset in new.class_subsets.items():
        assert subset == [c - m for c in full.class_subsets[name] if c >= m]
        assert {d.label for d in new.test_sets[name]} <= set(subset)
    assert [d.impath for d in new.test] == [d.impath for d in full.test if d.label >= m]
    assert new.ood == full.ood


def test_every_registered_dataset_builds_through_dataset_base_build():
    for name in DATASET_REGISTRY.names():
        cls = DATASET_REGISTRY.get(name)
        assert issubclass(cls, DatasetBase) and cls.build.__func__ is DatasetBase.build.__func__, name
