"""The demo benchmark (croft.testing.demo_data.make_demo_data, scripts/demo.sh, docs/demo.md).

These tests check the designed data, not a training result: the layout, that the held-out domain
shares the class hue but not the saturation and contrast of the sources, that the benchmark's class
hues sit DEMO_LABEL_SHIFT class spacings from the pretraining pool's, and that the unseen classes
are painted in the held-out style with hues outside the ID band. Small counts: a few seconds.
"""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from croft.testing import demo_data as S
from croft.data.datasets.openset import OOD_EXCLUSIONS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, N_OOD, N_POOL = 6, 4, 5
CHANCE = 1 / len(S.PACS_CLASSES)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("demo_data"))
    S.make_demo_data(root, per_class_domain=N, ood_per_class=N_OOD, pretrain_per_class_domain=N_POOL)
    return root


def _files(folder):
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".jpg")]


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def _hue(rgb):
    """HSV hue in [0, 1) of an (..., 3) array in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    c = np.where(mx > mn, mx - mn, 1.0)
    h = np.where(mx == r, ((g - b) / c) % 6, np.where(mx == g, (b - r) / c + 2, (r - g) / c + 4))
    return (h / 6.0) % 1.0


def _circular_mean(hues):
    return float(np.angle(np.mean(np.exp(2j * np.pi * np.asarray(hues)))) / (2 * np.pi) % 1.0)


def _distance(a, b):
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d)


def object_hue(path):
    """The circular mean hue of the 10% most colourful pixels (the object, in every demo style)."""
    a = _pixels(path)
    chroma = a.max(-1) - a.min(-1)
    return _circular_mean(_hue(a)[chroma >= np.quantile(chroma, 0.9)])


def chroma(path):
    a = _pixels(path)
    return float((a.max(-1) - a.min(-1)).mean())


def in_id_band(hue):
    """Inside the hue band of the benchmark's ID classes (DEMO_HUE_START .. the last class's hue)."""
    last = S.DEMO_HUE_START + (len(S.DEMO_HUE_ORDER) - 1 + S.DEMO_LABEL_SHIFT) * S.DEMO_HUE_SPACING
    return S.DEMO_HUE_START - S.DEMO_HUE_SPACING / 2 <= hue <= last + S.DEMO_HUE_SPACING / 2


def domain_paths(root, domain, dataset_dir="PACS"):
    return [(cls, p) for cls in S.PACS_CLASSES for p in _files(os.path.join(root, dataset_dir, "images", domain, cls))]


def test_layout(demo_root):
    assert sorted(os.listdir(demo_root)) == ["PACS", "caltech-101", "dtd", "food-101", "pretrain"]
    pacs = os.path.join(demo_root, "PACS")
    assert sorted(os.listdir(os.path.join(pacs, "images"))) == sorted(S.PACS_DOMAINS)
    for domain in S.PACS_DOMAINS:
        assert sorted(os.listdir(os.path.join(pacs, "images", domain))) == sorted(S.PACS_CLASSES)
        assert all(len(_files(os.path.join(pacs, "images", domain, c))) == N for c in S.PACS_CLASSES)
    with open(os.path.join(pacs, "test_on_art_painting.json")) as f:
        split = json.load(f)
    assert len(split["test"]) == N * len(S.PACS_CLASSES)
    assert all(e[0].startswith("art_painting/") for e in split["test"])
    assert not any(e[0].startswith("art_painting/") for e in split["train"] + split["val"])
    # the pretraining pool: source styles only, the ID classes only, other images than the benchmark's
    pool = os.path.join(demo_root, "pretrain", "PACS", "images")
    assert sorted(os.listdir(pool)) == sorted(S.DEMO_SOURCES) and S.DEMO_HOLDOUT not in S.DEMO_SOURCES
    assert all(sorted(os.listdir(os.path.join(pool, d))) == sorted(S.PACS_CLASSES) for d in S.DEMO_SOURCES)
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
    pool_hashes = {digest(p) for d in S.DEMO_SOURCES for _, p in domain_paths(demo_root, d, "pretrain/PACS")}
    bench_hashes = {digest(p) for d in S.PACS_DOMAINS for _, p in domain_paths(demo_root, d)}
    assert len(pool_hashes) == len(S.DEMO_SOURCES) * len(S.PACS_CLASSES) * N_POOL and not pool_hashes & bench_hashes
    # open-set sets in CoOp's layouts; the unseen Caltech classes are none of PACS's excluded overlaps
    for folder, images, split_name, classes in [
        ("dtd", "images", "split_zhou_DescribableTextures.json", S.DTD_CLASSES),
        ("food-101", "images", "split_zhou_Food101.json", S.FOOD_CLASSES),
        ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json", sorted(S.DEMO_UNSEEN)),
    ]:
        assert sorted(os.listdir(os.path.join(demo_root, folder, images))) == sorted(classes)
        with open(os.path.join(demo_root, folder, split_name)) as f:
            entries = sum(json.load(f).values(), [])
        assert len(entries) == N_OOD * len(classes)
        assert all(os.path.isfile(os.path.join(demo_root, folder, images, e[0])) for e in entries)
    assert not set(S.DEMO_UNSEEN) & set(OOD_EXCLUSIONS["Caltech101"]["pacs"])
    id_shapes = {S.ID_OBJECTS[c][0] for c in S.PACS_CLASSES}
    assert not {shape for shape, _ in S.DEMO_UNSEEN.values()} & id_shapes


def test_deterministic_and_checked(tmp_path, demo_root):
    S.make_demo_data(str(tmp_path), per_class_domain=N, ood_per_class=N_OOD, pretrain_per_class_domain=N_POOL)
    for rel in ("PACS/images/art_painting/dog/dog_0003.jpg", "pretrain/PACS/images/sketch/house/house_0001.jpg",
                "caltech-101/101_ObjectCategories/starfish/image_0002.jpg", "PACS/test_on_photo.json"):
        assert (tmp_path / rel).read_bytes() == open(os.path.join(demo_root, rel), "rb").read(), rel
    with pytest.raises(ValueError, match="per_class_domain"):
        S.make_demo_data(str(tmp_path / "x"), per_class_domain=0)


def test_heldout_shares_the_class_hue_but_not_the_style(demo_root):
    """art_painting keeps the object's hue in part (nearest-hue classification well above chance, below
    the sources') and loses colour strength (saturation) and contrast (the varnish, blur and lower contrast)."""
    stats = {}
    for domain in S.PACS_DOMAINS:
        paths = domain_paths(demo_root, domain)
        nearest = [min(S.PACS_CLASSES, key=lambda k: _distance(object_hue(p), S.demo_hue(k))) == cls
                   for cls, p in paths]
        stats[domain] = {"hue_acc": float(np.mean(nearest)), "chroma": float(np.mean([chroma(p) for _, p in paths])),
                         "contrast": float(np.mean([_pixels(p).mean(-1).std() for _, p in paths]))}
    art = stats["art_painting"]
    assert art["hue_acc"] >= 3 * CHANCE, stats
    assert art["hue_acc"] < max(stats[d]["hue_acc"] for d in S.DEMO_SOURCES), stats
    assert art["chroma"] < 0.8 * min(stats["photo"]["chroma"], stats["cartoon"]["chroma"]), stats
    assert art["contrast"] < min(stats[d]["contrast"] for d in S.DEMO_SOURCES), stats


def test_benchmark_hues_are_shifted_from_the_pretraining_pool(demo_root):
    """Per class, the cartoon objects' mean hue moves by DEMO_LABEL_SHIFT class spacings from pool to benchmark."""
    shift = S.DEMO_LABEL_SHIFT * S.DEMO_HUE_SPACING
    assert S.demo_hue("dog") == pytest.approx((S.demo_hue("dog", benchmark=False) + shift) % 1.0)
    moves = []
    for cls in S.PACS_CLASSES:
        pool = _circular_mean([object_hue(p) for p in _files(os.path.join(demo_root, "pretrain/PACS/images/cartoon", cls))])
        bench = _circular_mean([object_hue(p) for p in _files(os.path.join(demo_root, "PACS/images/cartoon", cls))])
        assert _distance(pool, S.demo_hue(cls, benchmark=False)) < 0.35 * S.DEMO_HUE_SPACING, cls
        moves.append((bench - pool + 0.5) % 1.0 - 0.5)
    assert np.mean(moves) == pytest.approx(shift, abs=0.4 * shift)


def test_unseen_classes_are_painted_with_hues_outside_the_id_band(demo_root):
    id_art = [object_hue(p) for _, p in domain_paths(demo_root, "art_painting")]
    unseen = [object_hue(p) for f in sorted(S.DEMO_UNSEEN)
              for p in _files(os.path.join(demo_root, "caltech-101/101_ObjectCategories", f))]
    assert np.mean([in_id_band(h) for h in id_art]) >= 0.7
    assert np.mean([in_id_band(h) for h in unseen]) <= 0.3
    assert all(not in_id_band(hue) for _, hue in S.DEMO_UNSEEN.values())
    # same painted style as the ID test images: comparable colour strength (unlike the sources)
    art_chroma = np.mean([chroma(p) for _, p in domain_paths(demo_root, "art_painting")])
    unseen_chroma = np.mean([chroma(p) for f in sorted(S.DEMO_UNSEEN)
                             for p in _files(os.path.join(demo_root, "caltech-101/101_ObjectCategories", f))])
    assert abs(unseen_chroma - art_chroma) < 0.25 * art_chroma


def test_demo_script_and_cli(tmp_path):
    assert subprocess.run(["bash", "-n", os.path.join(REPO, "scripts", "demo.sh")]).returncode == 0
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_synthetic_data.py"), "--demo",
                           "--root", str(out), "--per-class-domain", "2", "--ood-per-class", "2",
                           "--pretrain-per-class-domain", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(_files(out / "PACS" / "images" / "art_painting" / "dog")) == 2
    assert sorted(os.listdir(out / "pretrain" / "PACS" / "images")) == sorted(S.DEMO_SOURCES)
    assert not (out / "VLCS").exists()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_synthetic_data.py"), "--root",
                           str(tmp_path / "y"), "--pretrain-per-class-domain", "2"], capture_output=True, text=True)
    assert proc.returncode == 2 and "needs --demo" in proc.stderr


def test_pretraining_cli_reads_the_pool_and_checks_the_benchmark(demo_root, tmp_path, capsys):
    path = os.path.join(REPO, "tools", "pretrain_tiny_clip.py")
    spec = importlib.util.spec_from_file_location("pretrain_tiny_clip", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "tiny.pt"
    args = ["--data", os.path.join(demo_root, "pretrain"), "--datasets", "PACS", "--holdout", "art_painting",
            "--eval-data", demo_root, "--output", str(out), "--steps", "2", "--batch-size", "8"]
    assert cli.main(args) == 0 and out.is_file()
    printed = capsys.readouterr().out
    pairs = len(S.DEMO_SOURCES) * len(S.PACS_CLASSES) * N_POOL
    assert f"{pairs} image-caption pairs" in printed
    assert "PACS art_painting (held out)" in printed and "PACS photo (style seen in pretraining)" in printed
