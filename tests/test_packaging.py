"""A plain (non-editable) install ships configs/ as croft/configs, and runs named grids from any folder."""
import contextlib
import io
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from croft.config import ConfigError, locate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = "OPTIM.MAX_EPOCH 1 DATALOADER.NUM_WORKERS 0 TEST.PLOT False DATALOADER.TEST.BATCH_SIZE 64 DATASET.NUM_SHOTS 1"


def _yaml_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
                  if f.endswith(".yaml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install --target`` of a copy of the source tree (offline, no build isolation, no deps)."""
    base = tmp_path_factory.mktemp("packaging")
    src, target = base / "src", base / "site"
    src.mkdir()
    for name in ("setup.py", "MANIFEST.in"):
        shutil.copy2(os.path.join(REPO, name), src / name)
    shutil.copytree(os.path.join(REPO, "configs"), src / "configs")
    # a copy: the build writes build/ and *.egg-info next to setup.py, never into the shared checkout
    shutil.copytree(os.path.join(REPO, "croft"), src / "croft",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "configs"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=str(target), HF_HUB_OFFLINE="1")
    elsewhere = base / "elsewhere"  # a folder without configs/, away from the checkout
    elsewhere.mkdir()
    return target, env, elsewhere


def test_installed_package_ships_every_config_file(installed):
    target, env, elsewhere = installed
    shipped = target / "croft" / "configs"
    assert _yaml_files(shipped) == _yaml_files(os.path.join(REPO, "configs"))
    with open(shipped / "trainers" / "CRoFT" / "rn50_ep30_pacs.yaml") as f, \
            open(os.path.join(REPO, "configs", "trainers", "CRoFT", "rn50_ep30_pacs.yaml")) as g:
        assert f.read() == g.read()
    where = subprocess.run([sys.executable, "-c", "import croft, croft.sweep.grid as g; print(croft.__file__); "
                            "print(g.SWEEPS_DIR)"], env=env, cwd=elsewhere, capture_output=True, text=True)
    package_file, sweeps_dir = where.stdout.split()
    assert package_file == str(target / "croft" / "__init__.py")
    assert sweeps_dir == str(shipped / "sweeps")


def test_named_grid_lists_the_same_runs_as_the_checkout(installed):
    target, env, elsewhere = installed
    proc = subprocess.run([str(target / "bin" / "croft-sweep"), "list", "croft_setup2_pacs"], env=env, cwd=elsewhere,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from croft.sweep.cli import main as croft_sweep

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert croft_sweep(["list", "croft_setup2_pacs"]) == 0
    # same run folders: the shipped YAMLs (with their _BASE_ files) merge to the same fingerprints
    assert proc.stdout == out.getvalue()
    assert proc.stdout.strip().endswith("240 run(s)")


def test_named_grid_runs_from_another_folder(installed, synthetic_root):
    target, env, elsewhere = installed
    out = elsewhere / "output"
    proc = subprocess.run(
        [str(target / "bin" / "croft-sweep"), "run", "croft_setup2_pacs", "--root", synthetic_root, "--output", str(out),
         "--backbone", "tiny", "--pretrained", "none", "--opts", FAST, "--only", "config=rn50_ep30_pacs",
         "--only", "lambda2=10", "--only", "seed=1", "--only", "domain=sketch", "--no-table"],
        env=env, cwd=elsewhere, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list(out.glob("CRoFT/PACS/rn50_ep30_pacs/lambda2_10/test_on_sketch/seed1-*"))
    assert len(runs) == 1
    assert (runs[0] / "results.json").is_file()
    assert len(list(runs[0].glob("eval_ood-*/results.json"))) == 1
    with open(runs[0] / "config.yaml") as f:
        cfg = yaml.safe_load(f)
    # rn50_ep30_pacs.yaml sets lambda1 15; OPTIM.NAME comes from its _BASE_ (../base/sgd_cosine_ep30.yaml)
    assert cfg["TRAINER"]["CRoFT"]["lambda1"] == 15
    assert cfg["OPTIM"]["NAME"] == "sgd" and cfg["OPTIM"]["LR_SCHEDULER"] == "cosine"


def test_train_config_file_under_configs_falls_back_to_the_shipped_copy(installed, synthetic_root):
    target, env, elsewhere = installed
    out = elsewhere / "train_ok"
    proc = subprocess.run(
        [str(target / "bin" / "croft-train"), "--config-file", "configs/trainers/CRoFT/rn50_ep30_pacs.yaml",
         "--dataset-config-file", "configs/datasets/PACS.yaml", "--root", synthetic_root, "--output-dir", str(out),
         "--trainer", "CRoFT", "--backbone", "tiny", "--no-train", "TEST_ENV", "test_on_sketch.json", "MODEL.BACKBONE.PRETRAINED", "none"],
        env=env, cwd=elsewhere, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "config.yaml") as f:
        cfg = yaml.safe_load(f)
    assert cfg["DATASET"]["NAME"] == "PACS" and cfg["TRAINER"]["CRoFT"]["lambda1"] == 15
    assert cfg["OPTIM"]["MAX_EPOCH"] == 30  # from the _BASE_ recipe of the shipped trainer YAML

    proc = subprocess.run(
        [str(target / "bin" / "croft-train"), "--config-file", "configs/trainers/CRoFT/nope.yaml",
         "--dataset-config-file", "configs/datasets/PACS.yaml", "--root", synthetic_root,
         "--output-dir", str(elsewhere / "train_out")], env=env, cwd=elsewhere, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --config-file configs/trainers/CRoFT/nope.yaml")
    assert str(target / "croft" / "configs" / "trainers" / "CRoFT" / "nope.yaml") in lines[0]
    assert not (elsewhere / "train_out").exists()


# ---------------------------------------------------------------- locate_config, in process

@pytest.fixture
def shipped_only(tmp_path, monkeypatch):
    """croft's configs at tmp/pkg_configs (as if installed), the current folder an empty tmp/cwd."""
    shipped = tmp_path / "pkg_configs" / "trainers" / "X"
    shipped.mkdir(parents=True)
    (shipped / "a.yaml").write_text("OPTIM:\n  MAX_EPOCH: 3\n")
    monkeypatch.setattr(locate, "configs_dir", lambda: str(tmp_path / "pkg_configs"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path


def test_locate_config_prefers_the_current_folder(shipped_only):
    local = shipped_only / "cwd" / "configs" / "trainers" / "X"
    local.mkdir(parents=True)
    (local / "a.yaml").write_text("OPTIM:\n  MAX_EPOCH: 7\n")
    assert locate.locate_config("configs/trainers/X/a.yaml") == "configs/trainers/X/a.yaml"


def test_locate_config_falls_back_to_the_shipped_configs(shipped_only):
    expected = str(shipped_only / "pkg_configs" / "trainers" / "X" / "a.yaml")
    assert locate.locate_config("configs/trainers/X/a.yaml") == expected
    assert locate.locate_config("./configs/trainers/X/a.yaml") == expected
    # not under configs/: returned as given, for the reader's own "not found" error
    assert locate.locate_config("trainers/X/a.yaml") == "trainers/X/a.yaml"
    assert locate.locate_config("") == ""


def test_locate_config_names_both_places_when_missing(shipped_only):
    with pytest.raises(ConfigError) as info:
        locate.locate_config("configs/trainers/X/b.yaml", "--dataset-config-file")
    message = str(info.value)
    assert message.startswith("--dataset-config-file configs/trainers/X/b.yaml: config file not found")
    assert str(shipped_only / "cwd") in message and str(shipped_only / "pkg_configs" / "trainers" / "X" / "b.yaml") in message


def test_checkout_configs_are_used_in_a_checkout():
    # this test suite runs from the checkout (editable install): the one copy in git is the one read
    assert locate.configs_dir() == os.path.join(REPO, "configs")
