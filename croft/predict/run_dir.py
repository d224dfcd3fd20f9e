"""Reading a run folder for prediction, before anything is built: its layout (without torch, so a bad
folder fails at once), its config, and whether its files describe one run. Every refusal is one
:class:`PredictError`: ``<what>, <where>, <what was expected>``.
"""
import os
from dataclasses import dataclass
from typing import Optional

from ..utils.layout import (BEST_NAME, CONFIG_FILE, DETECTOR_FILE, EPOCH_PREFIX, FINGERPRINT_FILE, RESULTS_FILE,
                              SCHEMA_VERSION, UnreadableRecord, checkpoint_files as layout_checkpoint_files,
                              model_folders, read_json_object)

#: config.yaml keys that may differ from what the run recorded: where the dataset is (a moved dataset);
#: predicting does not read it. ``fingerprint_version`` is the code's, not the config's.
RELOCATABLE_KEYS = ("DATASET.ROOT", "DATASET.OOD_ROOT", "fingerprint_version")
RUN_FOLDER = "a run folder written by croft-train (config.yaml, checkpoints, results.json)"
EXPLICIT_HINT = ("a folder of checkpoints alone (the original CRoFT code's) loads with the settings it was trained "
                 "with: --config-file, --dataset-config-file, --root, --set KEY VALUE (croft.load(run_dir, "
                 "config=..., dataset_config=...))")
SAME_RUN = ("the files of one run (config.yaml, fingerprint.json, checkpoints and results.json as croft-train "
            "wrote them); restore the run's own file, or re-run croft-train")


class PredictError(Exception):
    """A run folder (or request) that cannot be predicted with: ``<what>, <where>, <what was expected>``."""

    def __init__(self, what, where, expected):
        super().__init__(f"{what}, {where}, {expected}")
        self.what, self.where, self.expected = what, where, expected


# ---------------------------------------------------------------------------------------------- run folder

@dataclass
class RunInfo:
    """What the run folder says about itself (read without torch)."""
    run_dir: str
    results: dict
    detector: Optional[dict]
    #: The settings are given by the caller (a folder without config.yaml), not read from config.yaml.
    explicit: bool = False


def _read_json(path, what):
    try:
        return read_json_object(path)
    except (FileNotFoundError, UnreadableRecord) as exc:
        why = exc.why if isinstance(exc, UnreadableRecord) else str(exc)
        raise PredictError(f"unreadable {what}", path, f"the JSON object a finished croft run writes ({why})") from None


def check_run_dir(run_dir, explicit=False):
    """Check a run folder before anything is built; returns a :class:`RunInfo` or raises :class:`PredictError`.

    ``explicit``: the caller gives the run's settings (a folder without config.yaml, whose
    results.json, when there is one, is optional)."""
    run_dir = os.path.abspath(os.path.expanduser(str(run_dir)))
    if not os.path.exists(run_dir):
        raise PredictError("run folder not found", run_dir, RUN_FOLDER)
    if not os.path.isdir(run_dir):
        raise PredictError("not a folder", run_dir, RUN_FOLDER)
    has_config = os.path.isfile(os.path.join(run_dir, CONFIG_FILE))
    if explicit:
        if has_config:
            raise PredictError("settings given for a run that has its own config.yaml", run_dir,
                               "the run's config.yaml alone (drop --config-file, --dataset-config-file, --root, "
                               "--seed, --trainer, --backbone, --set: they are for a folder of checkpoints without "
                               "config.yaml)")
        results_path = os.path.join(run_dir, RESULTS_FILE)
        results = _read_json(results_path, RESULTS_FILE) if os.path.isfile(results_path) else {}
        return RunInfo(run_dir, results, _read_detector(run_dir), explicit=True)
    if not has_config:
        expected = "the merged config croft-train writes when a run starts"
        if _checkpoint_folders(run_dir, None):
            expected += f"; {EXPLICIT_HINT}"
        raise PredictError("no config.yaml", run_dir, expected)
    results_path = os.path.join(run_dir, RESULTS_FILE)
    if not os.path.isfile(results_path):
        raise PredictError("unfinished run (no results.json)", run_dir,
                           "results.json, written last by a finished run (rerun croft-train with the same "
                           "--output-dir to finish it)")
    results = _read_json(results_path, RESULTS_FILE)
    version = results.get("schema_version", 1)
    if version != SCHEMA_VERSION:
        raise PredictError(f"results.json of schema_version {version}", results_path,
                           f"schema_version {SCHEMA_VERSION}, the version this croft writes (re-evaluate the run "
                           "with croft-train --eval-only to rewrite it)")
    best_epoch = results.get("best_epoch")
    if best_epoch is not None and not _checkpoint_folders(run_dir, best_epoch):
        raise PredictError("no checkpoint", run_dir,
                           f"<model>/{BEST_NAME} (or {EPOCH_PREFIX}{best_epoch}) of trainer "
                           f"{results.get('trainer', '?')}; an --eval-only run folder holds none: use the folder "
                           "of the training run")
    return RunInfo(run_dir, results, _read_detector(run_dir))


def _read_detector(run_dir):
    from ..evaluation.detector import DETECTOR_FORMAT

    detector_path = os.path.join(run_dir, DETECTOR_FILE)
    detector = _read_json(detector_path, DETECTOR_FILE) if os.path.isfile(detector_path) else None
    if detector is not None and detector.get("format") != DETECTOR_FORMAT:
        raise PredictError(f"detector.json of format {detector.get('format')}", detector_path,
                           f"format {DETECTOR_FORMAT}, the format this croft writes")
    return detector


def _checkpoint_folders(run_dir, best_epoch):
    """Model folders holding ``model-best``, or ``model.pth.tar-<best_epoch>`` (any checkpoint when ``best_epoch``
    is None)."""
    return model_folders(run_dir, epoch=best_epoch)


def check_output_path(path):
    """Refuse an ``--output`` file that cannot be written, before anything is built or read (:class:`PredictError`).

    Missing parent folders are created when writing (as for croft-train's OUTPUT_DIR): the nearest
    existing one must be a writable folder."""
    if not path.lower().endswith((".csv", ".jsonl")):
        raise PredictError(f"unknown output format {path}", "--output", "a .csv or .jsonl file name")
    target = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(target):
        raise PredictError("--output is a folder", target, "a .csv or .jsonl file name")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise PredictError("--output is not writable", target, "a file you may write (or a new file name)")
    folder = os.path.dirname(target)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise PredictError("cannot create the --output file", target, f"a path below folders, but {folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PredictError("--output folder is not writable", target,
                           f"a folder you may write to ({folder} is read-only for you)")
    return target


def load_run_config(run_dir):
    """The run's ``config.yaml`` merged into the default tree, for prediction: ``OUTPUT_DIR`` = ``run_dir``
    and ``CACHE.ENABLED False`` (predicting never reads or writes the feature cache). Frozen."""
    from ..config import ConfigError, get_cfg_default, merge_from_file, validate_cfg

    path = os.path.join(run_dir, CONFIG_FILE)
    cfg = get_cfg_default()
    try:
        merge_from_file(cfg, path)
        validate_cfg(cfg)
    except ConfigError as exc:
        raise PredictError("config.yaml does not fit this croft's config tree", path,
                           f"a run's merged config ({exc})") from None
    cfg.OUTPUT_DIR = run_dir
    cfg.CACHE.ENABLED = False
    cfg.freeze()
    return cfg


def explicit_run_config(run_dir, config=None, dataset_config=None, root=None, opts=None):
    """The settings of a folder without config.yaml, found, merged and checked as croft-train does
    (``configs/...`` paths as :func:`croft.config.locate.locate_config` finds them; defaults, dataset
    YAML, trainer YAML, ``root``, ``opts`` = ``KEY VALUE`` overrides; :class:`~croft.config.ConfigError`
    naming the key); ``OUTPUT_DIR`` = ``run_dir``, no feature cache. Frozen."""
    from argparse import Namespace

    from ..config import setup_cfg
    from ..config.locate import locate_config
    from ..engine.checks import check_cfg

    args = Namespace(config_file=locate_config(os.fspath(config) if config else ""),
                     dataset_config_file=locate_config(os.fspath(dataset_config) if dataset_config else "",
                                                       "--dataset-config-file"),
                     root=os.fspath(root) if root else "", output_dir="", resume="", seed=None, source_domains=None,
                     target_domains=None, transforms=None, trainer="", backbone="", head="",
                     opts=[str(o) for o in (opts or [])])
    cfg = setup_cfg(args)
    check_cfg(cfg)
    cfg.defrost()
    cfg.OUTPUT_DIR = run_dir
    cfg.CACHE.ENABLED = False
    cfg.freeze()
    return cfg


# ---------------------------------------------------------------------------------------------- run identity

def checkpoint_files(run_dir):
    """Every checkpoint of the folder, as ``(label, path)`` (:func:`croft.utils.layout.checkpoint_files`)."""
    return [(f"checkpoint {label}", path) for label, path in layout_checkpoint_files(run_dir)]


def _checkpoint_fingerprint(path):
    """The fingerprint a checkpoint records (None when it records none), reading no tensor data."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 -- not a plain zip checkpoint: the checked reader says why, or reads it
        from ..engine.checkpoint import safe_torch_load

        state = safe_torch_load(path)
    fingerprint = state.get("fingerprint") if isinstance(state, dict) else None
    return fingerprint if isinstance(fingerprint, dict) and "values" in fingerprint else None


def recorded_fingerprints(info):
    """``[(label, path, fingerprint or None)]`` of what the run folder records: results.json,
    fingerprint.json, then every checkpoint (:func:`checkpoint_files`)."""
    records = []
    if info.results:
        values = info.results.get("fingerprint_values")
        records.append((RESULTS_FILE, os.path.join(info.run_dir, RESULTS_FILE),
                        {"values": values} if isinstance(values, dict) else None))
    path = os.path.join(info.run_dir, FINGERPRINT_FILE)
    if os.path.isfile(path):
        stored = _read_json(path, FINGERPRINT_FILE)
        records.append((FINGERPRINT_FILE, path, stored if isinstance(stored.get("values"), dict) else None))
    records.extend((label, path, _checkpoint_fingerprint(path)) for label, path in checkpoint_files(info.run_dir))
    return records


def _mismatch(label, where, other, diffs):
    key, mine, theirs = diffs[0]
    more = f" (and {len(diffs) - 1} more key{'s' if len(diffs) > 2 else ''})" if len(diffs) > 1 else ""
    return PredictError(f"{label} does not match {other}: {key} is {mine!r} in {label}, {theirs!r} in {other}{more}",
                        where, SAME_RUN)


def check_fingerprints(info, cfg):
    """Refuse a run folder whose files do not describe one run (:class:`PredictError` naming the first
    differing key and both values).

    A run's folder: results.json, fingerprint.json and every checkpoint must record the same settings
    (compared as the fingerprint compares them: a key one of them lacks counts as its default), and
    ``cfg`` (its config.yaml) must give them, except :data:`RELOCATABLE_KEYS`. A folder whose
    settings are given (``info.explicit``): every recorded fingerprint must match them on the
    training side, as ``croft-train --eval-only --model-dir`` checks; a folder that records none (the
    original CRoFT code's) is not checked.
    """
    from ..engine.fingerprint import differences, make_fingerprint

    current = make_fingerprint(cfg)
    records = recorded_fingerprints(info)
    if info.explicit:
        for label, path, stored in records:
            diffs = differences(stored, current, training_only=True) if stored is not None else []
            if diffs:
                raise _mismatch(label, path, "the settings given", diffs)
        return
    recorded = [(label, stored) for label, _, stored in records if stored is not None]
    if not recorded:
        return  # written before croft recorded fingerprints: nothing to compare
    reference, expected = recorded[0]
    for label, path, stored in records:
        if stored is None:
            raise PredictError(f"{label} records no fingerprint, unlike {reference}", path,
                               f"{SAME_RUN} (croft writes the fingerprint into every file it writes)")
        diffs = differences(stored, expected)
        if diffs:
            raise _mismatch(label, path, reference, diffs)
    diffs = [d for d in differences(current, expected) if d[0] not in RELOCATABLE_KEYS]
    if diffs:
        raise _mismatch(CONFIG_FILE, os.path.join(info.run_dir, CONFIG_FILE), reference, diffs)
