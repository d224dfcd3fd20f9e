"""``_BASE_`` inheritance of config YAMLs, and the shape of the shipped trainer configs."""
import glob
import os

import pytest
import yaml

from croft.config import ConfigError, get_cfg_default, merge_from_file
from croft.config.merge import config_layers
from croft.sweep.grid import GridError, read_grid_tree

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINER_YAMLS = sorted(glob.glob(os.path.join(REPO, "configs", "trainers", "*", "*.yaml")))
DATASET_YAMLS = sorted(glob.glob(os.path.join(REPO, "configs", "datasets", "*.yaml")))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def merged(path):
    cfg = get_cfg_default()
    merge_from_file(cfg, path)
    return cfg


# ------------------------------------------------------------------ merge_from_file with _BASE_

def test_base_is_merged_then_overridden(tmp_path):
    write(tmp_path / "base.yaml", "OPTIM:\n  LR: 0.5\n  MAX_EPOCH: 30\nDATASET:\n  NUM_SHOTS: 4\n")
    child = write(tmp_path / "child.yaml", "_BASE_: base.yaml\nOPTIM:\n  MAX_EPOCH: 100\n")
    cfg = merged(child)
    assert cfg.OPTIM.MAX_EPOCH == 100  # the file's own key wins
    assert cfg.OPTIM.LR == 0.5 and cfg.DATASET.NUM_SHOTS == 4  # the rest comes from the base
    assert "_BASE_" not in cfg


def test_base_keeps_int_to_float_coercion_and_names_the_base_in_errors(tmp_path):
    write(tmp_path / "base.yaml", "TRAINER:\n  CRoFT:\n    lambda1: 15\n")
    cfg = merged(write(tmp_path / "child.yaml", "_BASE_: base.yaml\n"))
    assert cfg.TRAINER.CRoFT.lambda1 == 15.0 and isinstance(cfg.TRAINER.CRoFT.lambda1, float)
    write(tmp_path / "bad_base.yaml", "DATASET:\n  NUMSHOTS: 4\n")
    child = write(tmp_path / "child2.yaml", "_BASE_: bad_base.yaml\n")
    with pytest.raises(ConfigError, match=r"bad_base.yaml \(base of .*child2.yaml\): unknown config key 'DATASET.NUMSHOTS'"):
        merged(child)


def test_relative_path_resolves_from_the_including_files_folder(tmp_path, monkeypatch):
    write(tmp_path / "shared" / "clip.yaml", "INPUT:\n  INTERPOLATION: bicubic\n")
    # A decoy next to the working folder: a path relative to the cwd would pick it.
    write(tmp_path / "cwd" / "shared" / "clip.yaml", "INPUT:\n  INTERPOLATION: nearest\n")
    child = write(tmp_path / "methods" / "m" / "a.yaml", "_BASE_: ../../shared/clip.yaml\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert merged(child).INPUT.INTERPOLATION == "bicubic"
    # The including file may itself be named by a relative path.
    monkeypatch.chdir(tmp_path)
    assert merged(os.path.join("methods", "m", "a.yaml")).INPUT.INTERPOLATION == "bicubic"


def test_list_of_bases_merged_in_order(tmp_path):
    write(tmp_path / "a.yaml", "OPTIM:\n  LR: 0.1\n  MAX_EPOCH: 7\n")
    write(tmp_path / "b.yaml", "OPTIM:\n  LR: 0.2\nDATASET:\n  NUM_SHOTS: 2\n")
    cfg = merged(write(tmp_path / "c.yaml", "_BASE_: [a.yaml, b.yaml]\n"))
    assert cfg.OPTIM.LR == 0.2 and cfg.OPTIM.MAX_EPOCH == 7 and cfg.DATASET.NUM_SHOTS == 2
    cfg = merged(write(tmp_path / "d.yaml", "_BASE_:\n  - b.yaml\n  - a.yaml\n"))
    assert cfg.OPTIM.LR == 0.1


def test_nested_bases_three_levels(tmp_path):
    write(tmp_path / "l0" / "root.yaml", "OPTIM:\n  LR: 0.1\n  MAX_EPOCH: 1\n  NAME: sgd\n")
    write(tmp_path / "l1" / "mid.yaml", "_BASE_: ../l0/root.yaml\nOPTIM:\n  LR: 0.2\n  MAX_EPOCH: 2\n")
    write(tmp_path / "l2" / "leaf.yaml", "_BASE_: ../l1/mid.yaml\nOPTIM:\n  LR: 0.3\n")
    top = write(tmp_path / "top.yaml", "_BASE_: l2/leaf.yaml\nDATASET:\n  NUM_SHOTS: 3\n")
    cfg = merged(top)
    assert (cfg.OPTIM.NAME, cfg.OPTIM.MAX_EPOCH, cfg.OPTIM.LR, cfg.DATASET.NUM_SHOTS) == ("sgd", 2, 0.3, 3)
    files = [os.path.basename(source.split(" ")[0]) for source, _ in config_layers(top)]
    assert files == ["root.yaml", "mid.yaml", "leaf.yaml", "top.yaml"]


def test_cycle_is_refused_naming_the_chain(tmp_path):
    write(tmp_path / "b.yaml", "_BASE_: a.yaml\n")
    a = write(tmp_path / "a.yaml", "_BASE_: b.yaml\nOPTIM:\n  LR: 0.1\n")
    cfg = get_cfg_default()
    with pytest.raises(ConfigError, match=r"config cycle: \S*a\.yaml -> \S*b\.yaml -> \S*a\.yaml$"):
        merge_from_file(cfg, a)
    assert cfg.OPTIM.LR == get_cfg_default().OPTIM.LR  # nothing merged
    selfref = write(tmp_path / "self.yaml", "_BASE_: ./self.yaml\n")
    with pytest.raises(ConfigError, match=r"config cycle: \S*self\.yaml -> \S*self\.yaml$"):
        merged(selfref)


def test_same_base_twice_is_not_a_cycle(tmp_path):
    write(tmp_path / "common.yaml", "OPTIM:\n  LR: 0.1\n")
    write(tmp_path / "x.yaml", "_BASE_: common.yaml\nOPTIM:\n  MAX_EPOCH: 3\n")
    write(tmp_path / "y.yaml", "_BASE_: common.yaml\nDATASET:\n  NUM_SHOTS: 5\n")
    cfg = merged(write(tmp_path / "z.yaml", "_BASE_: [x.yaml, y.yaml]\n"))
    assert (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.DATASET.NUM_SHOTS) == (0.1, 3, 5)


def test_missing_base_names_the_base_and_the_including_file(tmp_path):
    child = write(tmp_path / "sub" / "child.yaml", "_BASE_: ../nowhere/base.yaml\n")
    with pytest.raises(ConfigError) as info:
        merged(child)
    message = str(info.value)
    assert "base config not found" in message and "../nowhere/base.yaml" in message
    assert "child.yaml" in message and os.path.join(str(tmp_path), "nowhere", "base.yaml") in message
    # A missing base two levels down still names the file that included it.
    write(tmp_path / "mid.yaml", "_BASE_: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"mid\.yaml: base config not found: 'gone\.yaml'"):
        merged(write(tmp_path / "top.yaml", "_BASE_: mid.yaml\n"))


@pytest.mark.parametrize("value", ["3", "{a: b.yaml}", "[a.yaml, 3]", "''", "[[a.yaml]]", "true"])
def test_bad_base_type_names_the_file(tmp_path, value):
    write(tmp_path / "a.yaml", "OPTIM:\n  LR: 0.1\n")
    bad = write(tmp_path / "bad.yaml", f"_BASE_: {value}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: '_BASE_' must be a path or a list of paths"):
        merged(bad)


def test_base_only_at_the_top_level(tmp_path):
    write(tmp_path / "a.yaml", "OPTIM:\n  LR: 0.1\n")
    bad = write(tmp_path / "bad.yaml", "OPTIM:\n  _BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config key 'OPTIM\._BASE_'"):
        merged(bad)


def test_files_without_base_are_unchanged(tmp_path):
    empty = write(tmp_path / "empty.yaml", "")
    assert merged(empty).dump() == get_cfg_default().dump()
    with pytest.raises(ConfigError, match="config file not found"):
        merged(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"list.yaml: expected a mapping"):
        merged(write(tmp_path / "list.yaml", "- a\n- b\n"))


# ------------------------------------------------------------------ sweep grids inherit the same way

def test_a_grid_merges_mappings_of_its_bases_in_order_and_replaces_the_rest(tmp_path):
    write(tmp_path / "base" / "root.yaml", "trainer: CoOp\nfixed: {OPTIM.LR: 0.1, SEED: 1}\naxes: {seed: [1, 2]}\n")
    write(tmp_path / "base" / "mid.yaml", "_BASE_: root.yaml\nfixed: {OPTIM.LR: 0.2}\naxes: {seed: [3]}\n")
    top = write(tmp_path / "top.yaml", "_BASE_: base/mid.yaml\nfixed: {OPTIM.MAX_EPOCH: 5}\n")
    assert read_grid_tree(top) == {"trainer": "CoOp", "fixed": {"OPTIM.LR": 0.2, "SEED": 1, "OPTIM.MAX_EPOCH": 5},
                                   "axes": {"seed": [3]}}


@pytest.mark.parametrize("files, top, message", [
    ({"a.yaml": "_BASE_: b.yaml\n", "b.yaml": "_BASE_: a.yaml\n"}, "a.yaml",
     r"grid cycle: \S*a\.yaml -> \S*b\.yaml -> \S*a\.yaml$"),
    ({"mid.yaml": "_BASE_: gone.yaml\n", "top.yaml": "_BASE_: mid.yaml\n"}, "top.yaml",
     r"mid\.yaml: base grid not found: 'gone\.yaml'"),
    ({"bad.yaml": "_BASE_: [a.yaml, 3]\n"}, "bad.yaml", r"bad\.yaml: '_BASE_' must be a path or a list of paths"),
    ({"list.yaml": "- a\n"}, "list.yaml", r"list\.yaml: expected a mapping at the top level \(trainer, "),
])
def test_a_grid_s_bases_are_checked_as_a_config_s(tmp_path, files, top, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(GridError, match=message):
        read_grid_tree(str(tmp_path / top))


# ------------------------------------------------------------------ the shipped trainer configs

def _layers(path):
    """[(file, {key: value})] in merge order, the file itself last (values as YAML wrote them)."""
    return [(source.split(" (base of ")[0], dict(items)) for source, items in config_layers(path)]


def _repeats(path):
    """Keys that ``path`` sets to the value its (transitive) bases already give them."""
    layers = _layers(path)
    inherited = {}
    for _, items in layers[:-1]:
        inherited.update(items)
    own = layers[-1][1]
    return sorted(f"{key}: {own[key]!r}" for key in own if key in inherited and inherited[key] == own[key])


def test_trainer_configs_exist():
    names = {os.path.relpath(p, os.path.join(REPO, "configs", "trainers")) for p in TRAINER_YAMLS}
    for method in ("CRoFT", "CoOp", "CoCoOp", "CLIP_Adapter", "TIP_ADAPTER", "DPLCLIP"):
        assert {f"{method}/rn50_ep30.yaml", f"{method}/ViT_ep30.yaml"} <= names
    assert {"CRoFT/rn50_ep100.yaml", "CRoFT/ViT_ep100.yaml", "ZeroshotCLIP/rn50.yaml", "ZeroshotCLIP/vit_b16.yaml",
            "ZeroshotCLIP/vit_b32.yaml"} <= names
    for cfg in ("rn50_ep30", "ViT_ep30"):
        for family in ("pacs", "vlcs"):
            assert f"TIP_ADAPTER/{cfg}_{family}.yaml" in names
    for cfg in ("rn50_ep30", "ViT_ep30", "rn50_ep100", "ViT_ep100"):
        for family in ("pacs", "vlcs"):
            assert f"CRoFT/{cfg}_{family}.yaml" in names


def test_repeat_check_can_fail(tmp_path):
    write(tmp_path / "base.yaml", "OPTIM:\n  LR: 0.002\n  MAX_EPOCH: 30\n")
    write(tmp_path / "mid.yaml", "_BASE_: base.yaml\nOPTIM:\n  MAX_EPOCH: 50\n")
    leaf = write(tmp_path / "leaf.yaml", "_BASE_: mid.yaml\nOPTIM:\n  LR: 0.002\n  MAX_EPOCH: 30\n")
    # LR repeats the grand-parent's value; MAX_EPOCH 30 is needed (mid.yaml changed it to 50).
    assert _repeats(leaf) == ["OPTIM.LR: 0.002"]


@pytest.mark.parametrize("path", TRAINER_YAMLS, ids=lambda p: os.path.relpath(p, REPO))
def test_trainer_yaml_repeats_nothing_from_its_bases(path):
    assert _repeats(path) == [], f"{path} repeats values its bases already set"


def test_shared_recipe_lives_in_the_bases():
    """The shared blocks are written once: no two trainer YAMLs both set INPUT/OPTIM/... themselves."""
    owners = {}
    for path in TRAINER_YAMLS:
        with open(path) as f:
            tree = yaml.safe_load(f) or {}
        for block in ("INPUT", "TEST"):
            if block in tree:
                owners.setdefault(block, []).append(os.path.relpath(path, REPO))
    assert owners == {"INPUT": ["configs/trainers/base/clip.yaml"], "TEST": ["configs/trainers/base/clip.yaml"]}
    assert merged(os.path.join(REPO, "configs", "trainers", "base", "clip.yaml")).TEST.FINAL_MODEL == "best_val"


@pytest.mark.parametrize("path", TRAINER_YAMLS, ids=lambda p: os.path.relpath(p, REPO))
def test_trainer_yaml_comments_and_floats(path):
    with open(path) as f:
        text = f.read()
    assert text.startswith("# "), f"{path}: start with a one-line comment saying what the file is"
    for word in ("spec §", "DESIGN", "§"):
        assert word not in text, f"{path}: cites {word!r}"
    defaults = get_cfg_default()
    for key, value in _layers(path)[-1][1].items():
        node = defaults
        for part in key.split("."):
            node = node[part]
        if isinstance(node, float):
            # Plain yacs rejects an int (or "1e-5", a string to YAML) for a float key.
            assert isinstance(value, float), f"{path}: write {key} as a float with a decimal point, got {value!r}"


@pytest.mark.parametrize("dataset", DATASET_YAMLS, ids=os.path.basename)
def test_every_trainer_yaml_merges_on_every_dataset_yaml(dataset):
    for path in TRAINER_YAMLS:
        cfg = get_cfg_default()
        merge_from_file(cfg, dataset)
        merge_from_file(cfg, path)
        if cfg.MODEL.BACKBONE.NAME:  # a runnable config, not a fragment such as defaults.yaml
            assert cfg.INPUT.INTERPOLATION == "bicubic" and cfg.DATALOADER.TEST.BATCH_SIZE == 100
        # Trainer YAMLs set no dataset keys: the dataset YAML's choices survive.
        fresh = get_cfg_default()
        merge_from_file(fresh, dataset)
        assert cfg.DATASET == fresh.DATASET
        assert cfg.TRAINER.CRoFT.EDR_WCCF_BRANCH == fresh.TRAINER.CRoFT.EDR_WCCF_BRANCH
        assert cfg.TRAINER.CRoFT.EDR_REDUCTION == fresh.TRAINER.CRoFT.EDR_REDUCTION


def test_setup2_configs_hold_the_reference_values():
    def value(name, key):
        node = merged(os.path.join(REPO, "configs", "trainers", name))
        for part in key.split("."):
            node = node[part]
        return node

    for cfg in ("rn50_ep30", "ViT_ep30"):
        for family in ("pacs", "vlcs"):
            assert value(f"TIP_ADAPTER/{cfg}_{family}.yaml", "TRAINER.TIP_ADAPTER.BETA") == 10.0
        assert value(f"TIP_ADAPTER/{cfg}.yaml", "TRAINER.TIP_ADAPTER.BETA") == 1.17
    for cfg in ("rn50_ep30", "ViT_ep30", "rn50_ep100", "ViT_ep100"):
        assert value(f"CRoFT/{cfg}_pacs.yaml", "TRAINER.CRoFT.gen_step") == (0 if cfg.startswith("rn50") else 1)
        assert value(f"CRoFT/{cfg}_vlcs.yaml", "TRAINER.CRoFT.gen_step") == 5
        for family in ("pacs", "vlcs"):
            assert value(f"CRoFT/{cfg}_{family}.yaml", "TRAINER.CRoFT.lambda1") == 15.0
            assert value(f"CRoFT/{cfg}_{family}.yaml", "OPTIM.MAX_EPOCH") == value(f"CRoFT/{cfg}.yaml", "OPTIM.MAX_EPOCH")
