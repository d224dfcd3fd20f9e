"""Setup-I: the ImageNet open-set dataset (seeded base/new split, protocols, variants), the
Setup-I sweep script, results.json and the collect_results table, on the synthetic ImageNet tree."""
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from croft.config import setup_cfg
from croft.testing import synthetic
from croft.data.datasets import DATASET_REGISTRY, build_dataset
from croft.data.datasets import imagenet as imagenet_module
from croft.data.datasets.imagenet import ImageNetOpenSet, draw_base_classes
from croft.data.splits import DatasetError
from croft.evaluation.inference import Outputs
from croft.results.collect import collect, format_table
from croft.train import build_parser, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YAML = os.path.join(REPO, "configs", "datasets", "imagenet46.yaml")
VARIANT_DIRS = ("imagenetv2", "imagenet-sketch", "imagenet-adversarial", "imagenet-rendition")
FAST = "OPTIM.MAX_EPOCH 1 DATALOADER.NUM_WORKERS 0 TEST.PLOT False"
WNIDS = [w for w, _ in synthetic.IMAGENET_CLASSES]
NAMES = [n for _, n in synthetic.IMAGENET_CLASSES]


def make_cfg(root, out, seed=1, *opts):
    args = ["--root", str(root), "--seed", str(seed), "--dataset-config-file", YAML, "--output-dir", str(out),
            "DATASET.NUM_SHOTS", "2", *opts]
    return setup_cfg(build_parser().parse_args(args))


def build(root, out, seed=1, *opts):
    return build_dataset(make_cfg(root, out, seed, *opts))


@pytest.fixture
def warnings_of_reader():
    """Warnings logged by the ImageNet reader (croft's logger may not propagate to caplog)."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    imagenet_module.logger.addHandler(handler)
    yield records
    imagenet_module.logger.removeHandler(handler)


def linked_root(tmp_path, synthetic_root, variants=VARIANT_DIRS, classnames=None):
    """A data root that links the synthetic ImageNet images, with its own classnames.txt."""
    root = tmp_path / "data"
    (root / "imagenet").mkdir(parents=True)
    os.symlink(os.path.join(synthetic_root, "imagenet", "images"), root / "imagenet" / "images")
    if classnames is None:
        with open(os.path.join(synthetic_root, "imagenet", "classnames.txt")) as f:
            classnames = f.read()
    (root / "imagenet" / "classnames.txt").write_text(classnames)
    for name in variants:
        os.symlink(os.path.join(synthetic_root, name), root / name)
    return root


# ------------------------------------------------------------------ the class split

@pytest.mark.parametrize("num_classes,ratio", [(1000, 0.4), (10, 0.4), (10, 0.5)])
def test_split_is_the_reference_draw(num_classes, ratio):
    names = [f"class {i}" for i in range(num_classes)]
    for seed in (1, 2, 3):
        np.random.seed(seed)
        expected = list(np.random.choice(names, int(num_classes * ratio), replace=False))
        np.random.seed(1234)  # the global RNG's state does not matter
        np.random.rand(7)
        assert [names[i] for i in draw_base_classes(num_classes, ratio, seed)] == expected


def test_split_same_across_processes_differs_across_seeds(synthetic_root, tmp_path):
    here = {s: build(synthetic_root, tmp_path / f"s{s}", s).classnames for s in (1, 2, 3)}
    assert len(here[1]) == 4 and len({tuple(v) for v in here.values()}) == 3
    assert set(here[1]) <= set(NAMES)
    code = ("import json, sys; from croft.config import setup_cfg; from croft.train import build_parser; "
            "from croft.data.datasets import build_dataset; "
            "cfg = setup_cfg(build_parser().parse_args(sys.argv[1:])); "
            "print(json.dumps(build_dataset(cfg).classnames))")
    for seed in (1, 2):
        out = tmp_path / f"p{seed}"
        proc = subprocess.run([sys.executable, "-c", code, "--root", synthetic_root, "--seed", str(seed),
                               "--dataset-config-file", YAML, "--output-dir", str(out)],
                              capture_output=True, text=True, timeout=120, cwd=REPO,
                              env=dict(os.environ, PYTHONHASHSEED=str(seed + 10)))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == here[seed]
        saved = json.loads((out / "class_split.json").read_text())
        assert [c["name"] for c in saved["base_classes"]] == here[seed]
        assert [c["label"] for c in saved["base_classes"]] == list(range(4)) and saved["seed"] == seed
        assert saved["num_new"] == 6 and len(saved["new_classes"]) == 6
    # labels are the draw order
    draw = draw_base_classes(10, 0.4, 1)
    assert here[1] == [NAMES[i] for i in draw]


def test_run_folder_with_another_split_is_an_error(synthetic_root, tmp_path):
    build(synthetic_root, tmp_path / "run", 1)
    build(synthetic_root, tmp_path / "run", 1)  # same split: fine
    with pytest.raises(DatasetError, match=r"class_split\.json holds a different base/new class split"):
        build(synthetic_root, tmp_path / "run", 2)
    with pytest.raises(DatasetError, match="pass --seed"):
        build_dataset(setup_cfg(build_parser().parse_args(
            ["--root", synthetic_root, "--dataset-config-file", YAML, "--output-dir", str(tmp_path / "x")])))


def test_synthetic_imagenet_classes_are_distinct(synthetic_root):
    """Leave-one-out nearest-centroid accuracy on raw pixels of the synthetic train images."""
    from PIL import Image

    feats, labels = [], []
    for label, wnid in enumerate(WNIDS):
        folder = os.path.join(synthetic_root, "imagenet", "images", "train", wnid)
        for name in sorted(os.listdir(folder)):
            img = Image.open(os.path.join(folder, name)).convert("RGB").resize((16, 16))
            feats.append(np.asarray(img, dtype=np.float64).ravel())
            labels.append(label)
    feats, labels = np.stack(feats), np.asarray(labels)
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        centroids = np.stack([feats[keep & (labels == c)].mean(0) for c in range(len(WNIDS))])
        correct += int(np.argmin(((centroids - feats[i]) ** 2).sum(1)) == labels[i])
    assert correct / len(labels) >= 0.8
    readme = os.path.join(synthetic_root, "imagenet-adversarial", "imagenet-a", "README.txt")
    assert os.path.isfile(readme)


def test_registered_names():
    assert DATASET_REGISTRY.get("ImageNet46") is ImageNetOpenSet
    assert DATASET_REGISTRY.get("ImageNetOpenSet") is ImageNetOpenSet


# ------------------------------------------------------------------ sets and protocols

def _wnid(path):
    return os.path.basename(os.path.dirname(path))


def test_sets_and_protocols(synthetic_root, tmp_path):
    std = build(synthetic_root, tmp_path / "std", 1)
    ref = build(synthetic_root, tmp_path / "ref", 1, "TEST.OOD_PROTOCOL", "reference")
    base_wnids = [WNIDS[i] for i in draw_base_classes(10, 0.4, 1)]
    train_dir = os.path.join(synthetic_root, "imagenet", "images", "train")
    val_dir = os.path.join(synthetic_root, "imagenet", "images", "val")
    for ds in (std, ref):
        assert ds.classnames == [NAMES[WNIDS.index(w)] for w in base_wnids]
        # K-shot train from base classes only, class-balanced; labels = draw order
        assert sorted(d.label for d in ds.train_x) == [0, 0, 1, 1, 2, 2, 3, 3]
        for d in ds.train_x:
            assert d.impath.startswith(train_dir) and _wnid(d.impath) == base_wnids[d.label]
        # test = every ImageNet-val image of the base classes
        assert len(ds.test) == 4 * 6 and all(d.impath.startswith(val_dir) for d in ds.test)
        assert all(_wnid(d.impath) == base_wnids[d.label] for d in ds.test)
        # open set: val images of the new classes (36 < 1000: all of them)
        (name, ood), = ds.ood.items()
        assert name == "ImageNet-new" and len(ood) == 6 * 6
        assert all(d.impath.startswith(val_dir) and _wnid(d.impath) not in base_wnids for d in ood)
        assert len(ds.val) == 4 * 4
        assert list(ds.test_sets) == ["imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
    assert [d.impath for d in std.train_x] == [d.impath for d in ref.train_x]  # protocol-independent shots
    # standard: val from ImageNet train, disjoint from the shots; reference: inside the test set (leak)
    assert all(d.impath.startswith(train_dir) for d in std.val)
    assert not {d.impath for d in std.val} & {d.impath for d in std.train_x}
    assert {d.impath for d in ref.val} <= {d.impath for d in ref.test}
    # variants: base classes only, base labels; V2 folder i = line i of classnames.txt
    for ds in (std, ref):
        for variant, items in ds.test_sets.items():
            assert items and all(0 <= d.label < 4 for d in items)
            for d in items:
                folder = _wnid(d.impath)
                wnid = WNIDS[int(folder)] if variant == "imagenet_v2" else folder
                assert wnid == base_wnids[d.label]
                assert not d.impath.endswith("README.txt")
    a_labels = sorted({d.label for d in std.test_sets["imagenet_a"]})
    assert a_labels == sorted(base_wnids.index(WNIDS[i]) for i in synthetic.IMAGENET_A_CLASSES
                              if WNIDS[i] in base_wnids)
    assert len(a_labels) < 4  # seed 1: ImageNet-A lacks some base classes
    # A/R restricted to their classes under the standard protocol only
    assert std.class_subsets == {"imagenet_a": a_labels,
                                 "imagenet_r": sorted({d.label for d in std.test_sets["imagenet_r"]})}
    assert ref.class_subsets == {}


def test_shots_nested_val_stable_and_ood_sampling(synthetic_root, tmp_path):
    one = build(synthetic_root, tmp_path / "k1", 1, "DATASET.NUM_SHOTS", "1")
    two = build(synthetic_root, tmp_path / "k2", 1)
    assert {d.impath for d in one.train_x} < {d.impath for d in two.train_x}
    assert [d.impath for d in one.val] == [d.impath for d in two.val]
    full = build(synthetic_root, tmp_path / "all", 1, "DATASET.NUM_SHOTS", "-1")
    assert len(full.train_x) == 4 * (6 - 4)  # standard: the 4 val images per class are held out
    assert not {d.impath for d in full.val} & {d.impath for d in full.train_x}
    few = build(synthetic_root, tmp_path / "o5", 1, "DATASET.IMAGENET_OOD_SAMPLES", "5")
    again = build(synthetic_root, tmp_path / "o5b", 1, "DATASET.IMAGENET_OOD_SAMPLES", "5")
    assert len(few.ood["ImageNet-new"]) == 5
    assert [d.impath for d in few.ood["ImageNet-new"]] == [d.impath for d in again.ood["ImageNet-new"]]
    everything = build(synthetic_root, tmp_path / "oall", 1, "DATASET.IMAGENET_OOD_SAMPLES", "-1")
    assert len(everything.ood["ImageNet-new"]) == 36
    assert all(d.label == -1 for d in everything.ood["ImageNet-new"])


def test_subset_accuracy_masks_other_classes():
    logits = torch.tensor([[0.0, 5.0, 1.0, 0.0], [3.0, 0.0, 0.0, 2.0], [0.0, 0.0, 4.0, 9.0]])
    out = Outputs(logits, torch.zeros(3, 2), torch.tensor([2, 3, 2]), None)
    assert out.accuracy == pytest.approx(0.0)
    assert out.subset_accuracy([2, 3]) == pytest.approx(100 * 2 / 3)
    assert out.subset_accuracy([2]) == pytest.approx(100 * 2 / 3)  # the label-3 sample cannot be right


# ------------------------------------------------------------------ bad inputs

def test_missing_variant_is_a_warning(synthetic_root, tmp_path, warnings_of_reader):
    root = linked_root(tmp_path, synthetic_root, variants=("imagenetv2", "imagenet-rendition"))
    ds = build(root, tmp_path / "out")
    assert list(ds.test_sets) == ["imagenet_v2", "imagenet_r"]
    text = "\n".join(warnings_of_reader)
    assert "imagenet_sketch not found" in text and os.path.join(str(root), "imagenet-sketch", "images") in text
    assert "imagenet_a not found" in text
    ds = build(root, tmp_path / "out2", 1, "DATASET.IMAGENET_VARIANTS", "['imagenet_r']")
    assert list(ds.test_sets) == ["imagenet_r"]
    with pytest.raises(DatasetError, match="unknown ImageNet variant 'imagenet_x'"):
        build(root, tmp_path / "out3", 1, "DATASET.IMAGENET_VARIANTS", "['imagenet_x']")


def test_missing_classnames_and_folders_name_the_path(synthetic_root, tmp_path):
    root = linked_root(tmp_path, synthetic_root)
    path = root / "imagenet" / "classnames.txt"
    path.unlink()
    with pytest.raises(FileNotFoundError, match=f"class list not found: {path}"):
        build(root, tmp_path / "out")
    bare = tmp_path / "bare"
    (bare / "imagenet" / "images" / "train").mkdir(parents=True)
    (bare / "imagenet" / "classnames.txt").write_text("n01440764 tench\nn01530575 brambling\n")
    with pytest.raises(FileNotFoundError, match=str(bare / "imagenet" / "images" / "val")):
        build(bare, tmp_path / "out")
    (bare / "imagenet" / "images" / "train").rmdir()
    with pytest.raises(FileNotFoundError, match=str(bare / "imagenet" / "images" / "train")):
        build(bare, tmp_path / "out")


def test_duplicate_class_names_are_an_error(synthetic_root, tmp_path):
    lines = [f"{w} {n}" for w, n in synthetic.IMAGENET_CLASSES]
    lines[4] = f"{WNIDS[4]} tench"
    lines[7] = f"{WNIDS[7]} orange"
    root = linked_root(tmp_path, synthetic_root, classnames="\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"duplicate class names: 'tench' \(lines 1, 5\); 'orange' \(lines 8, 10\)"):
        build(root, tmp_path / "out")


# ------------------------------------------------------------------ end to end

def test_setup1_sweep_results_and_table(synthetic_root, tmp_path):
    out = tmp_path / "output"
    env = dict(os.environ, DATA=synthetic_root, OUTPUT=str(out), BACKBONE="tiny", PRETRAINED="none",
               PYTHON=sys.executable, EXTRA_OPTS=FAST, HF_HUB_OFFLINE="1")
    script = os.path.join(REPO, "scripts", "croft", "run_setup1.sh")
    subset = ["--only", "seed=1", "--only", "lambda1=5", "--only", "lambda2=5", "--only", "shots=1", "--no-table"]
    proc = subprocess.run(["bash", script, *subset], env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = sorted(out.glob("CRoFT/imagenet46/lambda1_5/lambda2_5/shots1_gen_step_10/seed1-*/results.json"))
    assert len(found) == 1, sorted(str(p) for p in out.rglob("results.json"))
    run_dir = found[0].parent
    results = json.loads((run_dir / "results.json").read_text())
    assert results["dataset"] == "ImageNet46" and results["seed"] == 1 and results["shots"] == 1
    # the grid zips 1 shot with 10 generator steps; the dataset YAML sets Setup-I's EDR reduction
    assert results["hparams"]["gen_step"] == 10 and results["hparams"]["edr_reduction"] == "sum_meansq"
    assert results["setup"] == "setup1" and run_dir.name.endswith(results["fingerprint"][:8])
    closed = results["closed_set"]
    variants = ["imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
    assert list(closed["per_domain"]) == variants
    with np.load(run_dir / "scores.npz") as scores:
        correct = scores["correct/id"]
    assert results["protocol"] == "standard" and 100.0 * correct.mean() == pytest.approx(closed["test_accuracy"])
    assert closed["average_accuracy"] == pytest.approx(np.mean([closed["per_domain"][v] for v in variants]))
    for score in ("energy", "mcm", "max_logit", "knn"):
        assert set(results["open_set"]["ImageNet-new"][score]) >= {"auroc", "fpr95", "aupr_in", "aupr_out"}
    assert (run_dir / "class_split.json").exists()
    before = (run_dir / "results.json").read_bytes()
    proc = subprocess.run(["bash", script, *subset], env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / "results.json").read_bytes() == before  # done: skipped, not rerun

    # The same model evaluated under the reference protocol (eval-only, same seed and split): ID and
    # V2/Sketch accuracies agree; A/R, classified over all base classes, can only be lower.
    ref_dir = tmp_path / "reference"
    args = ["--root", synthetic_root, "--seed", "1", "--trainer", "CRoFT", "--dataset-config-file", YAML,
            "--config-file", os.path.join(REPO, "configs", "trainers", "CRoFT", "ViT_ep30.yaml"),
            "--backbone", "tiny", "--output-dir", str(ref_dir), "--eval-only", "--model-dir", str(run_dir),
            "DATASET.NUM_SHOTS", "1", "TRAINER.CRoFT.gen_step", "10", "TRAINER.CRoFT.lambda1", "5",
            "TRAINER.CRoFT.lambda2", "5", "MODEL.BACKBONE.PRETRAINED", "none", *FAST.split(),
            "TEST.OOD_PROTOCOL", "reference"]
    assert main(args) == 0
    ref = json.loads((ref_dir / "results.json").read_text())
    assert ref["protocol"] == "reference"
    assert ref["closed_set"]["test_accuracy"] == pytest.approx(closed["test_accuracy"])
    for v in ("imagenet_v2", "imagenet_sketch"):
        assert ref["closed_set"]["per_domain"][v] == pytest.approx(closed["per_domain"][v])
    for v in ("imagenet_a", "imagenet_r"):
        assert ref["closed_set"]["per_domain"][v] <= closed["per_domain"][v] + 1e-9
    # Detection ID side: the test split under `standard`, the val split under `reference` (docs/protocols.md §4).
    from croft.results.io import load_scores
    ref_dataset = build(synthetic_root, tmp_path / "split_check", 1, "TEST.OOD_PROTOCOL", "reference")
    std_dataset = build(synthetic_root, tmp_path / "split_check_std", 1)
    assert len(load_scores(str(ref_dir))["energy/id"]) == len(ref_dataset.val)
    assert len(load_scores(str(run_dir))["energy/id"]) == len(std_dataset.test)
    assert len(ref_dataset.val) != len(std_dataset.test)

    rows = collect(str(tmp_path))
    assert {r["protocol"] for r in rows} == {"standard", "reference"}
    row = next(r for r in rows if r["protocol"] == "standard")
    assert row["domains"] == sorted(variants)
    assert row["id"]["mean"] == pytest.approx(closed["test_accuracy"])
    assert row["avg"]["mean"] == pytest.approx(closed["average_accuracy"])
    md = format_table(rows, "md", wide=True)
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.startswith("| Method | setting | n_seeds | ID | imagenet_a | imagenet_r | imagenet_sketch | "
                             "imagenet_v2 | Avg | ImageNet-new energy AUROC | ImageNet-new energy FPR95 |")
    assert "ID (Setup-I)" in md
