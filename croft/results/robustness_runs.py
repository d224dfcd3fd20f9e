"""Reading the runs of the effective-robustness plot (:mod:`croft.results.robustness`): one :class:`RunPoint` per
usable ``results.json``, its ID and OOD accuracies (docs/robustness.md), its WiSE-FT α, and the evaluation stages
(``stage.json``, :mod:`croft.results.stages`) as the results table takes them.
"""
import math
import numbers
import os
from collections import OrderedDict
from dataclasses import dataclass

from .io import RESULTS_FILE, UnreadableSchemaVersion, read_results_json, schema_version
from .stages import read_stage_file
from ..utils.layout import STAGE_FILE

__all__ = ["WISE_ALPHA_KEY", "RobustnessError", "OptionError", "RunPoint", "find_results", "read_runs", "wise_alpha",
           "run_accuracies"]

#: The config key (``TRAINER.<group>.WISE_ALPHA``) that makes a run a point of a WiSE-FT curve.
WISE_ALPHA_KEY = "WISE_ALPHA"


class RobustnessError(ValueError):
    """The runs given cannot be plotted (one line that names the folder, file or key at fault)."""


class OptionError(RobustnessError):
    """An option names something the runs do not have, or a file type that cannot be written."""


# ---------------------------------------------------------------------------------------------
# reading runs

@dataclass
class RunPoint:
    """What the plot needs from one results.json."""
    path: str
    trainer: str
    dataset: str
    setup: str
    seed: int
    unit: str            # the held-out domain(s) (Setup-II) or the dataset (Setup-I)
    id_accuracy: float
    ood: dict            # {OOD set name: accuracy}: the variants (Setup-I) or the held-out domain (Setup-II)
    alpha: float = None  # WiSE-FT mixing coefficient, None for other runs
    values: dict = None  # fingerprint_values without the α key, None for files that do not record them
    fallback: dict = None
    fingerprint: str = None
    stage_of: str = None  # the training run's folder, for an evaluation stage


def find_results(paths):
    """Every ``results.json`` under ``paths`` (run folders, folders above them, or the files), sorted per path.

    Hidden folders (``.old/`` of ``--restart``) are not entered. Raises RobustnessError naming a path
    that does not exist, and when no results.json is found at all.
    """
    found = []
    for path in paths:
        if os.path.isfile(path):
            found.append(path)
            continue
        if not os.path.isdir(path):
            raise RobustnessError(f"{path}: no such run folder")
        for folder, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if RESULTS_FILE in filenames:
                found.append(os.path.join(folder, RESULTS_FILE))
    if not found:
        raise RobustnessError(f"no {RESULTS_FILE} under {', '.join(paths)} (expected finished run folders, "
                              "or a folder above them)")
    unique = list(OrderedDict((os.path.normpath(os.path.abspath(p)), p) for p in found).values())
    return unique


def _finite(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def wise_alpha(results, source="results"):
    """The run's WiSE-FT α: ``fingerprint_values['TRAINER.<group>.WISE_ALPHA']`` (group: the trainer's
    name or its upper case, as croft names config groups), else ``hparams.wise_alpha``; None when neither
    is recorded. Raises RobustnessError naming the key for a value outside [0, 1]."""
    trainer = results.get("trainer", "")
    values = results.get("fingerprint_values") if isinstance(results.get("fingerprint_values"), dict) else {}
    hparams = results.get("hparams") if isinstance(results.get("hparams"), dict) else {}
    for key in (f"TRAINER.{trainer}.{WISE_ALPHA_KEY}", f"TRAINER.{trainer.upper()}.{WISE_ALPHA_KEY}"):
        if key in values:
            where, value = f"fingerprint_values.{key}", values[key]
            break
    else:
        if WISE_ALPHA_KEY.lower() not in hparams:
            return None
        where, value = f"hparams.{WISE_ALPHA_KEY.lower()}", hparams[WISE_ALPHA_KEY.lower()]
    alpha = _finite(value)
    if alpha is None or not 0.0 <= alpha <= 1.0:
        raise RobustnessError(f"{source}: {where} = {value!r}; expected a number in [0, 1]")
    return alpha


def run_accuracies(results, source="results"):
    """``(setup, id_accuracy, {ood set: accuracy})`` of one results.json (see the module docstring).

    Files of schema version 1 (no ``setup``) are read as the results table reads them: several
    ``per_domain`` entries mean Setup-I. Raises RobustnessError naming the file and the key when a
    needed accuracy is missing or not a number, and for the ``custom`` setup (no ID/OOD pair).
    """
    closed = results["closed_set"]
    per_domain = closed.get("per_domain") or {}
    if not isinstance(per_domain, dict):
        raise RobustnessError(f"{source}: closed_set.per_domain must be an object, got {type(per_domain).__name__}")
    setup = results.get("setup") or ("setup1" if len(per_domain) >= 2 else "setup2")
    if setup not in ("setup1", "setup2"):
        raise RobustnessError(f"{source}: setup {setup!r} has no ID/OOD accuracy pair (expected setup1 or setup2)")

    def number(key, value):
        v = _finite(value)
        if v is None:
            raise RobustnessError(f"{source}: closed_set.{key} = {value!r}; expected an accuracy in %")
        return v

    if setup == "setup1":
        if not per_domain:
            raise RobustnessError(f"{source}: closed_set.per_domain is empty; Setup-I needs the variants' accuracies")
        ood = {str(k): number(f"per_domain.{k}", v) for k, v in per_domain.items()}
        return setup, number("test_accuracy", closed.get("test_accuracy")), ood
    targets = results.get("target_domains") or []
    unit = "+".join(map(str, targets)) if isinstance(targets, list) and targets else str(results["dataset"])
    test = closed.get("test_accuracy")
    if test is None and len(per_domain) == 1:
        test = next(iter(per_domain.values()))
    return setup, number("val_accuracy", closed.get("val_accuracy")), {unit: number("test_accuracy", test)}


def _read_stage(folder, warnings):
    """The folder's ``stage.json`` (:func:`~croft.results.stages.read_stage_file`), or None without one."""
    path = os.path.join(folder, STAGE_FILE)
    return read_stage_file(path, warnings) if os.path.isfile(path) else None


def _records_alpha(results, path):
    try:
        return wise_alpha(results, path) is not None
    except RobustnessError:  # read_runs skips it with this message
        return True


def _apply_stages(loaded, warnings):
    """Evaluation stages (docs/sweeps.md §4) as the results table takes them: a stage's own results are no
    point (WiSE-FT α stages aside); a stage that provides ``closed_set`` replaces its training run's."""
    by_folder = {os.path.normpath(os.path.dirname(os.path.abspath(p))): (p, r, s) for p, r, s in loaded}
    replaced, dropped, out = {}, set(), []
    for folder, (path, results, stage) in by_folder.items():
        if not stage or not isinstance(stage.get("stages"), dict):
            continue
        for name, info in stage["stages"].items():
            if not isinstance(info, dict) or "closed_set" not in (info.get("use") or []):
                continue
            stage_folder = os.path.normpath(os.path.join(folder, str(info.get("folder", ""))))
            found = by_folder.get(stage_folder)
            if found is None or (info.get("fingerprint") and found[1].get("fingerprint") != info["fingerprint"]):
                warnings.append(f"{path}: its closed-set accuracy comes from stage {name}, which has no results yet "
                                f"({stage_folder}); run left out")
                dropped.add(folder)
            else:
                replaced[folder] = found[1]["closed_set"]
    for folder, (path, results, stage) in by_folder.items():
        if folder in dropped:
            continue
        parent = None
        if stage and stage.get("stage_of") is not None:
            parent = os.path.normpath(os.path.join(folder, str(stage["stage_of"])))
        if parent is not None and not _records_alpha(results, path):
            if parent not in by_folder:
                warnings.append(f"{path}: evaluation stage {stage.get('stage')} of {parent} (stage.json): its "
                                "closed-set accuracy is its training run's; give that run's folder")
            continue
        if folder in replaced:
            results = dict(results, closed_set=replaced[folder])
        out.append((path, results, parent))
    return out


def read_runs(paths, warnings=None):
    """:class:`RunPoint` objects of every usable results.json under ``paths``.

    A file that is malformed, of an unread schema version, or lacks a needed accuracy is left out with
    a warning naming it; RobustnessError when nothing is left.
    """
    warnings = warnings if warnings is not None else []
    loaded, skipped = [], []
    for path in find_results(paths):
        try:
            results = read_results_json(path)
            schema_version(results, path)
        except UnreadableSchemaVersion as exc:
            skipped.append(str(exc))
            continue
        except (ValueError, OSError) as exc:
            skipped.append(f"{exc}; skipped" if str(exc).startswith(path) else f"{path}: {exc}; skipped")
            continue
        loaded.append((path, results, _read_stage(os.path.dirname(path), warnings)))
    runs = []
    for path, results, parent in _apply_stages(loaded, warnings):
        try:
            setup, id_acc, ood = run_accuracies(results, path)
            alpha = wise_alpha(results, path)
        except RobustnessError as exc:
            skipped.append(f"{exc}; skipped")
            continue
        values = results.get("fingerprint_values")
        values = dict(values) if isinstance(values, dict) else None
        hparams = dict(results.get("hparams") or {})
        if alpha is not None:
            for group in (results["trainer"], results["trainer"].upper()):
                (values or {}).pop(f"TRAINER.{group}.{WISE_ALPHA_KEY}", None)
            hparams.pop(WISE_ALPHA_KEY.lower(), None)
        fallback = {k: results.get(k) for k in ("dataset", "backbone", "pretrained", "shots", "protocol")}
        fallback.update({f"hparams.{k}": v for k, v in hparams.items()})
        unit = next(iter(ood)) if setup == "setup2" else results["dataset"]
        runs.append(RunPoint(path, results["trainer"], results["dataset"], setup, int(results["seed"]), unit,
                             id_acc, ood, alpha, values, fallback, results.get("fingerprint"), parent))
    warnings.extend(skipped)
    if not runs:
        why = f": {skipped[0]}" if skipped else ""
        raise RobustnessError(f"no usable results.json under {', '.join(paths)}{why}")
    return runs
