"""The reference behaviours that docs/differences.md lists as fixed accidents: each baseline's prompt
on Setup-I, the edge cases of the reference few-shot sampler, the VLCS val size and the open-set picks
under TEST.OOD_PROTOCOL reference. Expected values are written from the original code's rules, not
from croft's implementation."""
import json
import os
import random
from collections import Counter

import pytest
import torch

import croft.trainers  # noqa: F401  (registers the trainers)
from croft.config import get_cfg_default, merge_from_file, setup_cfg
from croft.data.datasets import build_dataset
from croft.data.datum import Datum
from croft.data.fewshot import sample_class_balanced, sample_reference_balance
from croft.data.splits import DatasetError
from croft.engine.trainer import build_trainer, set_random_seed
from croft.train import build_parser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = os.path.join(REPO, "configs", "datasets")
FAST = ["MODEL.BACKBONE.PRETRAINED", "none", "DATALOADER.NUM_WORKERS", "0", "TEST.PLOT", "False"]

# The original's prompts (read in its trainers): zero-shot CLIP and CLIP-Adapter take
# CUSTOM_TEMPLATES[DATASET.NAME], "a photo of a {}." for ImageNet46, PACS and VLCS; CRoFT (on
# ImageNet*) and Tip-Adapter-F take the 7-template ensemble below.
SINGLE = "a photo of a {}."
ENSEMBLE = ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
            "a {} in a video game.", "art of the {}.", "a photo of the small {}.")


def trainer_config(name):
    if name == "ZeroshotCLIP":
        return os.path.join(REPO, "configs", "trainers", "ZeroshotCLIP", "vit_b16.yaml")
    return os.path.join(REPO, "configs", "trainers", name, "ViT_ep30.yaml")


def build_on(dataset_yaml, name, root, out, *opts):
    args = ["--root", str(root), "--seed", "1", "--trainer", name,
            "--dataset-config-file", os.path.join(DATASETS, dataset_yaml), "--config-file", trainer_config(name),
            "--backbone", "tiny", "--output-dir", str(out), "DATASET.NUM_SHOTS", "2", *FAST, *opts]
    cfg = setup_cfg(build_parser().parse_args(args))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


@torch.no_grad()
def encode(trainer, texts):
    return trainer.clip_model.encode_text(trainer.tokenizer(texts).to(trainer.device)).float()


def single_template(trainer):
    """The original's single-template features: encode_text of "a photo of a <class>."."""
    return encode(trainer, [SINGLE.format(c.replace("_", " ")) for c in trainer.classnames])


def ensemble(trainer):
    """The original's ensemble: per class, normalise each template's embedding, average, normalise."""
    rows = []
    for c in trainer.classnames:
        e = encode(trainer, [t.format(c.replace("_", " ")) for t in ENSEMBLE])
        e = e / e.norm(dim=-1, keepdim=True)
        m = e.mean(dim=0)
        rows.append(m / m.norm())
    return torch.stack(rows)


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def text_used(trainer):
    """The class text features a trainer scores with (normalised)."""
    return unit(trainer.text_raw if hasattr(trainer, "text_raw") else trainer.text)


# ------------------------------------------------------------------ prompts per method

# What each original method used: (ImageNet46, PACS/VLCS).
ORIGINAL_PROMPT = {
    "ZeroshotCLIP": ("single", "single"),
    "CLIP_Adapter": ("single", "single"),
    "CRoFT": ("ensemble", "single"),
    "TIP_ADAPTER": ("ensemble", "ensemble"),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_PROMPT))
def test_setup1_prompt_is_the_originals(synthetic_root, tmp_path, name):
    trainer = build_on("imagenet46.yaml", name, synthetic_root, tmp_path / name)
    expected = single_template(trainer) if ORIGINAL_PROMPT[name][0] == "single" else ensemble(trainer)
    torch.testing.assert_close(text_used(trainer), unit(expected), rtol=1e-5, atol=1e-6)
    other = ensemble(trainer) if ORIGINAL_PROMPT[name][0] == "single" else single_template(trainer)
    assert not torch.allclose(text_used(trainer), unit(other), atol=1e-3)  # the two prompts differ
    if name in ("ZeroshotCLIP", "CLIP_Adapter"):
        assert trainer.prompt_ensemble is False and trainer.cfg.DATASET.PROMPT_TEMPLATE == SINGLE


@pytest.mark.parametrize("name", sorted(ORIGINAL_PROMPT))
def test_setup2_prompts_unchanged(synthetic_root, tmp_path, name):
    trainer = build_on("PACS.yaml", name, synthetic_root, tmp_path / name, "TEST_ENV", "test_on_sketch.json")
    expected = single_template(trainer) if ORIGINAL_PROMPT[name][1] == "single" else ensemble(trainer)
    torch.testing.assert_close(text_used(trainer), unit(expected), rtol=1e-5, atol=1e-6)


def test_prompt_keys():
    cfg = get_cfg_default()
    merge_from_file(cfg, os.path.join(DATASETS, "imagenet46.yaml"))
    assert cfg.DATASET.PROMPT_ENSEMBLE is True  # CRoFT's ensemble
    assert cfg.TRAINER.ZeroshotCLIP.PROMPTS == "template" and cfg.TRAINER.CLIP_Adapter.PROMPTS == "template"
    for yaml in ("PACS.yaml", "VLCS.yaml", "PACS_DTD.yaml", "VLCS_Caltech101.yaml"):
        cfg = get_cfg_default()
        merge_from_file(cfg, os.path.join(DATASETS, yaml))
        assert cfg.DATASET.PROMPT_ENSEMBLE is False
        assert cfg.TRAINER.ZeroshotCLIP.PROMPTS == "dataset" and cfg.TRAINER.CLIP_Adapter.PROMPTS == "dataset"
    from croft.trainers.clip_adapter import CLIPAdapter
    from croft.trainers.zsclip import ZeroshotCLIP

    for cls, key in ((ZeroshotCLIP, "TRAINER.ZeroshotCLIP.PROMPTS"), (CLIPAdapter, "TRAINER.CLIP_Adapter.PROMPTS")):
        cfg = get_cfg_default()
        cfg.OPTIM.MAX_EPOCH = 1
        node, leaf = key.rsplit(".", 1)
        cfg.TRAINER[node.split(".")[1]][leaf] = "on"
        with pytest.raises(ValueError, match=rf"invalid value for '{key}': 'on'; expected one of "
                                             r"\['dataset', 'template', 'ensemble'\]"):
            cls.check_cfg(cfg)


# ------------------------------------------------------------------ few-shot sampler edge cases

def original_balance(items, k, rng):
    """The original's generate_fewshot_dataset_balance, from its rule: per label group (first
    appearance order) with >= k items, every domain of the whole source (first appearance order)
    gives int(k / n_domains) random items, or all its items when it has fewer; a label with fewer
    than k items gives all of its own items."""
    labels, domains = [], []
    for d in items:
        if d.label not in labels:
            labels.append(d.label)
        if d.domain not in domains:
            domains.append(d.domain)
    per_domain = int(k / len(domains))
    out = []
    for label in labels:
        own = [d for d in items if d.label == label]
        if len(own) < k:
            out += own
            continue
        for domain in domains:
            pool = [d for d in items if d.domain == domain]
            out += rng.sample(pool, per_domain) if len(pool) >= per_domain else pool
    return out


# Training split of the test tree: (domain, class, number of images). K = 6 over three source
# domains gives 2 per domain; d3 holds a single training image (a short domain) and class c has 4
# (a short class).
TRAIN = [("d1", "a", 4), ("d1", "b", 4), ("d1", "c", 2), ("d2", "a", 4), ("d2", "b", 3), ("d2", "c", 2),
         ("d3", "a", 1)]
CLASSES = ("a", "b", "c")


def write_tree(root, train=TRAIN, val_per=2, test_per=2):
    """``root/images/<domain>/<class>/<image>`` (empty files: only paths are read) and test_on_d4.json."""
    split = {"train": [], "val": [], "test": []}

    def add(key, domain, cls, n):
        for i in range(n):
            rel = f"{domain}/{cls}/{key}_{i}.jpg"
            path = os.path.join(root, "images", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "wb").close()
            split[key].append([rel, CLASSES.index(cls), cls])

    for domain, cls, n in train:
        add("train", domain, cls, n)
    for domain in ("d1", "d2"):
        for cls in CLASSES:
            add("val", domain, cls, val_per)
    for cls in CLASSES:
        add("test", "d4", cls, test_per)
    with open(os.path.join(root, "test_on_d4.json"), "w") as f:
        json.dump(split, f)
    return split


def domain_folder_cfg(root, sampler, shots=6):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = "DomainFolder"
    cfg.TEST_ENV = "test_on_d4.json"
    cfg.DATASET.NUM_SHOTS = shots
    cfg.DATASET.FEWSHOT_SAMPLER = sampler
    cfg.SEED = 5
    return cfg


def test_reference_balance_short_class_and_short_domain(tmp_path):
    write_tree(str(tmp_path))
    cfg = domain_folder_cfg(tmp_path, "reference_balance")
    random.seed(5)
    ds = build_dataset(cfg)
    # The rule on the same training list, from the same RNG state.
    train = ds.train_full
    expected = original_balance(train, 6, random.Random(5))
    assert [d.impath for d in ds.train_x] == [d.impath for d in expected]
    # What the rule implies: a and b each take 2 + 2 images of d1 and d2 and the single d3 image;
    # c (4 < 6 images) is kept whole.
    assert len(ds.train_x) == 2 * (2 + 2 + 1) + 4
    by_name = Counter(os.path.relpath(d.impath, tmp_path) for d in ds.train_x)
    assert by_name[os.path.join("images", "d3", "a", "train_0.jpg")] == 2
    assert Counter(d.domainname for d in ds.train_x) == {"d1": 4 + 2, "d2": 4 + 2, "d3": 2}
    c_train = {d.impath for d in train if d.classname == "c"}
    assert c_train <= {d.impath for d in ds.train_x}


def test_reference_balance_on_lists():
    items = [Datum(f"{dom}/{cls}/{i}", CLASSES.index(cls), int(dom[1]) - 1, cls, dom)
             for dom, cls, n in TRAIN for i in range(n)]
    for seed in range(5):
        got = sample_reference_balance(items, 6, random.Random(seed))
        assert got == original_balance(items, 6, random.Random(seed))
    # Every label short: every item, grouped by label, nothing drawn.
    assert sample_reference_balance(items, 100, random.Random(0)) == \
        [d for cls in CLASSES for d in items if d.classname == cls]
    assert sample_reference_balance([], 6, random.Random(0)) == []
    assert sample_reference_balance(items, -1, random.Random(0)) == items


def test_class_balanced_keeps_short_classes_and_errors_on_missing_ones(tmp_path):
    write_tree(str(tmp_path / "t"))
    random.seed(5)
    ds = build_dataset(domain_folder_cfg(tmp_path / "t", "class_balanced"))
    assert Counter(d.classname for d in ds.train_x) == {"a": 6, "b": 6, "c": 4}  # c: all it has
    # A class with no training image at all is an error under both samplers.
    write_tree(str(tmp_path / "u"), train=[t for t in TRAIN if t[1] != "c"])
    for sampler in ("class_balanced", "reference_balance"):
        random.seed(5)
        with pytest.raises(DatasetError, match=r"has no image of class\(es\) 2 \(c\)"):
            build_dataset(domain_folder_cfg(tmp_path / "u", sampler))


# ------------------------------------------------------------------ VLCS validation

def write_vlcs(root, per=8):
    """A VLCS tree with ``per`` val (and train) images per (source domain, class): 24 per class."""
    classes = ("bird", "car", "chair", "dog", "person")
    split = {"train": [], "val": [], "test": []}
    for domain in ("CALTECH", "LABELME", "PASCAL", "SUN"):
        for label, cls in enumerate(classes):
            for key in ("train", "val") if domain != "SUN" else ("test",):
                for i in range(per):
                    rel = f"{domain}/{cls}/{key}_{i}.jpg"
                    path = os.path.join(root, "VLCS", "images", rel)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    open(path, "wb").close()
                    split[key].append([rel, label, cls])
    with open(os.path.join(root, "VLCS", "test_on_sun.json"), "w") as f:
        json.dump(split, f)


def vlcs(root, yaml="VLCS.yaml", seed=1, **keys):
    cfg = get_cfg_default()
    merge_from_file(cfg, os.path.join(DATASETS, yaml))
    cfg.DATASET.ROOT = str(root)
    cfg.TEST_ENV = "test_on_sun.json"
    cfg.SEED = seed
    for key, value in keys.items():
        cfg.DATASET[key] = value
    random.seed(seed)
    return build_dataset(cfg)


@pytest.mark.parametrize("yaml", ["VLCS.yaml", "VLCS_DTD.yaml", "VLCS_food101.yaml", "VLCS_Caltech101.yaml"])
def test_vlcs_val_is_16_per_class(tmp_path, yaml):
    write_vlcs(str(tmp_path))
    for shots in (1, -1, 16):
        ds = vlcs(tmp_path, yaml, NUM_SHOTS=shots, OOD_SETS=[])
        assert Counter(d.label for d in ds.val) == {label: 16 for label in range(5)}
        assert Counter(d.label for d in ds.train_x) == {label: 24 if shots < 1 else shots for label in range(5)}


def test_vlcs_at_16_shots_is_unchanged(tmp_path):
    """VAL_SHOTS 16 is what VAL_SHOTS -1 (NUM_SHOTS per class) gave at the default K = 16."""
    write_vlcs(str(tmp_path))
    new = vlcs(tmp_path, NUM_SHOTS=16)
    old = vlcs(tmp_path, NUM_SHOTS=16, VAL_SHOTS=-1)
    for key in ("train_x", "val", "test"):
        assert [d.impath for d in getattr(new, key)] == [d.impath for d in getattr(old, key)]
    assert len(vlcs(tmp_path, NUM_SHOTS=1, VAL_SHOTS=-1).val) == 5  # the old rule at K = 1


# ------------------------------------------------------------------ open-set picks under reference

def original_open_set_pick(root, seed, per_class):
    """The original's DTD pick in its own --eval-only run (NUM_SHOTS -1, so no draw before it): the
    zhou train + val + test lists pooled, then per label (first appearance) random.sample of
    ``per_class`` from Python's random seeded with SEED."""
    with open(os.path.join(root, "dtd", "split_zhou_DescribableTextures.json")) as f:
        split = json.load(f)
    items = [(os.path.join(root, "dtd", "images", cls, os.path.basename(rel)), label)
             for key in ("train", "val", "test") for rel, label, cls in split[key]]
    rng = random.Random(seed)
    out = []
    for label in dict.fromkeys(label for _, label in items):
        group = [path for path, lab in items if lab == label]
        out += rng.sample(group, per_class) if len(group) >= per_class else group
    return out


def pacs(root, sets, protocol="reference", seed=1, **keys):
    cfg = get_cfg_default()
    merge_from_file(cfg, os.path.join(DATASETS, "PACS.yaml"))
    cfg.DATASET.ROOT = str(root)
    cfg.TEST_ENV = "test_on_sketch.json"
    cfg.SEED = seed
    cfg.DATASET.OOD_SETS = list(sets)
    cfg.DATASET.OOD_PER_CLASS = 3
    cfg.DATASET.NUM_SHOTS = 2  # few-shot draws from Python's random precede the open-set sets
    cfg.TEST.OOD_PROTOCOL = protocol
    for key, value in keys.items():
        cfg.DATASET[key] = value
    random.seed(seed)
    ds = build_dataset(cfg)
    return ds, random.getstate()


@pytest.mark.parametrize("protocol", ["reference", "standard"])
def test_open_set_picks_do_not_depend_on_the_other_sets(synthetic_root, protocol):
    alone, state_alone = pacs(synthetic_root, ["DTD"], protocol)
    after, state_after = pacs(synthetic_root, ["Food101", "DTD"], protocol)
    last, _ = pacs(synthetic_root, ["Caltech101", "Food101", "DTD"], protocol)
    dtd = [d.impath for d in alone.ood["DTD"]]
    assert len(dtd) == 5 * 3
    assert [d.impath for d in after.ood["DTD"]] == dtd == [d.impath for d in last.ood["DTD"]]
    assert [d.impath for d in after.ood["Food101"]] == [d.impath for d in last.ood["Food101"]]
    # Loading open-set sets leaves Python's global RNG where the few-shot draws left it.
    _, state_none = pacs(synthetic_root, [], protocol)
    assert state_alone == state_after == state_none
    if protocol == "reference":
        assert dtd == original_open_set_pick(synthetic_root, 1, 3)
        # The pick does not depend on the few-shot draws either (the original's eval runs drew none).
        other, _ = pacs(synthetic_root, ["DTD"], protocol, NUM_SHOTS=3, FEWSHOT_SAMPLER="reference_balance")
        assert [d.impath for d in other.ood["DTD"]] == dtd
        assert original_open_set_pick(synthetic_root, 2, 3) == [
            d.impath for d in pacs(synthetic_root, ["DTD"], protocol, seed=2)[0].ood["DTD"]]


def test_reference_class_balanced_draw_is_python_random_after_seeding():
    """A seeded ``random.Random(S)`` and ``random.seed(S)`` then the global module draw the same."""
    items = [Datum(f"x/{i}", i % 4) for i in range(40)]
    random.seed(7)
    global_draw = sample_class_balanced(items, 3, random)
    assert sample_class_balanced(items, 3, random.Random(7)) == global_draw
