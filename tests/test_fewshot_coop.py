"""croft's few-shot datasets against CoOp's own readers (the pinned Dassl and CoOp copies).

CoOp's ``datasets/*.py`` run unchanged in a subprocess (after Dassl's ``set_random_seed(SEED)``, as CoOp's
train.py does) on a copy of the synthetic trees, for two seeds and two shot counts, and with
``SUBSAMPLE_CLASSES base|new``; they write their ``split_fewshot/shot_K-seed_S.pkl`` files as usual. croft
must pick the same images: drawing itself on a fresh copy, and reading CoOp's pickles on CoOp's copy.

The copies are found at ``$CROFT_DASSL_PATH`` / ``$CROFT_COOP_PATH``, else at
``../shared/third_party/{Dassl.pytorch,CoOp}``. Without them (or without Dassl's import-time dependencies)
the test skips and says why; with ``CROFT_REQUIRE_DASSL=1`` (CI) it fails instead.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from croft.config import get_cfg_default
from croft.data.datasets import build_dataset
from croft.testing.fewshot_trees import make_fewshot_trees
from croft.testing.third_party import COOP, skip_or_fail, subprocess_env

# CoOp reader module -> (dataset name, folder)
DATASETS = {"oxford_pets": ("OxfordPets", "oxford_pets"), "dtd": ("DescribableTextures", "dtd"),
            "stanford_cars": ("StanfordCars", "stanford_cars"), "fgvc_aircraft": ("FGVCAircraft", "fgvc_aircraft"),
            "imagenet": ("ImageNet", "imagenet")}
RUNS = [(shots, seed, "all") for shots in (1, 4) for seed in (1, 2)] + [(4, 1, "base"), (4, 1, "new")]

COOP_SCRIPT = r'''
import json, os, sys
from yacs.config import CfgNode as CN
from dassl.utils import set_random_seed
from dassl.data.datasets import DATASET_REGISTRY
root, out, modules, runs = sys.argv[1], sys.argv[2], sys.argv[3].split(","), json.loads(sys.argv[4])
for module in modules:
    __import__(f"datasets.{module}")
results = {}
for name in sys.argv[5].split(","):
    for shots, seed, subsample in runs:
        cfg = CN()
        cfg.DATASET = CN()
        cfg.DATASET.ROOT, cfg.DATASET.NUM_SHOTS, cfg.DATASET.SUBSAMPLE_CLASSES = root, shots, subsample
        cfg.SEED = seed
        set_random_seed(seed)
        ds = DATASET_REGISTRY.get(name)(cfg)
        results[f"{name}/{shots}/{seed}/{subsample}"] = {
            k: [[os.path.relpath(d.impath, root), d.label, d.classname] for d in getattr(ds, k)]
            for k in ("train_x", "val", "test")}
with open(out, "w") as f:
    json.dump(results, f)
'''


@pytest.fixture(scope="module")
def coop_picks(pinned_dassl, synthetic_root, tmp_path_factory):
    """``(CoOp's copy of the trees, croft's fresh copy, {"<name>/<K>/<S>/<subsample>": CoOp's sets})``."""
    reason = None
    if not (COOP / "datasets" / "oxford_pets.py").is_file():
        reason = f"CoOp's dataset readers not found at {COOP / 'datasets'} (set CROFT_COOP_PATH)"
    base = tmp_path_factory.mktemp("coop_trees")
    trees = base / "trees"
    make_fewshot_trees(str(trees))
    for name in ("dtd", "imagenet"):
        shutil.copytree(os.path.join(synthetic_root, name), trees / name)
    coop_root, croft_root = base / "coop", base / "croft"
    for root in (coop_root, croft_root):
        root.mkdir()
        for _, folder in DATASETS.values():
            shutil.copytree(trees / folder, root / folder)
    out = base / "coop_picks.json"
    if reason is None:
        env = subprocess_env(with_coop=True)
        script = base / "coop_picks.py"
        script.write_text(textwrap.dedent(COOP_SCRIPT))
        proc = subprocess.run([sys.executable, str(script), str(coop_root), str(out), ",".join(DATASETS),
                               json.dumps(RUNS), ",".join(name for name, _ in DATASETS.values())],
                              cwd=str(base), env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            if "ModuleNotFoundError" in proc.stderr or "ImportError" in proc.stderr:
                reason = f"CoOp's readers do not import ({last}); pip install -r requirements-dassl.txt"
            else:
                pytest.fail(f"CoOp's readers failed:\n{proc.stderr[-3000:]}")
    if reason:
        skip_or_fail(reason, "CoOp comparison")
    with open(out) as f:
        return str(coop_root), str(croft_root), json.load(f)


def croft_sets(root, name, shots, seed, subsample):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME, cfg.SEED = root, name, seed
    cfg.DATASET.NUM_SHOTS, cfg.DATASET.SUBSAMPLE_CLASSES = shots, subsample
    ds = build_dataset(cfg)
    return {k: [[os.path.relpath(d.impath, root), d.label, d.classname] for d in getattr(ds, k)]
            for k in ("train_x", "val", "test")}


@pytest.mark.parametrize("name", [name for name, _ in DATASETS.values()])
def test_fewshot_subsets_are_coops_for_two_seeds_and_two_shot_counts(coop_picks, name):
    coop_root, croft_root, picks = coop_picks
    for shots, seed, subsample in RUNS:
        theirs = picks[f"{name}/{shots}/{seed}/{subsample}"]
        assert theirs["train_x"], "CoOp's reader picked nothing"
        # croft reads CoOp's pickle (CoOp's copy), or draws itself (a fresh copy; ImageNet: CoOp lists the
        # folders in os.listdir order, croft sorted, so only the pickle gives CoOp's ImageNet picks)
        roots = [coop_root] + ([croft_root] if name != "ImageNet" else [])
        for root in roots:
            ours = croft_sets(root, name, shots, seed, subsample)
            where = f"{name} K={shots} seed={seed} {subsample} ({'pickle' if root == coop_root else 'drawn'})"
            assert ours["train_x"] == theirs["train_x"], where
            if name == "ImageNet":  # CoOp passes its test set as val; croft has no ImageNet val
                assert ours["val"] == [] and sorted(ours["test"]) == sorted(theirs["test"]), where
            else:
                assert ours["val"] == theirs["val"] and ours["test"] == theirs["test"], where
        folder = dict(DATASETS.values())[name]
        with open(os.path.join(coop_root, folder, "split_fewshot", f"shot_{shots}-seed_{seed}.json")) as f:
            assert json.load(f)["drawn_by"] == f"CoOp (shot_{shots}-seed_{seed}.pkl)"  # kept from CoOp's pickle
