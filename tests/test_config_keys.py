"""Every config key has an effect or is rejected; the datasets' config checks (check_cfg)."""
import glob
import io
import os
import random
import re
import shutil
import tokenize

import pytest
from yacs.config import CfgNode as CN

from croft.config import ConfigError, get_cfg_default, merge_from_list
from croft.config.unsupported import UNSUPPORTED_KEYS, check_unsupported
from croft.data.datasets import DATASET_REGISTRY, build_dataset
from croft.data.splits import DEFAULT_VAL_FRACTION, DatasetError, make_domain_splits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "croft")
NOT_SCANNED = {os.path.join("croft", "config", "defaults.py"), os.path.join("croft", "config", "unsupported.py")}
# Keys that the engine is being changed to read; remove a key from here once the engine reads it.


def leaf_keys(node, prefix=""):
    for name, value in node.items():
        if isinstance(value, CN):
            yield from leaf_keys(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


ALL_KEYS = list(leaf_keys(get_cfg_default()))


def _code_only(text, strings=True):
    """``text`` with comments and docstrings (with ``strings=False``: every string literal) blanked,
    and assignment targets (``cfg.X = ...``) removed, so that only reads remain."""
    lines = text.splitlines(keepends=True)
    spans = []
    previous = tokenize.ENCODING
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.COMMENT:
            spans.append((tok.start, tok.end))
        elif tok.type == tokenize.STRING and not strings:
            spans.append((tok.start, tok.end))
        elif tok.type == tokenize.STRING and previous in (tokenize.ENCODING, tokenize.NEWLINE, tokenize.INDENT,
                                                           tokenize.DEDENT):
            following = next((t for t in tokens[i + 1:] if t.type not in (tokenize.NL, tokenize.COMMENT)), None)
            if following is None or following.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                spans.append((tok.start, tok.end))
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            previous = tok.type
    for (row0, col0), (row1, col1) in reversed(spans):
        if row0 == row1:
            line = lines[row0 - 1]
            lines[row0 - 1] = line[:col0] + " " * (col1 - col0) + line[col1:]
        else:
            lines[row0 - 1] = lines[row0 - 1][:col0] + "\n"
            for row in range(row0, row1 - 1):
                lines[row] = "\n"
            lines[row1 - 1] = " " * col1 + lines[row1 - 1][col1:]
    code = "".join(lines)
    return re.sub(r"(?m)^(\s*)[A-Za-z_][\w.]*(\[[^\]\n]*\])?\s*=(?!=)", r"\1", code)


def _sources(strings):
    out = {}
    for path in sorted(glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, REPO)
        if rel not in NOT_SCANNED:
            with open(path, encoding="utf-8") as f:
                out[rel] = _code_only(f.read(), strings)
    return out


SOURCES = _sources(strings=True)
# Without string literals: a help text or an error message that names a key does not read it.
SOURCES_NO_STRINGS = _sources(strings=False)


def readers(key, sources=SOURCES):
    """Modules of the croft package that read ``key``: one that names the whole dotted path, or one
    that names its parent group (e.g. ``TRAINER.COOP``, whose module then reads ``cfg.PREC``, or
    ``OPTIM``, read as ``optim_cfg.LR``) and the attribute ``.LEAF``. Comments and docstrings do
    not count."""
    parent, _, leaf = key.rpartition(".")
    whole = re.compile(r"(?<![\w])" + re.escape(key) + r"\b")
    attr = re.compile(r"\." + re.escape(leaf) + r"\b")
    group = re.compile(r"(?<![\w])" + re.escape(parent) + r"\b") if parent else None
    return [path for path, code in sources.items()
            if whole.search(code) or (attr.search(code) and (group is None or group.search(code)))]


def non_default_value(value):
    """A value of the same type as the default ``value`` that differs from it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value + 0.25
    if isinstance(value, str):
        return value + "_other"
    if isinstance(value, (list, tuple)):
        return type(value)(list(value) + ["other"])
    raise TypeError(f"no non-default value for {value!r}")


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _key_params():
    for key in ALL_KEYS:
        yield pytest.param(key, id=key)


@pytest.mark.parametrize("key", _key_params())
def test_every_key_has_an_effect_or_is_rejected(key):
    if key in UNSUPPORTED_KEYS:
        cfg = get_cfg_default()
        check_unsupported(cfg)
        value = non_default_value(_get(cfg, key))
        merge_from_list(cfg, [key, repr(value) if not isinstance(value, str) else value])
        assert _get(cfg, key) == value
        with pytest.raises(ConfigError) as info:
            check_unsupported(cfg)
        message = str(info.value)
        assert f"'{key}' is a Dassl key that croft does not support" in message
        assert repr(value) in message and "Remove it from the config or the command line" in message
    else:
        assert readers(key), f"config key {key} is neither read by the croft package nor in UNSUPPORTED_KEYS"


def test_unsupported_keys_exist_and_are_not_read():
    for key in UNSUPPORTED_KEYS:
        assert key in ALL_KEYS, f"{key} is not a config key"
        found = readers(key, SOURCES_NO_STRINGS)
        assert not found, f"{key} is read by {found}: if croft honours it now, remove it from UNSUPPORTED_KEYS"
    assert not {"DATASET.SUBSAMPLE_CLASSES", "DATASET.VAL_PERCENT", "TRAIN.CHECKPOINT_FREQ", "TEST.NO_TEST",
                "TEST.SPLIT"} & set(UNSUPPORTED_KEYS)


def test_the_heuristic_ignores_comments_docstrings_and_assignments():
    code = _code_only('"""DATASET.A is documented."""\n# cfg.DATASET.B\ncfg.MODEL.C = 1\nx = cfg.DATASET.D\n'
                      'def f():\n    """TEST.E"""\n    return "TEST.F"\n')
    for hidden in ("DATASET.A", "DATASET.B", "MODEL.C", "TEST.E"):
        assert hidden not in code
    assert "cfg.DATASET.D" in code and '"TEST.F"' in code
    assert "TEST.F" not in _code_only('def f():\n    return "TEST.F"\n', strings=False)


def test_check_unsupported_lists_every_key_and_accepts_croft_behaviour():
    cfg = get_cfg_default()
    # What croft does anyway: the defaults, spelled out.
    merge_from_list(cfg, ["DATALOADER.TRAIN_X.SAMPLER", "RandomSampler", "DATALOADER.TEST.SAMPLER",
                          "SequentialSampler", "TEST.EVALUATOR", "Classification", "TRAINER.CRoFT.PREC", "fp32"])
    check_unsupported(cfg)
    merge_from_list(cfg, ["INPUT.NO_TRANSFORM", "True", "DATALOADER.TRAIN_X.SAMPLER", "RandomDomainSampler",
                          "MODEL.HEAD.NAME", "mlp"])
    with pytest.raises(ConfigError) as info:
        check_unsupported(cfg)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("'INPUT.NO_TRANSFORM' is a Dassl key that croft does not support (got True; "
                               "default False): ")
    assert "'DATALOADER.TRAIN_X.SAMPLER'" in lines[1] and "'RandomDomainSampler'" in lines[1]
    assert "'MODEL.HEAD.NAME'" in lines[2] and "'mlp'" in lines[2]


# ------------------------------------------------------------------ DATASET.VAL_PERCENT

def test_val_percent_default_is_the_folder_split_fraction():
    assert get_cfg_default().DATASET.VAL_PERCENT == DEFAULT_VAL_FRACTION == 0.2


def _pacs_folders(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(os.path.join(synthetic_root, "PACS"), root / "PACS")
    for path in glob.glob(str(root / "PACS" / "test_on_*.json")):
        os.remove(path)
    return str(root)


def _pacs_cfg(root, **dataset):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = root
    cfg.DATASET.NAME = "PACS"
    cfg.TEST_ENV = "test_on_photo.json"
    for key, value in dataset.items():
        cfg.DATASET[key] = value
    return cfg


def test_val_percent_sets_the_folder_layout_split(synthetic_root, tmp_path):
    root = _pacs_folders(synthetic_root, tmp_path)
    random.seed(1)
    default = build_dataset(_pacs_cfg(root))
    expected = make_domain_splits(os.path.join(root, "PACS"))["photo"]
    assert len(default.val) == len(expected["val"]) and len(default.train_full) == len(expected["train"])
    random.seed(1)
    half = build_dataset(_pacs_cfg(root, VAL_PERCENT=0.5))
    assert half.split_source.startswith("folder layout")
    assert len(half.val) == len(make_domain_splits(os.path.join(root, "PACS"), 0.5)["photo"]["val"]) > len(default.val)


def test_val_percent_with_a_split_file_is_an_error(synthetic_root):
    with pytest.raises(DatasetError, match=r"DATASET\.VAL_PERCENT 0\.3 has no effect: the split comes from .*"
                                           r"test_on_photo\.json"):
        build_dataset(_pacs_cfg(synthetic_root, VAL_PERCENT=0.3))


# ------------------------------------------------------------------ check_cfg of every dataset

def dataset_cfg(name, **keys):
    """A config that passes ``check_cfg`` of ``name`` (no file is read: DATASET.ROOT does not exist);
    ``keys`` override dotted keys (``__`` for the dots)."""
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = "/nonexistent/data"
    cfg.DATASET.NAME = name
    if name.startswith("ImageNet"):
        cfg.SEED = 1
    else:
        cfg.TEST_ENV = "test_on_sketch.json" if name != "VLCS" else "test_on_sun.json"
    for key, value in keys.items():
        *path, leaf = key.split("__")
        node = cfg
        for part in path:
            node = node[part]
        node[leaf] = value
    return cfg


def without_file_access(monkeypatch, fn, *args):
    """``fn(*args)`` while every way of reading the file system (open, stat, listing) is refused; returns
    ``(result, the refused access or None)`` (asserted on afterwards, with the file system back)."""
    import builtins

    class FileAccess(Exception):
        pass

    def refuse(what):
        def call(path, *args, **kwargs):
            raise FileAccess(f"{what}({path!r})")
        return call

    with monkeypatch.context() as m:
        for module, name in ((builtins, "open"), (io, "open"), (os, "stat"), (os, "lstat"), (os, "listdir"),
                             (os, "scandir"), (os, "access")):
            m.setattr(module, name, refuse(name))
        try:
            return fn(*args), None
        except FileAccess as exc:
            return None, str(exc)


@pytest.mark.parametrize("name", ["PACS", "VLCS", "DomainFolder", "ImageNet46", "ImageNetOpenSet"])
def test_check_cfg_reads_no_file(name, monkeypatch):
    cls = DATASET_REGISTRY.get(name)
    assert without_file_access(monkeypatch, os.path.isdir, REPO) == (None, f"stat({REPO!r})")  # the guard works
    result, access = without_file_access(monkeypatch, cls.check_cfg,
                                         dataset_cfg(name, DATASET__OOD_SETS=["dtd", "Caltech101"]))
    assert access is None, f"{name}.check_cfg read the disk: {access}"
    assert result is None
    with pytest.raises(ConfigError, match=r"DATASET\.NUM_SHOTS"):  # and it checks values meanwhile
        without_file_access(monkeypatch, cls.check_cfg, dataset_cfg(name, DATASET__NUM_SHOTS=2.5))


COMMON_ERRORS = [
    (dict(DATASET__ROOT=""), r"DATASET\.ROOT is not set"),
    (dict(DATASET__SUBSAMPLE_CLASSES="half"),
     r"'DATASET\.SUBSAMPLE_CLASSES': 'half'; expected one of \['all', 'base', 'new'\]"),
    (dict(DATASET__VAL_PERCENT=1.0), r"'DATASET\.VAL_PERCENT': 1\.0; expected a fraction in \(0, 1\)"),
    (dict(DATASET__VAL_PERCENT=0.0), r"'DATASET\.VAL_PERCENT': 0\.0; expected a fraction in \(0, 1\)"),
    (dict(DATASET__NUM_SHOTS=2.5), r"'DATASET\.NUM_SHOTS': 2\.5; expected an int"),
    (dict(DATASET__VAL_SHOTS="4"), r"'DATASET\.VAL_SHOTS': '4'; expected an int"),
    (dict(DATASET__OOD_PER_CLASS=1.5), r"'DATASET\.OOD_PER_CLASS': 1\.5; expected an int"),
    (dict(DATASET__BASE_RATIO=0.0), r"'DATASET\.BASE_RATIO': 0\.0; expected a number in \(0, 1\]"),
    (dict(DATASET__BASE_RATIO=1.5), r"'DATASET\.BASE_RATIO': 1\.5; expected a number in \(0, 1\]"),
    (dict(DATASET__OOD_SETS=["Flowers"]), r"unknown open-set dataset 'Flowers' \(DATASET\.OOD_SETS\); known: DTD, "
                                          r"Food101, Caltech101"),
    (dict(DATASET__OOD_SETS=["dtd", "DTD"]), r"'DATASET\.OOD_SETS': \['dtd', 'DTD'\] names DTD twice"),
    (dict(DATASET__OOD_EXCLUDE="OfficeHome"), r"unknown open-set exclusion list 'OfficeHome' \(DATASET\.OOD_EXCLUDE\)"),
    (dict(TEST__OOD_PROTOCOL="paper"), r"'TEST\.OOD_PROTOCOL': 'paper'; expected one of \['standard', 'reference'\]"),
]


@pytest.mark.parametrize("name", ["PACS", "VLCS", "DomainFolder", "ImageNet46"])
@pytest.mark.parametrize("keys,message", COMMON_ERRORS)
def test_check_cfg_common_errors(name, keys, message):
    with pytest.raises(ConfigError, match=message) as info:
        DATASET_REGISTRY.get(name).check_cfg(dataset_cfg(name, **keys))
    assert isinstance(info.value, DatasetError)  # what the readers raised before check_cfg existed


DOMAIN_ERRORS = [
    ("PACS", dict(DATASET__FEWSHOT_SAMPLER="balanced"),
     r"'DATASET\.FEWSHOT_SAMPLER': 'balanced'; expected one of \['class_balanced', 'reference_balance'\]"),
    ("PACS", dict(TEST_ENV="sketch.json"), r"PACS: TEST_ENV 'sketch\.json' should name a split file "
                                           r"test_on_<domain>\.json \(known PACS domains: \['art_painting'"),
    ("DomainFolder", dict(TEST_ENV="on_a"), r"DomainFolder: TEST_ENV 'on_a' should name a split file"),
    ("PACS", dict(TEST_ENV="", DATASET__TARGET_DOMAINS=("photo", "sketch")),
     r"DATASET\.TARGET_DOMAINS must name one held-out domain \(leave-one-domain-out\), got \['photo', 'sketch'\]"),
    ("PACS", dict(TEST_ENV=""), r"PACS: no held-out domain: set TEST_ENV \(e\.g\. test_on_sketch\.json\) or "
                                r"DATASET\.TARGET_DOMAINS \(one of \['art_painting', 'cartoon', 'photo', 'sketch'\]\)"),
    ("DomainFolder", dict(TEST_ENV=""),
     r"DomainFolder: no held-out domain: set TEST_ENV .* or DATASET\.TARGET_DOMAINS"),
    ("PACS", dict(DATASET__TARGET_DOMAINS=("photo",)),
     r"TEST_ENV 'test_on_sketch\.json' holds out 'sketch' but DATASET\.TARGET_DOMAINS is \['photo'\]"),
    ("PACS", dict(TEST_ENV="", DATASET__TARGET_DOMAINS=("clipart",)),
     r"PACS: unknown held-out domain 'clipart' \(from DATASET\.TARGET_DOMAINS \['clipart'\]\); known PACS domains"),
    ("VLCS", dict(TEST_ENV="test_on_photo.json"),
     r"VLCS: unknown held-out domain 'photo' \(from TEST_ENV 'test_on_photo\.json'\); known VLCS domains: \['caltech'"),
    ("PACS", dict(DATASET__SOURCE_DOMAINS=("photo", "Sketch")),
     r"PACS: DATASET\.SOURCE_DOMAINS \['photo', 'Sketch'\]: \['sketch'\] are not source domains; choose from "
     r"\['art_painting', 'cartoon', 'photo'\] \(held-out domain: sketch\)"),
    ("VLCS", dict(DATASET__SOURCE_DOMAINS=("clipart",)), r"VLCS: DATASET\.SOURCE_DOMAINS \['clipart'\]: \['clipart'\]"),
    ("PACS", dict(DATASET__BASE_RATIO=0.5),
     r"PACS: 'DATASET\.BASE_RATIO' has no effect on this dataset \(got 0\.5; default 0\.4\)"),
    ("VLCS", dict(DATASET__IMAGENET_VARIANTS=["imagenet_r"]),
     r"VLCS: 'DATASET\.IMAGENET_VARIANTS' has no effect on this dataset \(got \['imagenet_r'\]"),
    ("DomainFolder", dict(DATASET__IMAGENET_OOD_SAMPLES=50),
     r"DomainFolder: 'DATASET\.IMAGENET_OOD_SAMPLES' has no effect on this dataset \(got 50; default 1000\)"),
    ("ImageNet46", dict(SEED=-1), r"ImageNet46: the base/new class split is drawn from SEED, which is -1; pass --seed"),
    ("ImageNetOpenSet", dict(SEED=-1), r"ImageNetOpenSet: the base/new class split is drawn from SEED"),
    ("ImageNet46", dict(DATASET__IMAGENET_VARIANTS=["imagenet_v2", "imagenet_x"]),
     r"unknown ImageNet variant 'imagenet_x' in DATASET\.IMAGENET_VARIANTS; known: \['imagenet_v2'"),
    ("ImageNet46", dict(DATASET__IMAGENET_OOD_SAMPLES=-2),
     r"'DATASET\.IMAGENET_OOD_SAMPLES': -2; expected -1 \(all\) or an int >= 0"),
    ("ImageNet46", dict(TEST_ENV="test_on_sketch.json"),
     r"ImageNet46: 'TEST_ENV' has no effect on this dataset \(got 'test_on_sketch\.json'; default ''\)"),
    ("ImageNet46", dict(DATASET__VAL_PERCENT=0.3),
     r"ImageNet46: 'DATASET\.VAL_PERCENT' has no effect on this dataset \(got 0\.3; default 0\.2\): .*VAL_SHOTS"),
    ("ImageNet46", dict(DATASET__FEWSHOT_SAMPLER="reference_balance"),
     r"'DATASET\.FEWSHOT_SAMPLER' has no effect on this dataset \(got 'reference_balance'; default 'class_balanced'\)"),
    ("ImageNet46", dict(DATASET__SOURCE_DOMAINS=("imagenet",)), r"'DATASET\.SOURCE_DOMAINS' has no effect"),
    ("ImageNet46", dict(DATASET__TARGET_DOMAINS=("imagenet_r",)), r"'DATASET\.TARGET_DOMAINS' has no effect"),
]


@pytest.mark.parametrize("name,keys,message", DOMAIN_ERRORS)
def test_check_cfg_dataset_errors(name, keys, message):
    with pytest.raises(ConfigError, match=message) as info:
        DATASET_REGISTRY.get(name).check_cfg(dataset_cfg(name, **keys))
    assert isinstance(info.value, DatasetError)


def test_build_dataset_runs_check_cfg_before_reading_files():
    # The root does not exist: the config error comes first.
    with pytest.raises(ConfigError, match=r"'DATASET\.SUBSAMPLE_CLASSES': 'half'"):
        build_dataset(dataset_cfg("PACS", DATASET__SUBSAMPLE_CLASSES="half"))
    with pytest.raises(FileNotFoundError, match="DATASET.ROOT not found"):
        build_dataset(dataset_cfg("PACS"))
