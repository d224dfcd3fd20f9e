"""Reading run records: what the results tables take from each ``results.json`` under a folder.

Every number comes from one run's ``results.json`` (log text is never read). Folders with ``config.yaml``
or ``log.txt`` but no ``results.json`` are listed as incomplete and never averaged; a malformed
``results.json`` is reported with its path and the reason and skipped; one whose ``schema_version`` is not
one of :data:`~croft.results.io.READ_SCHEMA_VERSIONS` is skipped with a warning naming the file (a newer croft
may mean something else by the same keys). A metric value that is present but not a finite number (NaN,
Infinity, a string, ...) is left out with a warning naming the file and the key, e.g. ``path:
open_set.DTD.energy.auroc = NaN is not a number; ignored`` (``closed_set.val_accuracy`` may be null: no val
split). Schema version 1 files (no ``setup``, no ``fingerprint_values``) are read too.
"""
import json
import numbers
import os

from .io import SETUPS, UnreadableSchemaVersion, read_results_json, schema_version
from ..utils.layout import CONFIG_FILE, LOG_FILE, RESULTS_FILE, STAGE_FILE
from .stages import combine_stages, read_stage_file
from .values import checked_number, normalise

__all__ = ["ALL_METRICS", "RunRecord", "scan"]

INCOMPLETE_MARKERS = (CONFIG_FILE, LOG_FILE)
#: Every open-set metric read (results-schema.md §2.4), with its label in the tables.
ALL_METRICS = (("auroc", "AUROC"), ("fpr95", "FPR95"), ("aupr_in", "AUPR-In"), ("aupr_out", "AUPR-Out"))


class RunRecord:
    """What the table needs from one results.json."""

    __slots__ = ("path", "setup", "legacy_setup", "trainer", "dataset", "backbone", "pretrained", "shots", "protocol",
                 "hparams", "hparams_key", "seed", "unit", "accuracy", "id_accuracy", "val", "open_set",
                 "fingerprint", "training_fingerprint", "stages", "stage_plan", "values")

    def __init__(self, path, results, warnings):
        self.path = path
        r = results
        self.fingerprint = r.get("fingerprint")
        self.training_fingerprint = r.get("training_fingerprint")
        self.stages = []  # [(section, stage name, overrides text)] taken from evaluation stages
        self.stage_plan = []  # the same for every stage its stage.json names, with or without results
        values = r.get("fingerprint_values")
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"{path}: 'fingerprint_values' must be an object, got {type(values).__name__}")
        self.values = {str(k): normalise(v) for k, v in values.items()} if values else None
        self.trainer = r["trainer"]
        self.dataset = r["dataset"]
        self.backbone = r.get("backbone")
        self.pretrained = r.get("pretrained")
        shots = r.get("shots")
        self.shots = int(shots) if isinstance(shots, numbers.Real) and not isinstance(shots, bool) \
            and float(shots).is_integer() else shots
        self.protocol = r.get("protocol") or "standard"
        self.hparams = normalise(r.get("hparams") or {})
        self.hparams_key = json.dumps(self.hparams, sort_keys=True)
        self.seed = int(r["seed"])
        targets = r.get("target_domains") or []
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"{path}: 'target_domains' must be a list of strings, got {targets!r}")
        self.unit = "+".join(targets) if targets else self.dataset
        self.setup = r.get("setup")
        self._read_closed_set(r["closed_set"], warnings)
        self._read_open_set(r.get("open_set") or {}, warnings)

    def _read_closed_set(self, closed, warnings):
        path = self.path
        per_domain = closed.get("per_domain") or {}
        if not isinstance(per_domain, dict):
            raise ValueError(f"{path}: 'closed_set.per_domain' must be an object, "
                             f"got {type(per_domain).__name__}")
        self.accuracy = {}
        self.id_accuracy = None
        self.legacy_setup = self.setup is None
        if self.setup is None:  # schema version 1: no explicit setup; several test sets = Setup-I
            self.setup = "setup1" if len(per_domain) >= 2 else "setup2"
        elif self.setup not in SETUPS:
            raise ValueError(f"{path}: 'setup' must be one of {list(SETUPS)}, got {self.setup!r}")
        domain_values = {}
        for name, value in per_domain.items():
            v = checked_number(value, path, f"closed_set.per_domain.{name}", warnings)
            if v is not None:
                domain_values[str(name)] = v
        test_accuracy = checked_number(closed.get("test_accuracy"), path, "closed_set.test_accuracy", warnings,
                                       null_ok=True)
        if self.setup == "setup1":  # ID accuracy, plus each covariate-shifted variant
            self.id_accuracy = test_accuracy
            self.accuracy.update(domain_values)
        else:
            v = test_accuracy
            if v is None and len(per_domain) == 1:
                v = next(iter(domain_values.values()), None)
            if v is None:
                warnings.append(f"{path}: no numeric closed_set.test_accuracy; the run adds no accuracy")
            else:
                self.accuracy[self.unit] = v
        self.val = checked_number(closed.get("val_accuracy"), path, "closed_set.val_accuracy", warnings,
                                  null_ok=True)

    def _read_open_set(self, open_set, warnings):
        path = self.path
        self.open_set = {}
        for set_name, by_score in open_set.items():
            if not isinstance(by_score, dict):
                warnings.append(f"{path}: open_set.{set_name} is not an object; ignored")
                continue
            for score, metrics in by_score.items():
                if not isinstance(metrics, dict):
                    warnings.append(f"{path}: open_set.{set_name}.{score} is not an object; ignored")
                    continue
                for metric, _ in ALL_METRICS:
                    if metric not in metrics:
                        continue
                    v = checked_number(metrics[metric], path, f"open_set.{set_name}.{score}.{metric}", warnings)
                    if v is not None:
                        self.open_set[(str(set_name), str(score), metric)] = v

    @property
    def setting_key(self):
        return (self.trainer, self.dataset, self.backbone, self.pretrained, self.shots, self.protocol,
                self.hparams_key)

    @property
    def recorded(self):
        """Whether results.json holds the run's settings (``fingerprint_values``)."""
        return self.values is not None

    def fallback_identity(self):
        """What an older results.json says about its settings: the method's ``hparams``."""
        return {f"hparams.{k}": v for k, v in self.hparams.items()}


def scan(root):
    """Walk ``root``; return ``(runs, incomplete, malformed, warnings, refused)``.

    ``runs`` are :class:`RunRecord` objects (sorted by path) with their evaluation stages folded in
    (:func:`~croft.results.stages.combine_stages`), ``incomplete`` the folders with ``config.yaml`` or
    ``log.txt`` but no ``results.json``, ``malformed`` ``(path, reason)``. Hidden folders (``.name``) are not
    entered. ``refused``: one line per results.json of a schema version this code does not read (also
    appended to ``warnings``).
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"results root {root} is not a folder")
    runs, incomplete, malformed, warnings, refused = [], [], [], [], []
    stage_files = {}
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files = set(filenames)
        if RESULTS_FILE in files:
            path = os.path.join(folder, RESULTS_FILE)
            try:
                results = read_results_json(path)
                schema_version(results, path)
                run_warnings = []
                runs.append(RunRecord(path, results, run_warnings))
                warnings.extend(run_warnings)
                if STAGE_FILE in files:
                    stage = read_stage_file(os.path.join(folder, STAGE_FILE), warnings)
                    if stage is not None:
                        stage_files[os.path.normpath(os.path.abspath(folder))] = stage
            except UnreadableSchemaVersion as e:
                refused.append(str(e))
            except (ValueError, TypeError, KeyError, OSError) as e:
                reason = str(e)
                if reason.startswith(path + ": "):
                    reason = reason[len(path) + 2:]
                malformed.append((path, reason))
        elif any(m in files for m in INCOMPLETE_MARKERS):
            incomplete.append(folder)
    runs = combine_stages(runs, stage_files, warnings)
    runs.sort(key=lambda r: r.path)
    warnings.extend(refused)
    legacy = _legacy_warning(runs)
    if legacy:
        warnings.append(legacy)
    return runs, incomplete, malformed, warnings, refused


def _legacy_warning(runs):
    """One line about the runs whose results.json does not record their settings, or None."""
    unrecorded = [r for r in runs if not r.recorded]
    if not unrecorded:
        return None
    v1 = [r for r in unrecorded if r.legacy_setup]
    kinds = "schema version 1" if len(v1) == len(unrecorded) else \
        "schema version 1 or an early 2" if v1 else "an early schema version 2"
    text = (f"{len(unrecorded)} results.json file(s) without fingerprint_values ({kinds}, e.g. {unrecorded[0].path}): "
            "their rows group runs by trainer, dataset, backbone, pretrained, shots, protocol and hparams only")
    if v1:
        text += (f"; the {len(v1)} of schema version 1 (no 'setup' key) are read as Setup-I when they hold several "
                 "test sets, else as Setup-II")
    return text + "; rerun with --eval-only to record the settings"
