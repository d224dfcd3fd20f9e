"""croft's trainers inside Dassl and CoOp (croft/dassl_bridge/), against the pinned upstream copies.

The copies are found at ``$CROFT_DASSL_PATH`` / ``$CROFT_COOP_PATH``, else at
``../shared/third_party/{Dassl.pytorch,CoOp}`` relative to the repository root (where CI has them,
read-only). Without them, or without Dassl's import-time dependencies (requirements-dassl.txt),
these tests skip and say why; with ``CROFT_REQUIRE_DASSL=1`` (CI) they fail instead.

Every test runs the bridge in a subprocess (installing it changes Dassl's global state: its
registries and default config), on synthetic PACS with the tiny backbone:

- ``extend_cfg`` adds every croft key, converts what differs, and is idempotent; croft's YAMLs,
  ints for float keys, CoOp's ``extend_cfg`` and Dassl's ``clean_cfg`` work;
- no registry clash with CoOp's trainers (either import order); Dassl's PACS stays Dassl's;
  logging is re-enabled; croft's other datasets serve Dassl's own DataManager; a method registered
  after the bridge is installed (its one ``register_method``) is a Dassl trainer at once;
- both engine bases provide the engine contract (``ENGINE_CONTRACT``), the registered classes are
  ``Method + TrainerBase`` / ``Method + DasslAdapter + TrainerX`` (both sharing ``EngineCore``, nothing
  copied by name), the Dassl trainer reads the same
  croft config (and fingerprint) as croft-train, and turns Dassl image dicts into croft batches;
- a 2-epoch CRoFT run driven by Dassl's ``build_trainer(cfg).train()`` writes the results.json,
  scores.npz and metrics.jsonl of croft's own engine;
- CoOp's unchanged train.py (through ``croft-dassl``) trains CRoFT and ``--eval-only`` evaluates it;
  CoOp's train.py with one ``import croft.dassl_bridge`` line does the same for CLIP_Adapter.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from croft.results.io import load_scores
from croft.testing.third_party import COOP, REPO, subprocess_env
from croft.train import main as croft_main

EPOCHS = "2"


def _tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def run_python(args, cwd, with_coop=False, timeout=900):
    """``python ARGS`` in a fresh process with the pinned copies on PYTHONPATH; asserts exit status 0."""
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=str(cwd), env=subprocess_env(with_coop),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"python {' '.join(map(str, args))} exited with {proc.returncode}\n--- stdout\n"
                                  f"{_tail(proc.stdout)}\n--- stderr\n{_tail(proc.stderr)}")
    return proc


def run_script(code, tmp_path, *args, with_coop=False):
    script = tmp_path / "check_bridge.py"
    script.write_text(textwrap.dedent(code))
    return run_python([script, *args], tmp_path, with_coop=with_coop)


@pytest.fixture(scope="module")
def bridge(pinned_dassl):
    """The pinned copies are there and Dassl imports; otherwise skip (or fail under CROFT_REQUIRE_DASSL=1)."""
    return pinned_dassl


OVERRIDES = ["TEST_ENV", "test_on_sketch.json", "DATASET.NUM_SHOTS", "2", "DATASET.OOD_SETS", "['DTD']",
             "OPTIM.MAX_EPOCH", EPOCHS, "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "32",
             "DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.PRETRAINED", "none", "TEST.PLOT", "False"]


def croft_args(trainer, root, out, flags=()):
    """croft-train's (= CoOp's train.py's) arguments: ``flags`` before the ``KEY VALUE`` overrides."""
    return ["--root", str(root), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", str(REPO / "configs/datasets/PACS.yaml"),
            "--config-file", str(REPO / "configs/trainers" / trainer / "rn50_ep30.yaml"),
            "--backbone", "tiny", "--output-dir", str(out), *map(str, flags), *OVERRIDES]


@pytest.fixture(scope="module")
def croft_runs(synthetic_root, tmp_path_factory):
    """The reference: each trainer run by croft's own engine (croft-train), made on first use."""
    made = {}
    root = tmp_path_factory.mktemp("croft_engine")

    def get(trainer):
        if trainer not in made:
            out = root / trainer
            assert croft_main(croft_args(trainer, synthetic_root, out)) == 0
            made[trainer] = out
        return made[trainer]

    return get


def assert_same_run(reference, other, training=True):
    """results.json (all but timing), scores.npz bit for bit, and (``training``) metrics.jsonl but epoch times."""
    a = json.loads((reference / "results.json").read_text())
    b = json.loads((other / "results.json").read_text())
    a.pop("timing"), b.pop("timing")
    assert set(a) == set(b)
    for key in a:
        assert a[key] == b[key], f"results.json[{key!r}] differs: {a[key]!r} != {b[key]!r}"
    x, y = load_scores(str(reference)), load_scores(str(other))
    assert set(x) == set(y) and "energy/ood/DTD" in x
    for key in x:
        assert x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key]), f"scores.npz[{key!r}] differs"
    if training:
        def epochs(folder):
            rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
            return [{k: v for k, v in row.items() if k != "epoch_s"} for row in rows]

        assert epochs(reference) == epochs(other)
        assert len(epochs(other)) == int(EPOCHS)


# ---------------------------------------------------------------------- config
def test_extend_cfg_adds_every_croft_key_and_is_idempotent(bridge, tmp_path):
    run_script(r'''
        import runpy, sys
        from pathlib import Path
        REPO, COOP = Path(sys.argv[1]), Path(sys.argv[2])
        from dassl.config import clean_cfg, get_cfg_default as dassl_default

        def flat(node, prefix=""):
            for k, v in node.items():
                if isinstance(v, dict):
                    yield from flat(v, prefix + k + ".")
                else:
                    yield prefix + k, v

        plain = dassl_default()                     # before install(): Dassl's own defaults
        dassl_keys = dict(flat(plain))
        plain.OPTIM.LR = 0.123                      # set before extending: kept
        import croft.dassl_bridge as bridge         # install()
        from croft.config import get_cfg_default
        croft_keys = dict(flat(get_cfg_default()))

        cfg = bridge.extend_cfg(plain)
        got = dict(flat(cfg))
        missing = sorted(set(croft_keys) - set(got))
        assert not missing, missing
        for key, value in croft_keys.items():
            if key not in dassl_keys:
                assert got[key] == value, (key, got[key], value)
        for key, value in dassl_keys.items():
            if key not in croft_keys:
                assert got[key] == value, ("a Dassl key changed", key)
        assert cfg.OPTIM.LR == 0.123
        assert cfg.MODEL.BACKBONE.PRETRAINED == "openai" and cfg.TEST.FINAL_MODEL == "best_val"
        assert cfg.DATASET.VAL_PERCENT == 0.2 and isinstance(cfg.OPTIM.SGD_DAMPNING, float)
        dump = cfg.dump()
        bridge.extend_cfg(cfg)
        bridge.extend_cfg(cfg)
        assert cfg.dump() == dump, "extend_cfg is not idempotent"

        # install() extended Dassl's defaults: every new config has croft's keys, once
        d = dassl_default()
        assert set(croft_keys) <= set(dict(flat(d)))
        assert d.dump() == bridge.extend_cfg(d.clone()).dump()
        d.TEST.FINAL_MODEL = "last_step"            # set by the user: extending again keeps it
        bridge.extend_cfg(d)
        assert d.TEST.FINAL_MODEL == "last_step"

        # yacs refuses an int for a float key and a bool for a string key; croft's keys take both
        d.merge_from_list(["TRAINER.CRoFT.lambda1", "15", "MODEL.BACKBONE.PRETRAINED", "False", "OPTIM.LR", "1"])
        assert d.TRAINER.CRoFT.lambda1 == 15.0 and isinstance(d.TRAINER.CRoFT.lambda1, float)
        assert d.OPTIM.LR == 1.0 and isinstance(d.OPTIM.LR, float)
        # PRETRAINED: Dassl's bool stays a bool (Dassl's backbones test its truth); croft reads it as a tag
        assert d.MODEL.BACKBONE.PRETRAINED is False
        assert bridge.croft_config(d, check=False).MODEL.BACKBONE.PRETRAINED == "none"
        d.merge_from_list(["MODEL.BACKBONE.PRETRAINED", "none"])
        assert d.MODEL.BACKBONE.PRETRAINED == "none"
        assert bridge.croft_config(d, check=False).MODEL.BACKBONE.PRETRAINED == "none"
        try:
            d.merge_from_list(["TRAINER.CRoFT.NO_SUCH_KEY", "1"])
            raise SystemExit("an unknown key was accepted")
        except KeyError:
            pass
        # croft's YAML files (with _BASE_ inheritance) merge into a Dassl config
        d.merge_from_file(str(REPO / "configs/trainers/CRoFT/rn50_ep30_pacs.yaml"))
        assert d.TRAINER.CRoFT.lambda1 == 15.0 and d.TRAINER.CRoFT.gen_step == 0
        assert d.OPTIM.NAME == "sgd" and d.MODEL.BACKBONE.NAME == "RN50" and d.TEST.FINAL_MODEL == "best_val"

        # CoOp's extend_cfg replaces TRAINER.COOP / COCOOP: croft's keys are merged in, CoOp's values win
        coop = runpy.run_path(str(COOP / "train.py"), run_name="coop_train")
        coop["extend_cfg"](d)
        assert d.TRAINER.COCOOP.TEXT_CHUNK == 1024 and d.TRAINER.COCOOP.CLASS_TOKEN_POSITION == "end"
        assert d.TRAINER.COCOOP.PREC == "fp16" and d.TRAINER.COOP.PREC == "fp16" and d.TRAINER.COOP.N_CTX == 16

        # Dassl keys that croft does not have are refused for croft's trainers unless at Dassl's default
        from croft.config import ConfigError
        e = dassl_default()
        e.merge_from_list(["INPUT.CUTOUT_N", "2"])
        try:
            bridge.croft_config(e, "CRoFT", check=False)
            raise SystemExit("a Dassl-only key was accepted")
        except ConfigError as exc:
            assert "INPUT.CUTOUT_N" in str(exc), exc

        # Dassl's clean_cfg (tools/train.py) keeps croft's groups for croft's trainers only
        d.TRAINER.NAME = "CRoFT"
        clean_cfg(d, "CRoFT")
        assert d.TRAINER.CRoFT.lambda1 == 15.0
        other = dassl_default()
        other.TRAINER.NAME = "Vanilla"
        clean_cfg(other, "Vanilla")
        assert list(other.TRAINER) == ["NAME"]
        print("ok")
    ''', tmp_path, REPO, COOP, with_coop=True)


# ---------------------------------------------------------------------- registries
REGISTRY_CHECK = r'''
    import logging, sys
    order = sys.argv[1]
    if order == "bridge-last":
        import datasets.oxford_pets, datasets.imagenet          # CoOp's, as its train.py imports them
        import trainers.coop, trainers.cocoop, trainers.zsclip
        import croft.dassl_bridge as bridge
    else:
        import croft.dassl_bridge as bridge
        import datasets.oxford_pets, datasets.imagenet
        import trainers.coop, trainers.cocoop, trainers.zsclip
    bridge.install()                                            # idempotent
    from dassl.data.datasets import DATASET_REGISTRY
    from dassl.engine import TRAINER_REGISTRY, TrainerX
    from croft.trainers import METHODS

    names = TRAINER_REGISTRY.registered_names()
    assert len(names) == len(set(names))
    for croft_name, dassl_name in bridge.DASSL_NAMES.items():
        cls = TRAINER_REGISTRY.get(dassl_name)
        assert cls.__name__ == dassl_name and cls.croft_name == croft_name
        assert cls.__bases__ == (METHODS[croft_name], bridge.DasslAdapter, TrainerX), cls.__mro__
    for coop_name, module in (("CoOp", "trainers.coop"), ("CoCoOp", "trainers.cocoop"),
                              ("ZeroshotCLIP", "trainers.zsclip"), ("ZeroshotCLIP2", "trainers.zsclip")):
        assert TRAINER_REGISTRY.get(coop_name).__module__ == module, coop_name
    assert TRAINER_REGISTRY.get("Vanilla").__module__.startswith("dassl.")
    # one registration: a method registered now (after install) is a croft trainer and a Dassl trainer at once
    from croft.engine.registration import register_method
    from croft.engine.trainer import TRAINER_REGISTRY as CROFT_TRAINERS, TrainerBase
    from croft.trainers.zsclip import ZeroshotCLIPMethod

    @register_method("ToyLate", dassl_name="CroftToyLate")
    class ToyLateMethod(ZeroshotCLIPMethod):
        pass

    late = TRAINER_REGISTRY.get("CroftToyLate")
    assert late.__bases__ == (ToyLateMethod, bridge.DasslAdapter, TrainerX) and late.croft_name == "ToyLate"
    assert CROFT_TRAINERS.get("ToyLate").__bases__ == (ToyLateMethod, TrainerBase)
    assert bridge.DASSL_NAMES["ToyLate"] == "CroftToyLate"
    assert DATASET_REGISTRY.get("PACS").__module__.startswith("dassl.")       # Dassl's own stays
    assert DATASET_REGISTRY.get("VLCS").__module__.startswith("dassl.")
    assert DATASET_REGISTRY.get("OxfordPets").__module__ == "datasets.oxford_pets"
    for name in ("ImageNet46", "DomainFolder"):
        assert getattr(DATASET_REGISTRY.get(name), "_croft_bridge", False), name
    # importing Dassl ran logging.disable(logging.WARNING); the bridge re-enabled logging
    assert logging.root.manager.disable == logging.NOTSET
    from croft.utils.logging import get_logger, setup_logger
    setup_logger()
    get_logger().warning("croft warning is visible")
    print("ok")
'''


@pytest.mark.parametrize("order", ["bridge-last", "bridge-first"])
def test_no_registry_clash_with_coop(order, bridge, tmp_path):
    proc = run_script(REGISTRY_CHECK, tmp_path, order, with_coop=True)
    assert "croft warning is visible" in proc.stderr


def test_croft_datasets_serve_dassls_own_data_manager(bridge, synthetic_root, tmp_path):
    """croft's datasets that Dassl lacks are registered for Dassl's own trainers (Dassl's DataManager)."""
    run_script(r'''
        import sys
        from pathlib import Path
        REPO, root = Path(sys.argv[1]), sys.argv[2]
        import croft.dassl_bridge  # noqa: F401
        from dassl.config import get_cfg_default
        from dassl.data import DataManager
        from croft.config import setup_cfg
        from croft.data.datasets import build_dataset
        from croft.train import build_parser

        opts = ["DATASET.ROOT", root, "DATASET.NUM_SHOTS", "2", "SEED", "1", "DATALOADER.NUM_WORKERS", "0",
                "DATASET.IMAGENET_VARIANTS", "[]", "TRAINER.NAME", "Vanilla"]
        cfg = get_cfg_default()
        cfg.merge_from_file(str(REPO / "configs/datasets/imagenet46.yaml"))
        cfg.merge_from_list(opts)
        cfg.freeze()
        dm = DataManager(cfg)
        croft_dataset = build_dataset(setup_cfg(build_parser().parse_args(
            ["--dataset-config-file", str(REPO / "configs/datasets/imagenet46.yaml")] + opts[:-2])))
        assert dm.num_classes == croft_dataset.num_classes
        assert dm.lab2cname == dict(enumerate(croft_dataset.classnames))
        for split in ("train_x", "val", "test"):
            ours = [(d.impath, d.label) for d in getattr(croft_dataset, split)]
            assert [(d.impath, d.label) for d in getattr(dm.dataset, split)] == ours, split
        batch = next(iter(dm.train_loader_x))
        assert batch["img"].dim() == 4 and len(batch["label"]) == len(batch["img"])
        print("ok")
    ''', tmp_path, REPO, synthetic_root)


# ---------------------------------------------------------------------- engine contract
def test_both_engine_bases_provide_the_engine_contract(bridge, synthetic_root, tmp_path):
    run_script(r'''
        import inspect, json, runpy, sys
        from pathlib import Path
        COOP, croft_argv, dassl_argv = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
        import croft.dassl_bridge as bridge
        from dassl.engine import TRAINER_REGISTRY as DASSL_TRAINERS, TrainerX, build_trainer as dassl_build_trainer
        from croft.config import setup_cfg
        from croft.data.batch import Batch
        from croft.engine.trainer import ENGINE_CONTRACT, TRAINER_REGISTRY, EngineCore, TrainerBase, build_trainer
        from croft.train import build_parser
        from croft.trainers import METHODS

        assert set(METHODS) == set(TRAINER_REGISTRY.names()) == set(bridge.DASSL_NAMES)
        for name, method in METHODS.items():
            assert TRAINER_REGISTRY.get(name).__bases__ == (method, TrainerBase), name
            assert DASSL_TRAINERS.get(bridge.DASSL_NAMES[name]).__bases__ == (method, bridge.DasslAdapter, TrainerX)
            # a method class is engine-independent: it defines none of the engine's own methods
            own = {k for klass in method.__mro__[:-1] for k in vars(klass)}
            engine_only = set(ENGINE_CONTRACT["methods"]) - {"check_cfg", "before_train", "prepare_to_load"}
            assert not own & engine_only, (name, own & engine_only)
        # one shared base: the adapter inherits croft's engine functions, it copies none of them by name
        assert TrainerBase.__bases__ == (EngineCore,) and bridge.DasslAdapter.__bases__ == (EngineCore,)
        shared = [v for v in vars(EngineCore).values() if callable(v) or isinstance(v, (classmethod, staticmethod))]
        copied = [k for k, v in vars(bridge.DasslAdapter).items() if any(v is s for s in shared)]
        assert not copied, copied
        for base in (TrainerBase, bridge.DasslAdapter):
            for meth, params in ENGINE_CONTRACT["methods"].items():
                fn = getattr(base, meth, None)
                assert callable(fn), (base.__name__, meth)
                accepted = set(inspect.signature(fn).parameters)
                assert set(params) <= accepted, (base.__name__, meth, params, accepted)

        # instances: croft's engine and Dassl's build_trainer on the same settings (CoOp's setup_cfg)
        croft_trainer = build_trainer(setup_cfg(build_parser().parse_args(croft_argv)))
        coop = runpy.run_path(str(COOP / "train.py"), run_name="coop_train")
        # CoOp's setup_cfg reads the same flags as croft-train's parser
        dassl_trainer = dassl_build_trainer(coop["setup_cfg"](build_parser().parse_args(dassl_argv)))
        assert isinstance(dassl_trainer, TrainerX)
        for trainer in (croft_trainer, dassl_trainer):
            missing = [a for a in ENGINE_CONTRACT["attributes"] if not hasattr(trainer, a)]
            assert not missing, (type(trainer).__mro__, missing)
        # the Dassl trainer reads croft's config: the same values and fingerprint as croft-train's
        a, b = croft_trainer.cfg.clone(), dassl_trainer.cfg.clone()
        for c in (a, b):
            c.defrost()
            c.OUTPUT_DIR = ""
        # (other trainers' groups may differ: CoOp's extend_cfg sets its own TRAINER.COOP/COCOOP defaults)
        from croft.config.merge import flatten
        own = lambda k: not k.startswith("TRAINER.") or k == "TRAINER.NAME" or k.startswith("TRAINER.CRoFT.")
        flat_a, flat_b = ({k: list(v) if isinstance(v, tuple) else v for k, v in flatten(c)} for c in (a, b))
        assert set(flat_a) == set(flat_b)
        diff = [(k, v, flat_b[k]) for k, v in flat_a.items() if own(k) and flat_b[k] != v]
        assert not diff, diff
        assert croft_trainer.fingerprint == dassl_trainer.fingerprint
        # Dassl's test path: a batch -> features -> a logits tensor for its evaluator
        batch = next(iter(dassl_trainer.test_loader))
        features, labels = dassl_trainer.parse_batch_test(batch)
        logits = dassl_trainer.model_inference(features)
        assert logits.shape == (len(labels), dassl_trainer.num_classes)
        # a Dassl image dict (img, label, domain, impath, index) becomes croft's Batch of frozen features
        import torch
        from torch.utils.data import DataLoader
        from croft.data.images import DatumDataset
        dm = dassl_trainer.dm
        images = next(iter(DataLoader(DatumDataset(dassl_trainer.dataset.test, dm.test_transform, dm.aug_seed),
                                      batch_size=len(labels))))
        assert set(images) == {"img", "label", "domain", "impath", "index"}
        encoded, encoded_labels = dassl_trainer.parse_batch_train(images)
        assert torch.equal(encoded_labels, labels)
        assert torch.allclose(encoded, features, rtol=1e-5, atol=1e-5)
        assert torch.allclose(dassl_trainer.model_inference(images["img"]), logits, rtol=1e-4, atol=1e-4)
        print("ok")
    ''', tmp_path, COOP, json.dumps(croft_args("CRoFT", synthetic_root, tmp_path / "croft")),
        json.dumps(croft_args("CRoFT", synthetic_root, tmp_path / "dassl")), with_coop=True)


# ---------------------------------------------------------------------- runs
def test_dassl_build_trainer_train_matches_croft_engine(bridge, synthetic_root, croft_runs, tmp_path):
    """Dassl's own loop (``build_trainer(cfg).train()``, Dassl's default config + croft's keys) = croft-train."""
    out = tmp_path / "dassl_run"
    run_script(r'''
        import sys
        from pathlib import Path
        REPO, root, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
        import croft.dassl_bridge  # noqa: F401
        from dassl.config import get_cfg_default
        from dassl.engine import build_trainer
        from dassl.utils import set_random_seed

        cfg = get_cfg_default()
        cfg.merge_from_file(str(REPO / "configs/datasets/PACS.yaml"))
        cfg.merge_from_file(str(REPO / "configs/trainers/CRoFT/rn50_ep30.yaml"))
        cfg.DATASET.ROOT, cfg.OUTPUT_DIR, cfg.SEED = root, out, 1
        cfg.TRAINER.NAME, cfg.MODEL.BACKBONE.NAME = "CRoFT", "tiny"
        cfg.merge_from_list(sys.argv[4:])
        cfg.freeze()
        set_random_seed(cfg.SEED)
        build_trainer(cfg).train()
    ''', tmp_path, REPO, synthetic_root, out, *OVERRIDES)
    assert_same_run(croft_runs("CRoFT"), out)
    for name in ("last.pth.tar", "fingerprint.json", "config.yaml", "detector.json",
                 "clip_adapter/model-best.pth.tar", "generator/model.pth.tar-2"):
        assert (out / name).is_file(), name


def test_coop_train_py_trains_and_evaluates_croft(bridge, synthetic_root, croft_runs, tmp_path):
    """``croft-dassl CoOp/train.py ...`` (CoOp's train.py unchanged): training, then ``--eval-only``."""
    train, evaluated = tmp_path / "train", tmp_path / "eval"
    proc = run_python(["-m", "croft.dassl_bridge", COOP / "train.py",
                       *croft_args("CRoFT", synthetic_root, train)], tmp_path)
    assert "Results written to" in proc.stdout
    assert_same_run(croft_runs("CRoFT"), train)
    assert "Checkpoint saved to" in (train / "log.txt").read_text()  # croft's log lines reach Dassl's log.txt

    run_python(["-m", "croft.dassl_bridge", COOP / "train.py",
                *croft_args("CRoFT", synthetic_root, evaluated, flags=["--eval-only", "--model-dir", train])],
               tmp_path)
    assert_same_run(train, evaluated, training=False)


def test_coop_train_py_with_the_import_line_trains_and_evaluates_clip_adapter(bridge, synthetic_root, croft_runs,
                                                                              tmp_path):
    """CoOp's train.py plus one line, ``import croft.dassl_bridge``, next to its ``import trainers.*`` lines."""
    source = (COOP / "train.py").read_text()
    anchor = "import trainers.zsclip\n"
    assert anchor in source
    script = tmp_path / "train.py"
    script.write_text(source.replace(anchor, anchor + "import croft.dassl_bridge  # noqa: F401\n"))
    train, evaluated = tmp_path / "train", tmp_path / "eval"
    run_python([script, *croft_args("CLIP_Adapter", synthetic_root, train)], tmp_path, with_coop=True)
    assert_same_run(croft_runs("CLIP_Adapter"), train)
    run_python([script, *croft_args("CLIP_Adapter", synthetic_root, evaluated,
                                    flags=["--eval-only", "--model-dir", train])], tmp_path, with_coop=True)
    assert_same_run(train, evaluated, training=False)


# ---------------------------------------------------------------------- one-line errors
def run_cli(args, cwd, env=None, with_coop=False, timeout=900):
    """``python ARGS`` in a fresh process; the exit status is the caller's to check."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=str(cwd), capture_output=True, text=True,
                          env=env or subprocess_env(with_coop), timeout=timeout)


def one_error_line(proc, status, *needles):
    """``proc`` exited with ``status`` after exactly one ``error:`` line holding ``needles``, no traceback."""
    shown = f"exit {proc.returncode}\n--- stdout\n{_tail(proc.stdout)}\n--- stderr\n{_tail(proc.stderr)}"
    assert proc.returncode == status, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, shown
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture
def no_dassl_env(tmp_path):
    """An environment where ``import dassl`` fails as it does where Dassl is not installed."""
    blocker = tmp_path / "no_dassl"
    (blocker / "dassl").mkdir(parents=True)
    (blocker / "dassl" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'dassl'\", name='dassl')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CROFT_DASSL_PATH", "CROFT_TRACEBACK")}
    env.update(PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]), PYTHONDONTWRITEBYTECODE="1",
               HF_HUB_OFFLINE="1")
    return env


def test_launcher_without_dassl_prints_usage_and_how_to_install(no_dassl_env, tmp_path):
    launcher = ["-m", "croft.dassl_bridge"]
    proc = run_cli([*launcher, "--help"], tmp_path, no_dassl_env)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: croft-dassl"), proc.stderr
    assert proc.stderr == ""
    proc = run_cli(launcher, tmp_path, no_dassl_env)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: croft-dassl") and "Traceback" not in proc.stderr
    script = tmp_path / "train.py"
    script.write_text("raise SystemExit('the script ran without Dassl')\n")
    proc = run_cli([*launcher, script, "--trainer", "CRoFT"], tmp_path, no_dassl_env)
    one_error_line(proc, 1, "needs Dassl", "No module named 'dassl'", "git clone", "CROFT_DASSL_PATH",
                   "requirements-dassl.txt")


def test_console_script_without_dassl_prints_usage(no_dassl_env, tmp_path):
    """The ``croft-dassl`` script pip writes (``from croft.dassl_bridge import main``) imports the module first."""
    script = tmp_path / "bin" / "croft-dassl"
    script.parent.mkdir()
    script.write_text("import sys\nfrom croft.dassl_bridge import main\nif __name__ == '__main__':\n"
                      "    sys.exit(main())\n")
    proc = run_cli([script, "--help"], tmp_path, no_dassl_env)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: croft-dassl"), proc.stderr
    # importing the bridge anywhere else still installs it at once, and says why it cannot
    proc = run_cli(["-c", "import croft.dassl_bridge"], tmp_path, no_dassl_env)
    assert proc.returncode == 1 and "DasslNotFound" in proc.stderr and "CROFT_DASSL_PATH" in proc.stderr


def _croft_yamls():
    return sorted(p for folder in ("datasets", "trainers") for p in (REPO / "configs" / folder).rglob("*.yaml"))


def test_flat_copies_merge_in_plain_yacs_as_croft_merges_the_original(tmp_path):
    from croft.config import get_cfg_default, merge_from_file
    from croft.config.flat_copy import flat_yaml

    with_base = 0
    for i, path in enumerate(_croft_yamls()):
        flat = tmp_path / f"{i}.yaml"
        flat.write_text(flat_yaml(str(path)))
        assert "_BASE_:" not in flat.read_text(), path
        ours = get_cfg_default()
        merge_from_file(ours, str(path))
        plain = get_cfg_default()                       # a yacs CfgNode: merge_from_file is yacs' own
        plain.merge_from_file(str(flat))
        assert plain.dump() == ours.dump(), path
        with_base += "_BASE_" in path.read_text()
    assert with_base >= 10


def test_flatten_command_writes_the_flat_copy_without_dassl(no_dassl_env, tmp_path):
    from croft.config.flat_copy import flat_yaml

    source = REPO / "configs/trainers/CRoFT/rn50_ep30_pacs.yaml"
    out = tmp_path / "flat" / "rn50_ep30_pacs.yaml"
    proc = run_cli(["-m", "croft.dassl_bridge", "flatten", source, "-o", out], tmp_path, no_dassl_env)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == flat_yaml(str(source))
    bad = tmp_path / "bad.yaml"
    bad.write_text("_BASE_: ../base/clip.yaml\nTRAINER:\n  CRoFT:\n    lamda1: 3\n")
    proc = run_cli(["-m", "croft.dassl_bridge", "flatten", bad, "-o", out], tmp_path, no_dassl_env)
    one_error_line(proc, 2, "base config not found: '../base/clip.yaml'", str(bad))
    assert out.read_text() == flat_yaml(str(source)), "a failed flatten changed an earlier copy"


def test_plain_coop_stops_at_base_and_readme_gives_the_fix(bridge, synthetic_root, tmp_path):
    """CoOp's train.py without the bridge reads croft's YAML with plain yacs: README names that error and the fix."""
    proc = run_cli([COOP / "train.py", *croft_args("CRoFT", synthetic_root, tmp_path / "out")], tmp_path,
                   with_coop=True)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last == "KeyError: 'Non-existent config key: _BASE_'", _tail(proc.stderr)
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Using croft inside Dassl/CoOp"):]
    section = section[:section.index("\n## ", 1)]
    assert f"`{last}`" in section
    assert "croft-dassl path/to/CoOp/train.py" in section and "croft-dassl flatten" in section


def _replace(args, flag, value):
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


@pytest.mark.parametrize("case", ["unknown trainer", "unknown key", "bad value", "eval-only without model-dir",
                                  "fingerprint mismatch"])
def test_croft_dassl_errors_are_one_line(case, bridge, synthetic_root, croft_runs, tmp_path, capsys):
    """Under ``croft-dassl``: Dassl's trainer registry and the config merge name the trainers / key; croft's
    own errors print the line croft-train prints for the same arguments."""
    out = tmp_path / "out"
    if case == "unknown trainer":
        args, status = _replace(croft_args("CRoFT", synthetic_root, out), "--trainer", "Bogus"), 2
        needles = ["unknown trainer 'Bogus' (--trainer / TRAINER.NAME); croft's trainers in Dassl: BCAL, "
                   "CLIP_Adapter, CRoFT, CroftCoCoOp, CroftCoOp, CroftZeroshotCLIP, DPLCLIP", "TIP_ADAPTER, VLAD;",
                   "Dassl's and the script's:", "Vanilla"]
    elif case == "unknown key":
        args, status = croft_args("CRoFT", synthetic_root, out) + ["TRAINER.CRoFT.lamda1", "3"], 2
        needles = ["command line: unknown config key 'TRAINER.CRoFT.lamda1'",
                   "did you mean 'TRAINER.CRoFT.lambda1'?"]
    elif case == "bad value":  # the trainer's check_cfg, before any work, as croft-train
        args = _replace(croft_args("DPLCLIP", synthetic_root, out), "--root", str(tmp_path / "no_data_here"))
        args, status = args + ["TRAINER.DPLCLIP.MLP_DEPTH", "1"], 2
        needles = ["invalid value for 'TRAINER.DPLCLIP.MLP_DEPTH': 1; expected >= 2"]
    elif case == "eval-only without model-dir":
        args, status = croft_args("CRoFT", synthetic_root, out, flags=["--eval-only"]), 1
        needles = ["--eval-only with trainer CRoFT needs --model-dir"]
    else:
        trained = croft_runs("CRoFT")
        args = croft_args("CRoFT", synthetic_root, out, flags=["--eval-only", "--model-dir", trained])
        args, status = args + ["DATASET.NUM_SHOTS", "4"], 1
        needles = [f"--model-dir {trained} was trained with other settings", "DATASET.NUM_SHOTS"]
    proc = run_cli(["-m", "croft.dassl_bridge", COOP / "train.py", *args], tmp_path, with_coop=True)
    line = one_error_line(proc, status, *needles)
    if case == "bad value":  # (CoOp's train.py makes OUTPUT_DIR for its log first; croft-train makes nothing)
        capsys.readouterr()
        assert croft_main(_replace(args, "--output-dir", str(tmp_path / "croft_train"))) == status
        assert line in capsys.readouterr().err.splitlines()
    if case.startswith("unknown") or case == "bad value":
        return
    assert line.endswith("(set CROFT_TRACEBACK=1 for the traceback)")
    log = (out / "log.txt").read_text()  # Dassl's setup_logger tees stdout there: the traceback goes there too
    assert "Traceback" in log and line in log
    capsys.readouterr()
    assert croft_main(_replace(args, "--output-dir", str(tmp_path / "croft_train"))) == status
    assert line in capsys.readouterr().err.splitlines()
    if case == "fingerprint mismatch":
        assert not (out / "results.json").exists()


def test_bridge_import_line_gives_one_line_and_keeps_other_tracebacks(bridge, synthetic_root, tmp_path):
    """CoOp's train.py with the import line: croft's error is one line (Python's exit status 1); an error
    outside croft keeps its traceback, under the import line and under croft-dassl."""
    source = (COOP / "train.py").read_text()
    anchor = "import trainers.zsclip\n"
    script = tmp_path / "train.py"
    script.write_text(source.replace(anchor, anchor + "import croft.dassl_bridge  # noqa: F401\n"))
    args = croft_args("CRoFT", synthetic_root, tmp_path / "out") + ["OPTIM.LR", "fast"]
    proc = run_cli([script, *args], tmp_path, with_coop=True)
    one_error_line(proc, 1, "command line: wrong type for 'OPTIM.LR': got 'fast' (str), expected float")

    other = tmp_path / "other.py"
    other.write_text("import croft.dassl_bridge  # noqa: F401\nraise ValueError('not croft: a bug elsewhere')\n")
    for args in ([other], ["-m", "croft.dassl_bridge", other]):
        proc = run_cli(args, tmp_path)
        assert proc.returncode == 1 and "Traceback" in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == "ValueError: not croft: a bug elsewhere"


def test_launcher_with_a_dassl_dependency_missing(bridge, tmp_path):
    """Dassl is there but an import-time dependency of it is not: one line naming it and what to install."""
    blocker = tmp_path / "no_gdown"
    (blocker / "gdown").mkdir(parents=True)
    (blocker / "gdown" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'gdown'\", name='gdown')\n")
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), env["PYTHONPATH"]])
    script = tmp_path / "train.py"
    script.write_text("raise SystemExit('the script ran without gdown')\n")
    proc = run_cli(["-m", "croft.dassl_bridge", script], tmp_path, env)
    one_error_line(proc, 1, "Dassl is there but one of its import-time dependencies is not",
                   "No module named 'gdown'", "requirements-dassl.txt")
