"""The on-disk feature cache (docs/architecture.md, "Feature cache"; croft/data/feature_cache.py).

End to end on synthetic PACS with the tiny backbone: cached and uncached runs agree, cached
training never runs the image encoder, a second run reuses every entry, corrupt files are
recomputed. Unit level: keys, seeded augmentation, chunk files, concurrent writers.
"""
import glob
import json
import multiprocessing
import os
import shutil
import threading

import pytest
import torch

from croft import trainers  # noqa: F401  (registers the trainers)
from croft.config import get_cfg_default, setup_cfg
from croft.data.images import DatumDataset, EpochBatchSampler, num_train_views, read_image, view_seed
from croft.data.datum import Datum
from croft.data.transforms import build_transform
from croft.data import feature_cache as fc
from croft.data.feature_cache import FeatureCache
from croft.engine.trainer import build_trainer, set_random_seed
from croft.train import build_parser, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4  # percentage points


def croft_args(root, out, cache_dir, *extra):
    # 3 epochs over 2 views (epoch 2 reuses view 0); the reference protocol encodes the open-set
    # images with the training transform; the KNN bank is the training set (test transform).
    return ["--root", str(root), "--seed", "1", "--trainer", "CRoFT",
            "--dataset-config-file", os.path.join(REPO, "configs/datasets/PACS.yaml"),
            "--config-file", os.path.join(REPO, "configs/trainers/CRoFT/rn50_ep30.yaml"), "--backbone", "tiny",
            "--output-dir", str(out), "TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "4",
            "OPTIM.MAX_EPOCH", "3", "CACHE.TRAIN_VIEWS", "2", "DATASET.OOD_SETS", "['DTD']",
            "TEST.OOD_PROTOCOL", "reference", "TEST.KNN_BANK", "train", "DATALOADER.NUM_WORKERS", "0",
            "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False", "CACHE.DIR", str(cache_dir), *extra]


def build(args):
    cfg = setup_cfg(build_parser().parse_args(args))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def leaves(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{prefix}/{k}")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def assert_same_metrics(a, b, tol=TOL):
    assert a["best_epoch"] == b["best_epoch"]
    la = dict(leaves({"closed_set": a["closed_set"], "open_set": a["open_set"]}))
    lb = dict(leaves({"closed_set": b["closed_set"], "open_set": b["open_set"]}))
    assert la.keys() == lb.keys()
    for key, value in la.items():
        assert lb[key] == pytest.approx(value, abs=tol, nan_ok=True), key


def chunk_files(cache_dir):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(cache_dir) for f in files
                  if f.endswith(fc.CHUNK_SUFFIX))


@pytest.fixture(scope="module")
def cold_run(synthetic_root, tmp_path_factory):
    """One cached CRoFT run from an empty cache: (cache dir, its results)."""
    base = tmp_path_factory.mktemp("cache_runs")
    cache = base / "cache"
    assert main(croft_args(synthetic_root, base / "cold", cache)) == 0
    return cache, results(base / "cold")


# ---------------------------------------------------------------------------------------- end to end

def test_cached_run_matches_uncached_run(cold_run, synthetic_root, tmp_path):
    cache, cold = cold_run
    assert cold["timing"]["feature_cache_misses"] > 0 and cold["timing"]["feature_cache_hits"] == 0
    # The online pipeline, with loader workers: augmentation and order do not depend on them.
    unused = tmp_path / "unused_cache"
    out = tmp_path / "uncached"
    assert main(croft_args(synthetic_root, out, unused, "CACHE.ENABLED", "False",
                           "DATALOADER.NUM_WORKERS", "2")) == 0
    online = results(out)
    assert not unused.exists()
    assert online["timing"]["feature_cache_hits"] == 0 and online["timing"]["feature_cache_misses"] == 0
    assert_same_metrics(online, cold)


def test_second_run_reuses_every_entry(cold_run, synthetic_root, tmp_path):
    cache, cold = cold_run
    out = tmp_path / "warm"
    assert main(croft_args(synthetic_root, out, cache)) == 0
    warm = results(out)
    assert warm["timing"]["feature_cache_misses"] == 0
    assert warm["timing"]["feature_cache_hits"] == cold["timing"]["feature_cache_misses"]
    assert_same_metrics(warm, cold, tol=0)


def test_cached_training_never_runs_the_image_encoder(cold_run, synthetic_root, tmp_path):
    # Warm cache: the image encoder is not called at all (train, validation, final evaluation).
    cache, cold = cold_run
    trainer = build(croft_args(synthetic_root, tmp_path / "warm", cache))

    def refuse(images):
        raise AssertionError("the image encoder ran")

    trainer.clip_model.encode_image = refuse
    trainer.train()
    assert_same_metrics(results(tmp_path / "warm"), cold, tol=0)

    # Cold cache: the encoder runs in the encoding passes only, never inside a training update.
    trainer = build(croft_args(synthetic_root, tmp_path / "cold", tmp_path / "fresh_cache",
                               "DATASET.OOD_SETS", "[]"))
    encode, state = trainer.clip_model.encode_image, {"updating": False, "calls": 0}

    def guarded(images):
        assert not state["updating"], "the image encoder ran inside a training update"
        state["calls"] += 1
        return encode(images)

    forward_backward = trainer.forward_backward

    def update(batch):
        assert batch.features.shape[1] == trainer.feat_dim
        state["updating"] = True
        try:
            return forward_backward(batch)
        finally:
            state["updating"] = False

    trainer.clip_model.encode_image = guarded
    trainer.forward_backward = update
    trainer.train()
    assert state["calls"] > 0


def test_corrupt_cache_files_are_recomputed(cold_run, synthetic_root, tmp_path):
    source, cold = cold_run
    cache = tmp_path / "cache"
    shutil.copytree(source, cache)
    files = chunk_files(cache)
    assert len(files) >= 4
    damaged = {}
    for i, path in enumerate(files[:4]):
        with open(path, "rb") as f:
            blob = f.read()
        damaged[path] = len(fc.decode_chunk(blob)[0])
        if i == 0:
            blob = blob[:len(blob) - 7]                      # truncated data
        elif i == 1:
            middle = len(blob) - 5
            blob = blob[:middle] + bytes([blob[middle] ^ 0x55]) + blob[middle + 1:]  # flipped bits, same size
        elif i == 2:
            blob = blob[:20]                                 # truncated header
        else:
            blob = b"not a safetensors file"
        with open(path, "wb") as f:
            f.write(blob)
    out = tmp_path / "run"
    assert main(croft_args(synthetic_root, out, cache)) == 0
    again = results(out)
    assert again["timing"]["feature_cache_misses"] == sum(damaged.values())
    assert_same_metrics(again, cold)
    for path in chunk_files(cache):  # every file on disk is whole again
        with open(path, "rb") as f:
            fc.decode_chunk(f.read())
    assert set(damaged) <= set(chunk_files(cache))  # recomputed under the same content-addressed names


# ---------------------------------------------------------------------------------------- keys and seeds

def test_cache_dir_defaults(monkeypatch, tmp_path):
    cfg = get_cfg_default()
    monkeypatch.setenv("CROFT_CACHE_DIR", str(tmp_path / "env"))
    assert fc.resolve_cache_dir(cfg) == str(tmp_path / "env")
    monkeypatch.delenv("CROFT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fc.resolve_cache_dir(cfg) == str(tmp_path / "xdg" / "croft" / "features")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fc.resolve_cache_dir(cfg) == str(tmp_path / "home" / ".cache" / "croft" / "features")
    cfg.CACHE.DIR = str(tmp_path / "run")
    assert fc.resolve_cache_dir(cfg) == str(tmp_path / "run")


def test_image_key_follows_path_size_and_mtime(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 10)
    key = fc.image_key(str(path))
    assert fc.image_key(str(path)) == key
    os.utime(path, ns=(1, 2_000_000_000))
    assert fc.image_key(str(path)) != key
    shutil.copy2(path, tmp_path / "b.jpg")
    assert fc.image_key(str(tmp_path / "b.jpg")) != fc.image_key(str(path))


def test_weights_identity(tmp_path):
    """One identity (croft/clip/weights.py) in two spellings: the cache's and the fingerprint's (as stored
    by fingerprint version 1, so existing run folders keep their fingerprints)."""
    import hashlib

    from croft.clip.weights import weights_identity
    from croft.engine.fingerprint import weights_value

    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    torch.manual_seed(1)
    b = torch.nn.Linear(4, 3)
    ident_a = weights_identity("none", a)
    assert ident_a == weights_identity("none", a) != weights_identity("none", b)
    assert ident_a["kind"] == "random-init" and weights_identity("NONE", a) == weights_identity("", a) == ident_a
    assert weights_identity("laion400m_e31", a) == {"kind": "tag", "tag": "laion400m_e31"}
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"weights" * 1000)
    memo = tmp_path / "fingerprints"
    ident = weights_identity(str(ckpt), a, memo_dir=str(memo))
    sha = hashlib.sha256(b"weights" * 1000).hexdigest()
    assert ident == {"kind": "file", "sha256": sha}
    assert len(os.listdir(memo)) == 1
    assert weights_value(str(ckpt)) == {"file_sha256": sha}
    assert weights_value(" laion400m_e31 ") == {"tag": "laion400m_e31"}
    assert weights_value("none") == weights_value("") == {"tag": "none"} and weights_value("None") == {"tag": "None"}
    # the cache's model key of tagged weights is unchanged since the cache's first layout
    assert fc.digest(weights_identity("openai")) == "b9d767669bf3350bbe276030"


def test_group_keys_separate_transforms_and_views():
    cfg = get_cfg_default()
    cfg.INPUT.TRANSFORMS = ["random_resized_crop", "random_flip", "normalize"]
    train, test = build_transform(cfg, True), build_transform(cfg, False)
    assert "view" not in fc.group_identity(test, view=3, aug_seed=1)  # deterministic: one view
    assert fc.group_identity(test, 0, 1) == fc.group_identity(test, 5, 2)
    assert fc.digest(fc.group_identity(train, 0, 1)) != fc.digest(fc.group_identity(train, 1, 1))
    assert fc.digest(fc.group_identity(train, 0, 1)) != fc.digest(fc.group_identity(train, 0, 2))
    cfg.INPUT.SIZE = (32, 32)
    assert fc.group_identity(build_transform(cfg, False)) != fc.group_identity(test)


def test_augmentation_is_seeded_per_view_and_leaves_global_rng_alone(synthetic_root):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.TRANSFORMS = ["random_resized_crop", "random_flip", "normalize"]
    impath = os.path.join(synthetic_root, "PACS", "images", "photo", "dog")
    impath = os.path.join(impath, sorted(os.listdir(impath))[0])
    ds = DatumDataset([Datum(impath)], build_transform(cfg, True), aug_seed=1)
    state = torch.get_rng_state()
    views = [ds[(0, v)]["img"] for v in (0, 1, 0)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(views[0], views[2]) and not torch.equal(views[0], views[1])
    assert not torch.equal(DatumDataset([Datum(impath)], ds.transform, aug_seed=2)[(0, 0)]["img"], views[0])
    assert view_seed(1, 0, impath) == view_seed(1, 0, impath) != view_seed(1, 1, impath)


def test_epoch_sampler_order_views_and_drop_last():
    sampler = EpochBatchSampler(10, 4, drop_last=True, seed=3, num_views=2)
    first = list(sampler)
    assert len(first) == len(sampler) == 2 and all(v == 0 for b in first for _, v in b)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and all(v == 1 for b in second for _, v in b)
    sampler.set_epoch(2)
    assert sampler.view == 0
    assert len(list(EpochBatchSampler(10, 4, drop_last=False, seed=3, num_views=1))) == 3
    cfg = get_cfg_default()
    cfg.OPTIM.MAX_EPOCH = 7
    assert num_train_views(cfg) == 7
    cfg.CACHE.TRAIN_VIEWS = 0
    with pytest.raises(ValueError, match="CACHE.TRAIN_VIEWS"):
        num_train_views(cfg)


# ---------------------------------------------------------------------------------------- chunk files

def test_chunk_round_trip_and_damage_detection():
    keys = ["a", "b", "c"]
    feats = torch.randn(3, 5)
    blob = fc.encode_chunk(keys, feats)
    got_keys, got = fc.decode_chunk(blob)
    assert got_keys == keys and torch.equal(got, feats)
    for bad in (blob[:-1], blob[:10], b"", blob[:-4] + b"\0\0\0\1"):
        with pytest.raises(fc.CorruptEntryError):
            fc.decode_chunk(bad)
    # A well-formed file whose rows do not match its key list (valid checksum) is rejected too.
    one_row = torch.randn(1, 5)
    keys_json = json.dumps(["a", "b"])
    checksum = fc.hashlib.sha256(keys_json.encode() + one_row.numpy().tobytes()).hexdigest()
    from safetensors.torch import save

    blob = save({"features": one_row}, metadata={"format": fc.FORMAT, "keys": keys_json, "row_shape": "[5]",
                                                 "checksum": checksum})
    with pytest.raises(fc.CorruptEntryError, match="does not match"):
        fc.decode_chunk(blob)


def test_concurrent_writers_threads(tmp_path):
    store = fc.ChunkStore()
    keys = [f"k{i}" for i in range(50)]
    feats = torch.randn(50, 16)
    errors = []
    path = os.path.join(str(tmp_path), fc.hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:32]
                        + fc.CHUNK_SUFFIX)

    def writer():
        try:
            for _ in range(20):
                assert store.write(str(tmp_path), keys, feats) == path
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            for _ in range(200):
                if os.path.exists(path):
                    got_keys, got = store.read(path)
                    assert got_keys == keys and torch.equal(got, feats)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary files left
    assert torch.equal(store.read(path)[1], feats)


def _encode_same_set(cache_dir, synthetic_root, rounds):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (16, 16)
    cfg.CACHE.DIR = cache_dir
    cfg.CACHE.CHUNK_SIZE = 7
    paths = sorted(glob.glob(os.path.join(synthetic_root, "PACS", "images", "*", "*", "*.jpg")))[:40]
    items = [Datum(p) for p in paths]
    transform = build_transform(cfg, is_train=False)
    expected = torch.stack([transform(read_image(p)) for p in paths]).flatten(1)[:, :32] * 2
    for _ in range(rounds):
        cache = FeatureCache(cfg, {"test": "concurrent"}, lambda x: x.flatten(1)[:, :32] * 2, "cpu")
        if not torch.allclose(cache.features(items, transform, name="set"), expected):
            os._exit(3)
        group = cache.group_dir(transform)
        cache.store.write(group, ["same-entry"], expected[:1])  # the very same chunk, again and again
    os._exit(0)


def test_two_processes_encoding_the_same_set(synthetic_root, tmp_path):
    """Two runs that encode the same images into the same cache at once leave valid entries."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_encode_same_set, args=(str(tmp_path / "cache"), synthetic_root, 8))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    everything = [f for _, _, fs in os.walk(tmp_path / "cache") for f in fs]
    assert not [f for f in everything if f.endswith(".tmp")]
    rows = set()
    for path in chunk_files(tmp_path / "cache"):
        with open(path, "rb") as f:
            rows |= set(fc.decode_chunk(f.read())[0])
    assert len(rows) == 41  # 40 images + "same-entry"


def test_unwritable_cache_dir_costs_speed_not_the_run(synthetic_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (16, 16)
    cfg.CACHE.DIR = str(blocker / "cache")
    paths = sorted(glob.glob(os.path.join(synthetic_root, "PACS", "images", "sketch", "*", "*.jpg")))[:5]
    transform = build_transform(cfg, is_train=False)
    cache = FeatureCache(cfg, {"test": "unwritable"}, lambda x: x.flatten(1)[:, :8], "cpu")
    feats = cache.features([Datum(p) for p in paths], transform, name="set")
    assert torch.equal(feats, torch.stack([transform(read_image(p)) for p in paths]).flatten(1)[:, :8])
    assert cache.stats["feature_cache_misses"] == 5 and cache._warned
