"""``croft-sweep precompute GRID``: encode every image view the grid's runs will read, before the runs.

Runs that differ only in method hyper-parameters read the same image views: the evaluation sets
(val, test, covariate-shifted test sets, open-set sets, the KNN bank) once per data setting, and the
training views (one per epoch, seeded by the run's seed) once per seed. One *task* per distinct data
setting builds the trainer of its first run, exactly as ``croft.train`` does (same seeding, so a
randomly initialised backbone is the same one), and touches its loaders; the feature cache
(``CACHE.DIR``) then holds every view, and the runs afterwards are pure cache hits
(``timing.feature_cache_misses == 0`` in their results.json). Tasks are sharded across the
launcher's workers or jobs; concurrent writers of the cache are safe.
"""
import shutil
import tempfile
import time

#: Keys that do not change which image views a run reads (the method's own hyper-parameters, the
#: optimiser, score settings). Anything not listed here separates data settings, which at worst
#: encodes nothing new twice.
_NOT_DATA = ("OPTIM.", "TEST.KNN_K", "TEST.MCM_TEMPERATURE", "TEST.FINAL_MODEL", "TEST.PLOT", "TRAIN.")
_KEEP = ("OPTIM.MAX_EPOCH", "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH")


def data_key(values):
    """The part of a run's fingerprint values that decides the image views it reads."""
    import json

    groups = {k.split(".")[1] for k in values if k.startswith("TRAINER.") and k.count(".") >= 2}
    trainer_group = next(iter(groups)) if len(groups) == 1 else None  # the run's own TRAINER.<group>
    kept = {}
    for key, value in values.items():
        if key in _KEEP:
            kept[key] = value
        elif key.startswith(_NOT_DATA) or (trainer_group and key.startswith(f"TRAINER.{trainer_group}.")):
            continue
        else:
            kept[key] = value
    return json.dumps(kept, sort_keys=True, default=str)


def tasks_of(plan, only_missing=True):
    """Precompute tasks ``{"argv", "key", "runs"}``: one per distinct data setting of the plan's runs
    (training runs whose results are missing; evaluation stages read their training run's views)."""
    from . import state as st

    tasks = {}
    for spec in plan.runs:
        if spec.parent_key is not None:
            continue
        if only_missing and st.read_done(spec)[0] is not None:
            continue
        if spec.values is None:
            from ..config import setup_cfg
            from ..engine.fingerprint import fingerprint_values
            from ..train import build_parser

            spec.values = fingerprint_values(setup_cfg(build_parser().parse_args(spec.argv())))
        key = data_key(spec.values)
        if key not in tasks:
            tasks[key] = {"argv": spec.argv(), "key": spec.key, "runs": 0}
        tasks[key]["runs"] += 1
    return list(tasks.values())


class _Touched:
    """What a protocol's ``knn_bank`` needs of an inference result, for precompute: nothing but the loader pass."""

    def __init__(self, n=0):
        self.labels = [0] * n
        self.features = None


def _drain(loader):
    for _ in loader:
        pass


def touch_views(trainer):
    """Iterate every loader a run of ``trainer`` will read, so that each image view is in the cache."""
    from ..evaluation.protocols import build_protocol

    cfg, dm, ds = trainer.cfg, trainer.dm, trainer.dataset
    counts = {}
    if trainer.trains and dm.train_loader_x is not None and cfg.OPTIM.MAX_EPOCH > 0:
        # The cached training loader encodes the views of every remaining epoch on its first pass.
        dm.set_epoch(0)
        next(iter(dm.train_loader_x), None)
        counts["train_x"] = len(ds.train_x)
    if cfg.TRAINER.NAME == "TIP_ADAPTER":  # its cache keys: augmented passes over train_x (views 0..A-1)
        for view in range(cfg.TRAINER.TIP_ADAPTER.AUGMENT_EPOCH):
            _drain(dm.eval_loader(ds.train_x, train_transform=True, name=f"train_x view {view}", view=view))
    if dm.val_loader is not None:
        _drain(dm.val_loader)
    _drain(dm.test_loader)
    for name, items in (ds.test_sets or {}).items():
        if items is not ds.test and items is not ds.val:
            _drain(dm.eval_loader(items, name=name))
    if ds.ood:
        protocol = build_protocol(cfg)
        for name, items in ds.ood.items():
            _drain(dm.eval_loader(items, train_transform=protocol.ood_train_transform, name=name))
        if "knn" in cfg.TEST.OOD_SCORES:
            def infer(items, name):
                _drain(dm.eval_loader(items, name=name))
                return _Touched(len(items))

            protocol.knn_bank(ds, _Touched(len(ds.val)) if ds.val else None, infer)
    cache = dm.feature_cache
    return dict(cache.stats) if cache is not None else {}


def precompute_one(task):
    """Build the trainer of ``task`` (as ``croft.train`` does) in a scratch output folder and touch its views."""
    from ..config import setup_cfg
    from ..engine.checks import check_cfg
    from ..utils.logging import setup_logger
    from ..engine.trainer import build_trainer, set_random_seed
    from ..train import build_parser

    args = build_parser().parse_args(task["argv"])
    scratch = tempfile.mkdtemp(prefix="croft-precompute-")
    try:
        args.output_dir = scratch
        args.eval_only = False
        args.model_dir = ""
        cfg = setup_cfg(args)
        check_cfg(cfg)
        if not cfg.CACHE.ENABLED:
            return {"skipped": "CACHE.ENABLED False: nothing to precompute"}
        from ..engine.trainer import TRAINER_REGISTRY

        if not TRAINER_REGISTRY.get(cfg.TRAINER.NAME).frozen_encoder:
            return {"skipped": f"trainer {cfg.TRAINER.NAME} trains its image encoder: its runs read images online "
                               "and use no cached features; nothing to precompute"}
        setup_logger()
        if cfg.SEED >= 0:
            set_random_seed(cfg.SEED)  # as croft.train.run: a random-init backbone is the run's own
        trainer = build_trainer(cfg)
        return touch_views(trainer)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_payload(payload, emit):
    """Launcher entry point: ``payload = {"tasks": [task, ...]}``; emits one result per task."""
    import contextlib
    import io

    from .runner import enable_sharing

    enable_sharing()
    for task in payload["tasks"]:
        started = time.time()
        result = {"key": task["key"], "runs": task["runs"], "state": "done", "message": ""}
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                result["stats"] = precompute_one(task)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            result.update(state="failed", message=f"error: {type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            from ..utils.logging import setup_logger

            setup_logger()
        result["seconds"] = time.time() - started
        emit(result)


__all__ = ["tasks_of", "touch_views", "precompute_one", "run_payload", "data_key"]
