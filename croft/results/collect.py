"""Results tables from run folders: per-run aggregation of ``results.json`` files.

This replaces the reference's log parsers (docs/protocols.md §6), which pooled Setup-I variants,
kept running means across logs and assigned seeds by listing order. Here every number comes
from one run's ``results.json`` and the aggregation is explicit:

* A **setting** (one row) is the set of runs whose recorded settings, results.json's
  ``fingerprint_values``, agree on every key except :data:`POOLED_KEYS` (the seed and the held-out
  domain). A key that one run lacks (added to croft after it ran) counts as its default. A run whose
  sections come from evaluation stages also agrees on those stages. Each row is labelled with
  the keys in which it differs from the other rows of its method and block (``row["setting"]``);
  the notes say which keys were pooled. Older files without ``fingerprint_values`` (schema
  version 1, or an early version 2) are grouped by (trainer, dataset, backbone, pretrained, shots,
  protocol, hparams), with one warning; they never share a row with runs that have them.
* **Closed set**: a run contributes ``closed_set.test_accuracy`` under its held-out domain
  (``target_domains`` joined with ``+``, or the dataset name when there is none). A run whose
  ``closed_set.per_domain`` holds several entries (Setup-I: ImageNet-V2/-Sketch/-A/-R evaluated
  in one run) contributes each entry as its own column instead. Each column of a setting is
  the mean ± std over seeds; such a run's ``closed_set.test_accuracy`` (the ID accuracy) is
  shown as an **ID** column, outside the average. **Avg** is computed per seed as the mean over
  all columns of the dataset, then mean ± std over seeds, using only the seeds that have every
  column; when some seed lacks a column the average is *partial* (``*``).
* **Open set**: for each OOD set, score and metric (AUROC, FPR95), the per-seed value is the
  mean over the held-out domains, then mean ± std over seeds (again only complete seeds;
  ``*`` when partial).
* std is the population std (``ddof=0``), as in the reference collectors.
* ``select="val"`` keeps, per (trainer, dataset, backbone, pretrained, shots, protocol), the
  setting with the best mean ``closed_set.val_accuracy`` (never test numbers).
* A results.json whose ``schema_version`` is not one of :data:`~croft.results.io.READ_SCHEMA_VERSIONS`
  is skipped with a warning naming the file (a newer croft may mean something else by the same keys).

**Stages** (``croft-sweep``, docs/sweeps.md): a run folder may hold a ``stage.json``. A training run's
lists its evaluation stages (``{"stage": "train", "stages": {name: {"folder", "fingerprint", "use"}}}``);
an evaluation stage's (an ``--eval-only`` run of that model with its own overrides, e.g. CRoFT's
Setup-II open-set evaluation at ``EVAL_RATIO 0.5``) names its training run (``"stage_of"``). The
stage's results do not form rows of their own: each section it provides (``use``: ``open_set``
and/or ``closed_set``) replaces that section of its training run, checked by the training
fingerprint; while a stage has no results yet, that section of its training run is left out
(never taken from the training run's own evaluation). The table's footer names the stage and
its overrides.

Folders with ``config.yaml`` or ``log.txt`` but no ``results.json`` are listed as incomplete
and never averaged; a malformed ``results.json`` is reported with its path and the reason and
skipped. A metric value that is present but not a finite number (NaN, Infinity, a string, ...)
is left out with a warning naming the file and the key, e.g. ``path: open_set.DTD.energy.auroc =
NaN is not a number; ignored`` (``closed_set.val_accuracy`` may be null: no val split). Log text
is never read.

:func:`format_table` prints a compact table by default (accuracies, then AUROC / FPR95 per
open-set set of one score, settings keyed ``[a]``, best values marked) and the full table with
``wide=True``.
"""
import csv
import functools
import io
import json
import math
import numbers
import os
from collections import OrderedDict, defaultdict

import numpy as np

from ..evaluation.scores import score_names
from .io import RESULTS_FILE, SETUPS, UnreadableSchemaVersion, read_results_json, schema_version

__all__ = [
    "CollectedRows", "RunRecord", "scan", "combine_stages", "aggregate", "collect", "format_table",
    "format_hparams", "format_setting", "format_stat", "format_notes", "notes_lines", "available_scores",
    "run_identities", "differing_keys", "FORMATS", "DEFAULT_SCORES", "DEFAULT_OOD_METRICS", "ALL_METRICS",
    "POOLED_KEYS",
]

FORMATS = ("md", "csv", "latex")
INCOMPLETE_MARKERS = ("config.yaml", "log.txt")
METRICS = (("auroc", "AUROC"), ("fpr95", "FPR95"))  # the open-set columns of the wide table
#: Every open-set metric collected (results-schema.md §2.4); the compact table shows those of ``ood_metrics``.
ALL_METRICS = METRICS + (("aupr_in", "AUPR-In"), ("aupr_out", "AUPR-Out"))
LOWER_IS_BETTER = frozenset({"fpr95"})
DEFAULT_SCORES = ("energy",)
DEFAULT_OOD_METRICS = ("auroc", "fpr95")
SETTING_FIELDS = ("trainer", "dataset", "backbone", "pretrained", "shots", "protocol")
BLOCK_FIELDS = ("dataset", "backbone", "pretrained", "shots", "protocol")
SELECT_FIELDS = ("trainer", "dataset", "backbone", "pretrained", "shots", "protocol")
ID_COLUMN = "ID"
PARTIAL_MARK = "*"
FEWER_SEEDS_MARK = "†"
#: fingerprint_values keys that may differ between the runs of one row: the seed and the held-out domain.
POOLED_KEYS = ("SEED", "TEST_ENV", "DATASET.SOURCE_DOMAINS", "DATASET.TARGET_DOMAINS")
#: Pseudo keys of a row's identity: the evaluation stages its sections come from, and (for rows of
#: older files next to newer ones) that its settings were not recorded.
STAGE_KEY = "stage"
UNRECORDED_KEY = "settings"
ABSENT = "(absent)"


class CollectedRows(list):
    """The rows of :func:`collect` (a plain list of row dicts) plus what was left out.

    Attributes: ``incomplete`` (run folders without results.json), ``malformed``
    (``(path, reason)`` pairs), ``refused`` (one line per results.json of a schema version this code
    does not read; also in ``warnings``), ``warnings`` (duplicates, unusable values, selection
    notes), ``select`` (the selection rule used, or None) and ``root``.
    """

    def __init__(self, rows=(), incomplete=(), malformed=(), warnings=(), select=None, root=None, refused=()):
        super().__init__(rows)
        self.incomplete = list(incomplete)
        self.malformed = list(malformed)
        self.warnings = list(warnings)
        self.refused = list(refused)
        self.select = select
        self.root = root


# ---------------------------------------------------------------------------------------------
# reading runs

def _number(value):
    """A finite float, or None for anything else (missing, null, bool, string, NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _value_text(value):
    """A value as results.json spells it (NaN, Infinity, "text", true, null), at most 60 characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked_number(value, path, key, warnings, null_ok=False):
    """:func:`_number` of ``value``; a present value that is not a finite number adds a warning.

    The warning names the file and the dotted key, e.g. ``path: open_set.DTD.energy.auroc = NaN is
    not a number; ignored``. ``null`` (None) is silent when ``null_ok`` (a documented "not available").
    """
    v = _number(value)
    if v is None and not (value is None and null_ok):
        finite = isinstance(value, float) and math.isinf(value)
        warnings.append(f"{path}: {key} = {_value_text(value)} is not a {'finite ' if finite else ''}number; ignored")
    return v


def _norm_hparam(value):
    """Canonical form so that 15 and 15.0 (or [1, 2] and (1, 2)) are the same setting."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return [_norm_hparam(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm_hparam(v) for k, v in value.items()}
    return str(value)


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
        self.values = {str(k): _norm_hparam(v) for k, v in values.items()} if values else None
        self.trainer = r["trainer"]
        self.dataset = r["dataset"]
        self.backbone = r.get("backbone")
        self.pretrained = r.get("pretrained")
        shots = r.get("shots")
        self.shots = int(shots) if isinstance(shots, numbers.Real) and not isinstance(shots, bool) \
            and float(shots).is_integer() else shots
        self.protocol = r.get("protocol") or "standard"
        self.hparams = _norm_hparam(r.get("hparams") or {})
        self.hparams_key = json.dumps(self.hparams, sort_keys=True)
        self.seed = int(r["seed"])
        targets = r.get("target_domains") or []
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"{path}: 'target_domains' must be a list of strings, got {targets!r}")
        self.unit = "+".join(targets) if targets else self.dataset

        closed = r["closed_set"]
        per_domain = closed.get("per_domain") or {}
        if not isinstance(per_domain, dict):
            raise ValueError(f"{path}: 'closed_set.per_domain' must be an object, "
                             f"got {type(per_domain).__name__}")
        self.accuracy = {}
        self.id_accuracy = None
        self.setup = r.get("setup")
        self.legacy_setup = self.setup is None
        if self.setup is None:  # schema version 1: no explicit setup; several test sets = Setup-I
            self.setup = "setup1" if len(per_domain) >= 2 else "setup2"
        elif self.setup not in SETUPS:
            raise ValueError(f"{path}: 'setup' must be one of {list(SETUPS)}, got {self.setup!r}")
        domain_values = {}
        for name, value in per_domain.items():
            v = _checked_number(value, path, f"closed_set.per_domain.{name}", warnings)
            if v is not None:
                domain_values[str(name)] = v
        test_accuracy = _checked_number(closed.get("test_accuracy"), path, "closed_set.test_accuracy", warnings,
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
        self.val = _checked_number(closed.get("val_accuracy"), path, "closed_set.val_accuracy", warnings,
                                   null_ok=True)

        self.open_set = {}
        open_set = r.get("open_set") or {}
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
                    v = _checked_number(metrics[metric], path, f"open_set.{set_name}.{score}.{metric}", warnings)
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

    ``runs`` are :class:`RunRecord` objects (sorted by path), ``incomplete`` the folders with
    ``config.yaml`` or ``log.txt`` but no ``results.json``, ``malformed`` ``(path, reason)``.
    Hidden folders (``.name``) are not entered. ``refused``: one line per results.json of a schema
    version this code does not read (also appended to ``warnings``).
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
                    stage = _read_stage_file(os.path.join(folder, STAGE_FILE), warnings)
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


# ---------------------------------------------------------------------------------------------
# stages (croft-sweep: an evaluation stage replaces sections of its training run's results)

STAGE_FILE = "stage.json"
STAGE_SECTIONS = ("open_set", "closed_set")


def _read_stage_file(path, warnings):
    try:
        with open(path, encoding="utf-8") as f:
            stage = json.load(f)
    except (OSError, ValueError) as exc:
        warnings.append(f"{path}: unreadable stage file ({exc}); ignored")
        return None
    if not isinstance(stage, dict) or not isinstance(stage.get("stage"), str):
        warnings.append(f"{path}: not a stage file (expected an object with 'stage'); ignored")
        return None
    return stage


def _overrides_text(overrides):
    if not isinstance(overrides, dict) or not overrides:
        return ""
    return ", ".join(f"{k} {_fmt_value(_norm_hparam(v))}" for k, v in overrides.items())


def _take_sections(run, stage_run, sections):
    if "open_set" in sections:
        run.open_set = dict(stage_run.open_set)
    if "closed_set" in sections:
        run.accuracy = dict(stage_run.accuracy)
        run.id_accuracy = stage_run.id_accuracy
        run.val = stage_run.val


def _clear_sections(run, sections):
    if "open_set" in sections:
        run.open_set = {}
    if "closed_set" in sections:
        run.accuracy, run.id_accuracy, run.val = {}, None, None


def combine_stages(runs, stage_files, warnings):
    """Fold evaluation-stage results into their training runs (see the module docstring); returns the runs
    that form rows (training runs and runs without stages)."""
    if not stage_files:
        return runs
    by_folder = {os.path.normpath(os.path.abspath(os.path.dirname(r.path))): r for r in runs}
    stage_runs = {}
    for folder, stage in stage_files.items():
        if stage.get("stage_of") is not None and folder in by_folder:
            stage_runs[folder] = by_folder[folder]
    used, missing, mismatched = set(), defaultdict(list), defaultdict(list)
    for folder, run in by_folder.items():
        stage = stage_files.get(folder)
        if folder in stage_runs or not stage or not isinstance(stage.get("stages"), dict):
            continue
        for name, info in stage["stages"].items():
            if not isinstance(info, dict):
                continue
            use = info.get("use")
            sections = [u for u in (["open_set"] if use is None else use) if u in STAGE_SECTIONS]
            stage_folder = os.path.normpath(os.path.join(folder, str(info.get("folder", ""))))
            if not sections:  # "use: []": read by a table of its own (base-to-new, croft/results/fewshot_tables.py)
                used.add(stage_folder)
                continue
            text = _overrides_text(info.get("overrides") or stage_files.get(stage_folder, {}).get("overrides"))
            run.stage_plan.extend((section, str(name), text) for section in sections)
            stage_run = stage_runs.get(stage_folder)
            ok = stage_run is not None and (not info.get("fingerprint") or stage_run.fingerprint == info["fingerprint"])
            if ok and run.training_fingerprint and stage_run.training_fingerprint \
                    and stage_run.training_fingerprint != run.training_fingerprint:
                mismatched[name].append(stage_run.path)
                ok = False
            if not ok:
                if stage_run is None or (info.get("fingerprint") and stage_run.fingerprint != info["fingerprint"]):
                    missing[name].append(stage_folder)
                _clear_sections(run, sections)
                continue
            used.add(stage_folder)
            _take_sections(run, stage_run, sections)
            for section in sections:
                run.stages.append((section, str(name), text))
    for name, folders in missing.items():
        warnings.append(f"{len(folders)} run(s) of stage {name} have no results yet (e.g. {folders[0]}): the "
                        "section(s) their training runs take from that stage are left out")
    for name, paths in mismatched.items():
        warnings.append(f"{len(paths)} result(s) of stage {name} were evaluated from another model than the training "
                        f"run next to them (training fingerprint differs, e.g. {paths[0]}); not used")
    unused = [f for f in stage_runs if f not in used]
    if unused:
        warnings.append(f"{len(unused)} evaluation-stage result(s) not named by their training run's stage.json "
                        f"(e.g. {unused[0]}); not shown")
    return [r for folder, r in by_folder.items() if folder not in stage_runs]


def _stage_notes(rows):
    """Footer lines that say which sections came from which evaluation stage."""
    found = OrderedDict()
    for row in rows:
        for section, name, overrides in row.get("stages") or []:
            found.setdefault((name, overrides), set()).add(section)
    notes = []
    for (name, overrides), sections in found.items():
        what = " and ".join({"open_set": "open-set metrics", "closed_set": "closed-set accuracy"}[s]
                            for s in STAGE_SECTIONS if s in sections)
        rest = "the closed-set accuracy comes from the training runs" if sections == {"open_set"} else \
            "the other numbers come from the training runs"
        how = f" with {overrides}" if overrides else ""
        notes.append(f"Stages: {what} of the rows with an evaluation stage come from stage {name} (each trained model "
                     f"evaluated again{how}; stage.json); {rest}.")
    return notes


# ---------------------------------------------------------------------------------------------
# statistics

def _stat(values, partial=False):
    """mean ± population std (ddof=0) of per-seed values; None when there are none."""
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=0)), "n": int(arr.size),
            "values": [float(v) for v in values], "partial": bool(partial)}


def _complete_seed_average(by_seed, columns, seeds):
    """Per seed, the mean over ``columns`` (only seeds that have every column); then _stat.

    ``by_seed``: ``{seed: {column: value}}``. Partial when some seed of ``seeds`` lacks a column.
    """
    if not columns:
        return None, False
    complete = [s for s in seeds if all(c in by_seed.get(s, {}) for c in columns)]
    partial = len(complete) < len(seeds)
    per_seed = [float(np.mean([by_seed[s][c] for c in columns])) for s in complete]
    stat = _stat(per_seed, partial)
    return stat, partial


def _score_order(score):
    names = score_names()
    return (names.index(score), "") if score in names else (len(names), score)


def _sort_value(v):
    """Sort key that tolerates None and mixed types (numbers before strings)."""
    if v is None:
        return (2, 0, "")
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0, str(v))


# ---------------------------------------------------------------------------------------------
# settings: which runs share a row, and what tells rows apart

@functools.lru_cache(maxsize=1)
def _config_defaults():
    from ..config import get_cfg_default
    from ..config.merge import flatten

    return {k: _norm_hparam(list(v) if isinstance(v, tuple) else v) for k, v in flatten(get_cfg_default())}


def run_identities(entries):
    """The settings two runs must share to be averaged in one row, one dict per entry.

    ``entries``: ``[(trainer, fingerprint_values or None, fallback)]``. With values: every key except
    :data:`POOLED_KEYS`, where a key that another run of the same trainer has and this one lacks
    counts as its default (:data:`ABSENT` when croft has none). Without: ``fallback`` (what an older
    results.json records, e.g. its ``hparams``).
    """
    keys = defaultdict(set)
    for trainer, values, _ in entries:
        if values is not None:
            keys[trainer].update(values)
    defaults = _config_defaults()
    out = []
    for trainer, values, fallback in entries:
        if values is None:
            out.append(dict(fallback))
            continue
        out.append({k: _norm_hparam(values[k]) if k in values else defaults.get(k, ABSENT)
                    for k in sorted(keys[trainer]) if k not in POOLED_KEYS})
    return out


def _same(a, b):
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def differing_keys(identities):
    """Keys whose value is not the same in every identity (a missing key is :data:`ABSENT`), in label order."""
    keys = set().union(*identities) if identities else set()
    differ = [k for k in keys if any(not _same(i.get(k, ABSENT), identities[0].get(k, ABSENT)) for i in identities)]
    return sorted(differ, key=_setting_order)


def _setting_order(key):
    """Stages first, then the method's own keys (λ first), then the rest, alphabetically."""
    if key in (UNRECORDED_KEY, STAGE_KEY):
        return (0, 0, key)
    short = _short_key(key)
    if short != key:
        return (1, not short.startswith("lambda"), short)
    return (2, 0, key)


def _short_key(key):
    """``TRAINER.<group>.<name>`` and ``hparams.<name>`` -> ``<name>``; other keys as they are."""
    if key.startswith("TRAINER.") and key.count(".") >= 2:
        return key.split(".", 2)[2]
    if key.startswith("hparams."):
        return key[len("hparams."):]
    return key


def _stage_identity(plan):
    """The stages a run takes sections from, as one value of its identity."""
    return "; ".join(f"{section} from {name}" + (f" ({text})" if text else "") for section, name, text in sorted(plan))


def _identity_of(run, identity):
    if run.stage_plan:
        identity = dict(identity, **{STAGE_KEY: _stage_identity(run.stage_plan)})
    return identity


def _pooled_keys(runs):
    """The :data:`POOLED_KEYS` whose values differ between ``runs`` (older files: seed / held-out domain)."""
    if not runs[0].recorded:
        return [name for name, values in (("seed", {r.seed for r in runs}), ("held-out domain", {r.unit for r in runs}))
                if len(values) > 1]
    return [k for k in POOLED_KEYS if len({json.dumps(r.values.get(k), sort_keys=True) for r in runs}) > 1]


def _label_rows(rows):
    """``row["setting"]``: ``[(key, value)]`` of the keys in which a row differs from the other rows of
    its method and block; runs without recorded settings are compared among themselves."""
    groups = OrderedDict()
    for row in rows:
        groups.setdefault(_block_key(row) + (json.dumps(row["trainer"]),), []).append(row)
    for group in groups.values():
        recorded = [r for r in group if r["recorded"]]
        unrecorded = [r for r in group if not r["recorded"]]
        for subset in (recorded, unrecorded):
            keys = differing_keys([r["identity"] for r in subset])
            for row in subset:
                row["setting"] = [(k, row["identity"].get(k, ABSENT)) for k in keys]
        if recorded and unrecorded:
            for row in unrecorded:
                row["setting"].insert(0, (UNRECORDED_KEY, "unrecorded"))
    for row in rows:
        row["setting_str"] = format_setting(row["setting"])


def _setting_sort_key(setting):
    return tuple((k, _sort_value(v if v is None or isinstance(v, (numbers.Real, str)) else _fmt_value(v)))
                 for k, v in setting)


# ---------------------------------------------------------------------------------------------
# aggregation

def aggregate(runs, select=None, warnings=None):
    """Rows (one per setting) from :class:`RunRecord` objects; see the module docstring."""
    if select not in (None, "val"):
        raise ValueError(f"select must be None or 'val', got {select!r}")
    warnings = warnings if warnings is not None else []

    # columns of each dataset: the union over all its runs (so a setting that never ran a
    # held-out domain gets a partial average rather than a silently smaller one)
    columns = defaultdict(set)
    units = defaultdict(set)
    for run in runs:
        columns[run.dataset].update(run.accuracy)
        units[run.dataset].add(run.unit)

    settings = OrderedDict()
    identities = run_identities([(r.trainer, r.values, r.fallback_identity()) for r in runs])
    for run, identity in zip(runs, identities):
        identity = _identity_of(run, identity)
        key = (run.recorded,) + run.setting_key[:-1] + (json.dumps(identity, sort_keys=True, default=str),)
        settings.setdefault(key, (identity, []))[1].append(run)

    rows = []
    for key, (identity, setting_runs) in settings.items():
        # one run per (seed, held-out unit); later duplicates are reported and ignored
        chosen = OrderedDict()
        for run in setting_runs:
            k = (run.seed, run.unit)
            if k in chosen:
                same = "same settings" if run.recorded else "same trainer, dataset and hparams"
                warnings.append(f"duplicate run ({same}, seed {run.seed}, held-out {run.unit}): using "
                                f"{chosen[k].path}, ignoring {run.path}")
                continue
            chosen[k] = run
        used = list(chosen.values())
        first = used[0]
        seeds = sorted({r.seed for r in used})
        dataset_columns = sorted(columns[first.dataset])
        dataset_units = sorted(units[first.dataset])

        acc_by_seed = defaultdict(dict)
        id_by_seed = {}
        val_by_seed = defaultdict(dict)
        open_by_seed = defaultdict(lambda: defaultdict(dict))  # (set, score, metric) -> seed -> unit
        for r in used:
            acc_by_seed[r.seed].update(r.accuracy)
            if r.id_accuracy is not None:
                id_by_seed[r.seed] = r.id_accuracy
            if r.val is not None:
                val_by_seed[r.seed][r.unit] = r.val
            for k, v in r.open_set.items():
                open_by_seed[k][r.seed][r.unit] = v

        per_domain = OrderedDict()
        for c in dataset_columns:
            vals = [acc_by_seed[s][c] for s in seeds if c in acc_by_seed[s]]
            per_domain[c] = _stat(vals, partial=len(vals) < len(seeds))
        avg, avg_partial = _complete_seed_average(acc_by_seed, dataset_columns, seeds)

        val_per_seed = [float(np.mean(list(val_by_seed[s].values()))) for s in seeds if val_by_seed[s]]
        val = _stat(val_per_seed, partial=len(val_per_seed) < len(seeds))

        open_set = OrderedDict()
        open_keys = sorted({(k[0], k[1]) for k in open_by_seed}, key=lambda k: (k[0], _score_order(k[1])))
        for set_name, score in open_keys:
            entry = OrderedDict()
            for metric, _ in ALL_METRICS:
                by_seed = open_by_seed.get((set_name, score, metric))
                if by_seed is None:
                    entry[metric] = None
                    continue
                stat, partial = _complete_seed_average(by_seed, dataset_units, seeds)
                if stat is None:
                    entry[metric] = {"mean": None, "std": None, "n": 0, "values": [], "partial": True}
                else:
                    entry[metric] = stat
            open_set.setdefault(set_name, OrderedDict())[score] = entry

        rows.append({
            "method": first.trainer, "trainer": first.trainer, "dataset": first.dataset,
            "backbone": first.backbone, "pretrained": first.pretrained, "shots": first.shots,
            "protocol": first.protocol, "hparams": first.hparams,
            "hparams_str": format_hparams(first.hparams),
            "recorded": first.recorded, "identity": identity, "pooled": _pooled_keys(used),
            "seeds": seeds, "n_seeds": len(seeds), "n_runs": len(used),
            "run_paths": [r.path for r in used],
            "domains": dataset_columns, "units": dataset_units,
            "per_domain": per_domain,
            "id": _stat([id_by_seed[s] for s in seeds if s in id_by_seed],
                        partial=len(id_by_seed) < len(seeds)),
            "avg": avg if avg is not None else {"mean": None, "std": None, "n": 0, "values": [], "partial": True},
            "avg_partial": avg_partial,
            "val": val,
            "open_set": open_set,
            "stages": sorted({t for r in used for t in r.stages}),
        })

    _label_rows(rows)
    if select == "val":
        rows = _select_by_val(rows, warnings)
    rows.sort(key=lambda r: tuple(_sort_value(r[f]) for f in BLOCK_FIELDS)
              + (_sort_value(r["trainer"]), _setting_sort_key(r["setting"])))
    return rows


def _select_by_val(rows, warnings):
    groups = OrderedDict()
    for row in rows:
        groups.setdefault(tuple(json.dumps(row[f]) for f in SELECT_FIELDS), []).append(row)
    kept = []
    for group in groups.values():
        eligible = [r for r in group if r["val"] is not None]
        g = group[0]
        label = f"{g['trainer']} {g['dataset']} {g['backbone']} {g['shots']}-shot {g['protocol']}"
        if not eligible:
            if len(group) > 1:
                warnings.append(f"--select val: no closed_set.val_accuracy for {label}; "
                                f"kept all {len(group)} settings")
            kept.extend(group)
            continue
        eligible.sort(key=lambda r: (-r["val"]["mean"], _setting_sort_key(r["setting"])))
        best = eligible[0]
        if len(eligible) > 1 and eligible[1]["val"]["mean"] == best["val"]["mean"]:
            warnings.append(f"--select val: tie on val accuracy for {label}; kept {best['setting_str'] or '(none)'}")
        best = dict(best, selected_by="val", n_candidates=len(group))
        kept.append(best)
    return kept


def collect(root, select=None):
    """Walk ``root`` and return the table rows (a :class:`CollectedRows` list of row dicts).

    Each row: ``method``/``trainer``, ``dataset``, ``backbone``, ``pretrained``, ``shots``,
    ``protocol``, ``hparams`` (dict, as recorded by the row's first run), ``hparams_str``,
    ``recorded`` (whether its runs' results.json hold fingerprint_values), ``identity`` (the
    settings its runs share, :func:`run_identities`), ``setting`` (``[(key, value)]``: what tells it
    apart from the other rows of its method and block), ``setting_str``, ``pooled`` (the keys that
    vary between its runs), ``seeds``, ``n_seeds``, ``n_runs``,
    ``run_paths``, ``domains`` (column order), ``per_domain`` ``{column: stat}``, ``avg``,
    ``avg_partial``, ``val`` and ``open_set`` ``{set: {score: {"auroc": stat, "fpr95": stat}}}``,
    where a stat is ``{"mean", "std", "n" (seeds), "values" (per seed), "partial"}`` or None.
    """
    runs, incomplete, malformed, warnings, refused = scan(root)
    rows = aggregate(runs, select=select, warnings=warnings)
    return CollectedRows(rows, incomplete, malformed, warnings, select=select, root=root, refused=refused)


# ---------------------------------------------------------------------------------------------
# formatting

def _fmt_value(v):
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, list):
        return ",".join(_fmt_value(x) for x in v)
    if isinstance(v, dict):
        return ",".join(f"{k}:{_fmt_value(x)}" for k, x in sorted(v.items()))
    return str(v)


def _setting_value(v):
    if v == ABSENT:
        return v
    text = _fmt_value(v)
    return json.dumps(text, ensure_ascii=False) if (not text or " " in text) and isinstance(v, str) else text


def format_setting(setting, latex=False):
    """``λ2=10 OPTIM.LR=0.002``: a row's distinguishing ``[(key, value)]`` (the method's own keys short)."""
    parts = []
    for key, value in setting:
        text = _setting_value(value)
        parts.append(f"{_hparam_name(_short_key(key), latex)}={_latex_escape(text) if latex else text}")
    return " ".join(parts)


def _hparam_name(name, latex=False):
    if name.startswith("lambda") and name[len("lambda"):].isdigit():
        idx = name[len("lambda"):]
        return f"$\\lambda_{{{idx}}}$" if latex else f"λ{idx}"
    return _latex_escape(name) if latex else name


def format_hparams(hparams, latex=False):
    """Compact ``λ1=15 λ2=10 gen_step=0 ratio=0.2 ...`` (λ keys first, then alphabetical)."""
    if not hparams:
        return ""
    keys = sorted(hparams, key=lambda k: (not k.startswith("lambda"), k))
    parts = []
    for k in keys:
        value = _fmt_value(hparams[k])
        parts.append(f"{_hparam_name(k, latex)}={_latex_escape(value) if latex else value}")
    return " ".join(parts)


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _latex_escape(text):
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def format_stat(stat, fmt="md", mark=""):
    """``mean ± std`` with 2 decimals (``$\\pm$`` in LaTeX) followed by ``mark``."""
    if stat is None or stat.get("mean") is None:
        text = {"md": "—", "csv": "", "latex": "--"}[fmt]
        return text + (_latex_mark(mark) if fmt == "latex" else mark) if mark else text
    pm = " $\\pm$ " if fmt == "latex" else " ± "
    text = f"{stat['mean']:.2f}{pm}{stat['std']:.2f}"
    return text + (_latex_mark(mark) if fmt == "latex" else mark)


def _latex_mark(mark):
    if not mark:
        return ""
    return "$^{" + mark.replace(PARTIAL_MARK, "*").replace(FEWER_SEEDS_MARK, r"\dagger") + "}$"


def _block_key(row):
    return tuple(json.dumps(row[f]) for f in BLOCK_FIELDS)


def _block_title(row):
    bb = row["backbone"] if row["backbone"] is not None else "?"
    pre = f" ({row['pretrained']})" if row["pretrained"] is not None else ""
    shots = f"{row['shots']} shots" if row["shots"] is not None else "shots ?"
    return f"{row['dataset']} · {bb}{pre} · {shots} · protocol {row['protocol']}"


def _open_columns(rows, scores=None):
    keys = set()
    for row in rows:
        for set_name, by_score in row["open_set"].items():
            for score in by_score:
                if scores is None or score in scores:
                    keys.add((set_name, score))
    return sorted(keys, key=lambda k: (k[0], _score_order(k[1])))


def _table(rows, fmt, scores, marks_used):
    """Header list and cell rows for one block of rows sharing a dataset (CSV: numbers, a mean, std
    and n column per statistic)."""
    if fmt == "csv":
        return _csv_table(rows, scores)
    domains = rows[0]["domains"]
    open_cols = _open_columns(rows, scores)
    has_id = any(row.get("id") for row in rows)
    header = ["Method", "setting", "n_seeds"] + ([ID_COLUMN] if has_id else []) + list(domains) + ["Avg"]
    for set_name, score in open_cols:
        header += [f"{set_name} {score} {label}" for _, label in METRICS]
    body = []
    for row in rows:
        latex = fmt == "latex"
        cells = [_latex_escape(row["method"]) if latex else row["method"],
                 format_setting(row["setting"], latex=latex), str(row["n_seeds"])]
        if has_id:
            stat = row.get("id")
            mark = FEWER_SEEDS_MARK if stat is not None and stat["partial"] else ""
            marks_used.update(mark)
            cells.append(format_stat(stat, fmt, mark))
        for d in domains:
            stat = row["per_domain"].get(d)
            mark = FEWER_SEEDS_MARK if stat is not None and stat["partial"] else ""
            marks_used.update(mark)
            cells.append(format_stat(stat, fmt, mark))
        mark = PARTIAL_MARK if row["avg_partial"] else ""
        marks_used.update(mark)
        cells.append(format_stat(row["avg"], fmt, mark))
        for set_name, score in open_cols:
            entry = row["open_set"].get(set_name, {}).get(score, {})
            for metric, _ in METRICS:
                stat = entry.get(metric)
                mark = PARTIAL_MARK if stat is not None and stat["partial"] else ""
                marks_used.update(mark)
                cells.append(format_stat(stat, fmt, mark))
        body.append(cells)
    return header, body


def _notes(rows, marks_used, select):
    notes = ["Numbers are mean ± std over seeds; std is the population std (ddof=0), as in the reference collectors.",
             "Avg: per seed, the mean over all held-out domains / variants; then mean ± std over seeds.",
             "Open-set AUROC / FPR95 (%): per seed, the mean over held-out domains; then mean ± std over seeds."]
    if any(r.get("id") for r in rows):
        notes.insert(2, "ID (Setup-I): accuracy on the ID test set (closed_set.test_accuracy); not part of Avg.")
    if PARTIAL_MARK in marks_used:
        notes.append(f"{PARTIAL_MARK} partial: some seed lacks a held-out domain; averaged over the seeds "
                     "that have every domain only (— when none has).")
    if FEWER_SEEDS_MARK in marks_used:
        notes.append(f"{FEWER_SEEDS_MARK} fewer seeds than n_seeds for this domain.")
    notes.extend(_grouping_notes(rows))
    if select == "val":
        notes.append("Selection: per (trainer, dataset, backbone, pretrained, shots, protocol), the setting with the "
                     "best mean closed_set.val_accuracy (test numbers are never used).")
    notes.extend(_stage_notes(rows))
    return notes


def _grouping_notes(rows):
    """What a row pools, and what its label shows."""
    if not rows:
        return []
    notes = []
    pooled = sorted({k for r in rows if r["recorded"] for k in r["pooled"]}, key=POOLED_KEYS.index)
    if any(r["recorded"] for r in rows):
        notes.append("Rows: runs whose recorded settings (results.json fingerprint_values) agree on every key except "
                     f"{', '.join(POOLED_KEYS)} share a row; pooled here: "
                     f"{', '.join(pooled) or 'none (one run each)'}.")
    if any(not r["recorded"] for r in rows):
        notes.append("Rows of results.json files without fingerprint_values pool runs by trainer, dataset, backbone, "
                     "pretrained, shots, protocol and hparams only.")
    if any(r["setting"] for r in rows):
        notes.append("Settings: the keys in which the rows of one method differ; TRAINER.<method>.* keys are shown "
                     "without their prefix. A method with one row has no label.")
    return notes


def _md_cell(text):
    return str(text).replace("|", "\\|")


def _wide_parts(rows, fmt, scores):
    scores = set(scores) if scores else None
    blocks = OrderedDict()
    for row in rows:
        blocks.setdefault(_block_key(row), []).append(row)
    marks_used = set()
    tables = [(block_rows[0], *_table(block_rows, fmt, scores, marks_used)) for block_rows in blocks.values()]
    return tables, _notes(rows, marks_used, _select_of(rows))


def _wide_table_text(rows, fmt, scores):
    """The full (``wide``) table: every score (or ``scores``), every column, settings spelled out."""
    tables, notes = _wide_parts(rows, fmt, scores)
    footer = (getattr(rows, "incomplete", []), getattr(rows, "malformed", []), getattr(rows, "warnings", []))
    if fmt == "md":
        return _render_md(tables, notes, *footer)
    if fmt == "csv":
        return _render_csv(rows, tables)
    return _render_latex(tables, notes, *footer)


def _select_of(rows):
    select = getattr(rows, "select", None)
    if select is None and any(r.get("selected_by") for r in rows):
        select = "val"
    return select


def format_table(rows, fmt="md", scores=None, wide=False, ood_metrics=None):
    """Render rows from :func:`collect` as ``md`` (default), ``csv`` or ``latex`` text.

    Rows are grouped into one block per (dataset, backbone, pretrained, shots, protocol). md and
    LaTeX: footnotes, incomplete runs, malformed results.json files and warnings follow in separate
    sections. CSV: one table and nothing else, with those fields as leading columns, the row's
    setting (as text, and one column per distinguishing key) and, per statistic, numeric
    ``<column> mean``, ``<column> std`` and ``<column> n`` (seeds) columns; its notes are
    :func:`format_notes`.

    Default (compact) table: per block, the closed-set accuracies (Setup-I: ID, each variant,
    Avg; Setup-II: each held-out domain, Avg), then for each score of ``scores`` (default
    ``energy``; ``"all"`` for every score) and each metric of ``ood_metrics`` (default AUROC
    and FPR95) the value per open-set set. Markdown prints each of these as its own table (so
    that a 4-domain, 3-set block fits in 120 characters), LaTeX as one tabular per block. Rows are
    sorted by method, then by their distinguishing settings (``row["setting"]``), which are named by
    a key (``CRoFT [a]``) spelled out under the tables; a method with one row in a block has none.
    The best value of each column is bold in md and ``\\textbf`` in LaTeX (highest accuracy / AUROC /
    AUPR, lowest FPR95; among complete cells, only when at least two rows have a value); cells whose
    means print the same (2 decimals) are all bold, and the notes say so.

    A markdown block whose lines would exceed :data:`MD_WIDTH` (120) characters with
    ``mean ± std`` cells (e.g. Setup-I: ID, four variants and Avg) is printed with ``mean±std``.

    ``wide=True``: the full table: every score (``scores`` restricts them), AUROC and FPR95, the
    distinguishing settings spelled out in each row, no best marks.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if wide:
        return _wide_table_text(rows, fmt, scores)
    return _compact_table_text(rows, fmt, scores, ood_metrics)


def format_notes(rows, scores=None, wide=False, ood_metrics=None):
    """The notes, incomplete runs, malformed files and warnings of the CSV table, as a CSV of their own
    (``section,path,detail``); :func:`format_table` with ``"csv"`` holds the table only."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["section", "path", "detail"])
    writer.writerows(notes_records(rows, scores, wide, ood_metrics))
    return buf.getvalue()


def notes_lines(rows, scores=None, wide=False, ood_metrics=None):
    """The same as :func:`format_notes`, one plain ``section: [path: ]detail`` line each (for stderr)."""
    return [f"{section}: {path + ': ' if path else ''}{detail}"
            for section, path, detail in notes_records(rows, scores, wide, ood_metrics)]


def notes_records(rows, scores=None, wide=False, ood_metrics=None):
    """``[(section, path, detail)]``: ``note``, ``incomplete``, ``malformed`` and ``warning`` lines."""
    if not rows:
        notes = []
    elif wide:
        notes = _wide_parts(rows, "csv", scores)[1]
    else:
        notes = _compact_parts(rows, "csv", scores, ood_metrics)[-1]
    records = [("note", "", n) for n in notes]
    records += [("incomplete", p, "no results.json") for p in getattr(rows, "incomplete", [])]
    records += [("malformed", p, reason) for p, reason in getattr(rows, "malformed", [])]
    records += [("warning", "", w) for w in getattr(rows, "warnings", [])]
    return records


# ---------------------------------------------------------------------------------------------
# compact table

MD_WIDTH = 120
_METRIC_LABELS = dict(ALL_METRICS)


def available_scores(rows):
    """Sorted score names that occur in the open-set results of ``rows``."""
    names = {score for row in rows for by_score in row["open_set"].values() for score in by_score}
    return sorted(names, key=_score_order)


def _compact_sort_key(row):
    return (str(row["method"]).casefold(), str(row["method"]), _setting_sort_key(row["setting"]), row["setting_str"])


def _key_name(i):
    """a, b, ..., z, aa, ab, ..."""
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(ord("a") + r) + name
    return name


def _resolve_scores(rows, scores):
    if scores is None:
        return list(DEFAULT_SCORES)
    if isinstance(scores, str):
        scores = [s.strip() for s in scores.split(",") if s.strip()]
    scores = list(OrderedDict.fromkeys(scores))
    if "all" in scores:
        return available_scores(rows)
    return scores


def _resolve_metrics(ood_metrics):
    if ood_metrics is None:
        return list(DEFAULT_OOD_METRICS)
    if isinstance(ood_metrics, str):
        ood_metrics = [m.strip() for m in ood_metrics.split(",") if m.strip()]
    ood_metrics = list(OrderedDict.fromkeys(ood_metrics))
    unknown = [m for m in ood_metrics if m not in _METRIC_LABELS]
    if unknown or not ood_metrics:
        raise ValueError(f"unknown open-set metric(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(_METRIC_LABELS)}")
    return ood_metrics


def _printed_mean(stat):
    return f"{stat['mean']:.2f}"


def _best_flags(cells, higher):
    """Which cells hold the best mean as printed (2 decimals); complete cells only when there are any.

    Cells equal at the printed precision are all best (a tie). No marks when fewer than two cells
    have a value or when all candidates print the same mean.
    """
    present = [(i, stat) for i, (stat, _) in enumerate(cells) if stat is not None and stat.get("mean") is not None]
    flags = [False] * len(cells)
    if len(present) < 2:
        return flags
    complete = [(i, stat) for i, stat in present if not stat.get("partial")]
    pool = complete or present
    printed = {i: _printed_mean(stat) for i, stat in pool}
    best = (max if higher else min)(printed.values(), key=float)
    if len(printed) > 1 and all(v == best for v in printed.values()):
        return flags  # all equal: nothing to point out
    for i, v in printed.items():
        flags[i] = v == best
    return flags


def _column(label, cells, higher, section, group=""):
    best = _best_flags(cells, higher)
    return {"label": label, "cells": cells, "best": best, "tie": sum(best) > 1, "higher": higher,
            "section": section, "group": group}


def _stat_mark(stat, mark):
    return mark if stat is not None and stat.get("partial") else ""


def _compact_block(rows, scores, metrics, hp_keys):
    """The columns of one block: accuracy columns, then one per (score, metric, open-set set)."""
    rows = sorted(rows, key=_compact_sort_key)
    first = rows[0]
    has_id = any(row.get("id") for row in rows)
    acc = []
    if has_id:
        cells = [(row.get("id"), _stat_mark(row.get("id"), FEWER_SEEDS_MARK)) for row in rows]
        acc.append(_column(ID_COLUMN, cells, True, "acc"))
    for d in first["domains"]:
        cells = [(row["per_domain"].get(d), _stat_mark(row["per_domain"].get(d), FEWER_SEEDS_MARK)) for row in rows]
        acc.append(_column(d, cells, True, "acc"))
    acc.append(_column("Avg", [(row["avg"], PARTIAL_MARK if row["avg_partial"] else "") for row in rows],
                       True, "acc"))
    sections = []
    for score in scores:
        sets = sorted({s for row in rows for s, by_score in row["open_set"].items() if score in by_score})
        for metric in metrics:
            cols = []
            for set_name in sets:
                cells = []
                for row in rows:
                    stat = row["open_set"].get(set_name, {}).get(score, {}).get(metric)
                    cells.append((stat, _stat_mark(stat, PARTIAL_MARK)))
                if any(stat is not None for stat, _ in cells):
                    cols.append(_column(set_name, cells, metric not in LOWER_IS_BETTER, (score, metric), set_name))
            if cols:
                sections.append({"score": score, "metric": metric, "columns": cols})
    methods = []
    for row in rows:
        key = hp_keys.get(_hp_id(row)) if row["setting"] else None
        methods.append((row["method"], key))
    n_seeds = [row["n_seeds"] for row in rows]
    return {"first": first, "rows": rows, "has_id": has_id, "acc": acc, "sections": sections,
            "methods": methods, "n_seeds": n_seeds, "show_n": len(set(n_seeds)) > 1}


def _hp_id(row):
    return json.dumps(row["setting"], default=str)


def _compact_model(rows, scores, ood_metrics):
    scores = _resolve_scores(rows, scores)
    metrics = _resolve_metrics(ood_metrics)
    blocks = OrderedDict()
    for row in rows:
        blocks.setdefault(_block_key(row), []).append(row)
    # setting keys in the order the rows are printed
    hp_keys, hp_list = {}, []
    for block_rows in blocks.values():
        for row in sorted(block_rows, key=_compact_sort_key):
            if row["setting"] and _hp_id(row) not in hp_keys:
                hp_keys[_hp_id(row)] = _key_name(len(hp_keys))
                hp_list.append((hp_keys[_hp_id(row)], row["setting"]))
    model = [_compact_block(block_rows, scores, metrics, hp_keys) for block_rows in blocks.values()]
    available = available_scores(rows)
    missing = [s for s in scores if s not in available]
    return model, scores, metrics, hp_list, missing


def _compact_notes(rows, model, scores, metrics, missing, marks_used, fmt):
    notes = ["Numbers: mean ± std over seeds (population std, ddof=0, as in the reference collectors). "
             + ("Best per column in bold " if fmt == "md" else "Best per column in bold face ")
             + "(highest accuracy / AUROC / AUPR, lowest FPR95; among complete cells)."]
    if any(b["has_id"] for b in model):
        notes.append("ID (Setup-I): accuracy on the ID test set (closed_set.test_accuracy); not part of Avg.")
    notes.append("Avg: per seed, the mean over all held-out domains / variants; then mean ± std over seeds.")
    if any(b["sections"] for b in model):
        names = " / ".join(_METRIC_LABELS[m] for m in metrics)
        notes.append(f"Open set {names} (%): per seed, the mean over held-out domains; then mean ± std over seeds.")
    notes.append("Every score and column, settings spelled out in each row: --wide.")
    if any(b["show_n"] for b in model):
        notes.append("n: number of seeds.")
    if PARTIAL_MARK in marks_used:
        notes.append(f"{PARTIAL_MARK} partial: some seed lacks a held-out domain; averaged over the seeds "
                     "that have every domain only (— when none has).")
    if FEWER_SEEDS_MARK in marks_used:
        notes.append(f"{FEWER_SEEDS_MARK} fewer seeds than the setting has for this domain.")
    if missing and rows:
        available = available_scores(rows)
        notes.append(f"No open-set results for score(s) {', '.join(missing)} "
                     f"(available: {', '.join(available) if available else 'none'}).")
    if any(col["tie"] for block in model for col in _all_columns(block)):
        notes.append("Ties: cells whose means are equal at the printed precision (2 decimals) are all marked best.")
    notes.extend(_grouping_notes(rows))
    if _select_of(rows) == "val":
        notes.append("Selection (--select val): the setting with the best mean closed_set.val_accuracy "
                     "per (trainer, dataset, backbone, pretrained, shots, protocol); test numbers are never used.")
    notes.extend(_stage_notes(rows))
    return notes


def _all_columns(block):
    return block["acc"] + [c for sec in block["sections"] for c in sec["columns"]]


def _marks_used(model):
    used = set()
    for block in model:
        for col in _all_columns(block):
            for stat, mark in col["cells"]:
                used.update(mark)
    return used


def _compact_parts(rows, fmt, scores, ood_metrics):
    model, scores, metrics, hp_list, missing = _compact_model(rows, scores, ood_metrics)
    notes = _compact_notes(rows, model, scores, metrics, missing, _marks_used(model), fmt)
    return model, scores, metrics, hp_list, notes


def _compact_table_text(rows, fmt, scores, ood_metrics):
    model, scores, metrics, hp_list, notes = _compact_parts(rows, fmt, scores, ood_metrics)
    footer = (getattr(rows, "incomplete", []), getattr(rows, "malformed", []), getattr(rows, "warnings", []))
    if fmt == "md":
        return _compact_md(model, hp_list, notes, *footer)
    if fmt == "csv":
        return _compact_csv(model)
    return _compact_latex(model, hp_list, scores, metrics, notes, *footer)


def _method_label(method, key, latex=False):
    text = _latex_escape(method) if latex else str(method)
    return f"{text} [{key}]" if key else text


def _md_stat(stat, mark, best, pad=False, tight=False):
    """``**mean ± std**`` for the best cell; ``pad`` (a column with a bold cell) appends two spaces to
    the others, so that right-aligned digits line up in plain text; ``tight``: ``mean±std``."""
    text = format_stat(stat, "md")
    if tight:
        text = text.replace(" ± ", "±")
    if best:
        return f"**{text}**{mark}"
    return text + mark + ("  " if pad else "")


def _md_grid(header, body, right):
    """A markdown table padded to aligned columns."""
    header = [_md_cell(h) for h in header]
    body = [[_md_cell(c) for c in cells] for cells in body]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    widths = [max(w, 3) for w in widths]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1)) for w, r in zip(widths, right)) + "|"
    return [line(header), sep] + [line(cells) for cells in body]


def _wrap(text, first="- ", rest="  ", width=MD_WIDTH):
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _md_part(block, columns, caption, tight=False):
    lead = ["Method"] + (["n"] if block["show_n"] else [])
    header = lead + [c["label"] for c in columns]
    body = []
    for i, (method, key) in enumerate(block["methods"]):
        cells = [_method_label(method, key)] + ([str(block["n_seeds"][i])] if block["show_n"] else [])
        for col in columns:
            stat, mark = col["cells"][i]
            cells.append(_md_stat(stat, mark, col["best"][i], pad=any(col["best"]), tight=tight))
        body.append(cells)
    right = [False] + ([True] if block["show_n"] else []) + [True] * len(columns)
    return [caption, ""] + _md_grid(header, body, right) + [""]


def _seeds_caption(block):
    n = block["n_seeds"]
    if block["show_n"]:
        return "mean ± std over n seeds"
    return f"mean ± std over {n[0]} seed{'s' if n[0] != 1 else ''}"


def _md_block(block, tight=False):
    what = "on the ID test set, each covariate-shifted variant" if block["has_id"] else "per held-out domain"
    out = _md_part(block, block["acc"], f"Closed-set accuracy (%) ↑ {what} and Avg; {_seeds_caption(block)}", tight)
    for sec in block["sections"]:
        metric = sec["metric"]
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        caption = (f"Open set, {sec['score']} score: {_METRIC_LABELS[metric]} (%) {arrow} per open-set set, "
                   f"mean over held-out domains; {_seeds_caption(block)}")
        out.extend(_md_part(block, sec["columns"], caption, tight))
    return out


def _compact_md(model, hp_list, notes, incomplete, malformed, warnings):
    out = []
    if not model:
        out.append("No finished runs (no valid results.json) found.\n")
    for block in model:
        out.append(f"### {_block_title(block['first'])}\n")
        lines = _md_block(block)
        if max(len(line) for line in lines) > MD_WIDTH:  # e.g. Setup-I (6 columns): mean±std without spaces
            lines = _md_block(block, tight=True)
        out.extend(lines)
    if hp_list:
        out.append("Settings:\n")
        for key, setting in hp_list:
            out.extend(_wrap(f"[{key}] {format_setting(setting)}", first="- ", rest="  "))
        out.append("")
    if model:
        for note in notes:
            out.extend(_wrap(note))
        out.append("")
    out.extend(_md_footer(incomplete, malformed, warnings))
    return "\n".join(out).rstrip("\n") + "\n"


def _compact_csv(model):
    blocks = []
    for block in model:
        cols = [(c["label"], c) for c in block["acc"]]
        open_cols = [c for sec in block["sections"] for c in sec["columns"]]
        order = {(sec["score"], sec["metric"]): k for k, sec in enumerate(block["sections"])}
        open_cols.sort(key=lambda c: (c["label"], order[c["section"]]))
        cols += [(f"{c['label']} {c['section'][0]} {_METRIC_LABELS[c['section'][1]]}", c) for c in open_cols]
        header = [name for label, _ in cols for name, _ in _csv_stat(label, None)]
        body = [dict(p for label, c in cols for p in _csv_stat(label, c["cells"][i][0]))
                for i in range(len(block["rows"]))]
        blocks.append((block["rows"], header, body))
    return _write_csv([row for block in model for row in block["rows"]], blocks)


def _latex_stat(stat, mark, best):
    text = format_stat(stat, "latex")
    return (f"\\textbf{{{text}}}" if best and stat is not None and stat.get("mean") is not None else text) \
        + _latex_mark(mark)


def _compact_latex(model, hp_list, scores, metrics, notes, incomplete, malformed, warnings):
    out = []
    arrows = {m: ("$\\downarrow$" if m in LOWER_IS_BETTER else "$\\uparrow$") for m in _METRIC_LABELS}
    for block in model:
        n_lead = 2 if block["show_n"] else 1
        acc = block["acc"]
        # open-set columns grouped by (score, set), one sub-column per metric
        groups = OrderedDict()
        order = {(sec["score"], sec["metric"]): k for k, sec in enumerate(block["sections"])}
        for sec in block["sections"]:
            for col in sec["columns"]:
                groups.setdefault((sec["score"], col["label"]), []).append(col)
        group_list = sorted(groups.items(), key=lambda kv: (scores.index(kv[0][0]), kv[0][1]))
        many_scores = len({score for score, _ in groups}) > 1
        spec = "l" + ("r" if block["show_n"] else "") + "|" + "c" * len(acc)
        for _, cols in group_list:
            spec += "|" + "c" * len(cols)
        n_cols = n_lead + len(acc) + sum(len(cols) for _, cols in group_list)
        title = _block_title(block["first"]).replace("·", "--")
        out.append(f"% {title}")
        out.append(f"\\begin{{tabular}}{{{spec}}}")
        out.append("\\hline")
        out.append(f"\\multicolumn{{{n_cols}}}{{l}}{{\\textbf{{{_latex_escape(title)}}}}} \\\\")
        out.append("\\hline")
        bar = "|" if group_list else ""
        top = [""] * n_lead + [f"\\multicolumn{{{len(acc)}}}{{c{bar}}}{{Accuracy (\\%) $\\uparrow$}}"]
        for k, ((score, set_name), cols) in enumerate(group_list):
            label = _latex_escape(f"{set_name} ({score})" if many_scores else set_name)
            bar = "|" if k + 1 < len(group_list) else ""
            top.append(f"\\multicolumn{{{len(cols)}}}{{c{bar}}}{{{label}}}")
        out.append(" & ".join(top) + " \\\\")
        sub = ["Method"] + (["n"] if block["show_n"] else []) + [_latex_escape(c["label"]) for c in acc]
        for _, cols in group_list:
            cols.sort(key=lambda c: order[c["section"]])
            sub += [f"{_METRIC_LABELS[c['section'][1]]}{arrows[c['section'][1]]}" for c in cols]
        out.append(" & ".join(sub) + " \\\\")
        out.append("\\hline")
        all_cols = acc + [c for _, cols in group_list for c in cols]
        for i, (method, key) in enumerate(block["methods"]):
            cells = [_method_label(method, key, latex=True)] + ([str(block["n_seeds"][i])] if block["show_n"] else [])
            for col in all_cols:
                stat, mark = col["cells"][i]
                cells.append(_latex_stat(stat, mark, col["best"][i]))
            out.append(" & ".join(cells) + " \\\\")
        out.append("\\hline")
        out.append("\\end{tabular}")
        out.append("")
    if model:
        parts = [f"[{key}] {format_setting(setting, latex=True)}" for key, setting in hp_list]
        if parts:
            out.append("\\par\\smallskip\\noindent{\\footnotesize Settings: " + "; ".join(parts) + ".}")
        text = " ".join(_latex_escape(n).replace("±", "$\\pm$").replace("—", "--")
                        .replace("--wide", r"\texttt{-{}-wide}").replace(FEWER_SEEDS_MARK, "$^{\\dagger}$")
                        for n in notes)
        out.append("\\par\\smallskip\\noindent{\\footnotesize " + text + "}")
        out.append("")
    else:
        out.append("% No finished runs (no valid results.json) found.")
    out.extend(_latex_footer(incomplete, malformed, warnings))
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# wide table renderers


def _render_md(tables, notes, incomplete, malformed, warnings):
    out = []
    if not tables:
        out.append("No finished runs (no valid results.json) found.\n")
    for first, header, body in tables:
        out.append(f"### {_block_title(first)}\n")
        out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
        align = ["---", "---", "---:"] + ["---:"] * (len(header) - 3)
        out.append("|" + "|".join(align) + "|")
        for cells in body:
            out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        out.append("")
    if tables:
        out.extend(notes)
        out.append("")
    out.extend(_md_footer(incomplete, malformed, warnings))
    return "\n".join(out).rstrip("\n") + "\n"


def _md_footer(incomplete, malformed, warnings):
    out = []
    if incomplete:
        out.append("### Incomplete runs (config.yaml / log.txt but no results.json; not averaged)\n")
        out.extend(f"- `{p}`" for p in incomplete)
        out.append("")
    if malformed:
        out.append("### Skipped: malformed results.json\n")
        out.extend(f"- `{p}`: {reason}" for p, reason in malformed)
        out.append("")
    if warnings:
        out.append("### Warnings\n")
        out.extend(f"- {w}" for w in warnings)
        out.append("")
    return out


CSV_LEAD = ["Dataset", "Backbone", "Pretrained", "Shots", "Protocol", "Method", "setting"]


def _csv_number(value):
    return "" if value is None else repr(float(value))


def _csv_stat(name, stat):
    """``[(column, cell)]`` of one statistic: its mean, population std and number of seeds."""
    if stat is None or stat.get("mean") is None:
        return [(f"{name} mean", ""), (f"{name} std", ""), (f"{name} n", "" if stat is None else str(stat["n"]))]
    return [(f"{name} mean", _csv_number(stat["mean"])), (f"{name} std", _csv_number(stat["std"])),
            (f"{name} n", str(stat["n"]))]


def _csv_table(rows, scores):
    """Wide CSV cells of one block: ``(header, [{column: cell}])``."""
    open_cols = _open_columns(rows, scores)
    has_id = any(row.get("id") for row in rows)
    header, body = [], []
    for row in rows:
        cells = [(ID_COLUMN, row.get("id"))] if has_id else []
        cells += [(d, row["per_domain"].get(d)) for d in row["domains"]] + [("Avg", row["avg"])]
        for set_name, score in open_cols:
            entry = row["open_set"].get(set_name, {}).get(score, {})
            cells += [(f"{set_name} {score} {label}", entry.get(metric)) for metric, label in METRICS]
        pairs = [p for name, stat in cells for p in _csv_stat(name, stat)]
        for name, _ in pairs:
            if name not in header:
                header.append(name)
        body.append(dict(pairs))
    return header, body


def _setting_columns(rows):
    """The distinguishing keys of every row, as CSV columns (full key names)."""
    return sorted({k for row in rows for k, _ in row["setting"]}, key=_setting_order)


def _write_csv(rows, blocks):
    """One CSV table: block fields, method, setting (text and one column per key), n_seeds, then the
    statistics; ``blocks``: ``[(block rows, header, [{column: cell}])]``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = _setting_columns(rows)
    header = []
    for _, h, _ in blocks:
        header.extend(c for c in h if c not in header)
    writer.writerow(CSV_LEAD + keys + ["n_seeds"] + header)
    for block_rows, _, body in blocks:
        for row, cells in zip(block_rows, body):
            setting = dict(row["setting"])
            lead = ["" if row[f] is None else str(row[f]) for f in BLOCK_FIELDS] + [row["method"], row["setting_str"]]
            lead += [_fmt_value(setting[k]) if k in setting else "" for k in keys]
            writer.writerow(lead + [str(row["n_seeds"])] + [cells.get(c, "") for c in header])
    return buf.getvalue()


def _render_csv(rows, tables):
    blocks = OrderedDict()
    for row in rows:
        blocks.setdefault(_block_key(row), []).append(row)
    return _write_csv(rows, [(block_rows, h, body) for block_rows, (_, h, body) in zip(blocks.values(), tables)])


def _render_latex(tables, notes, incomplete, malformed, warnings):
    out = []
    for first, header, body in tables:
        n = len(header)
        n_dom = len(first["domains"]) + (1 if header[3] == ID_COLUMN else 0)
        n_open = n - 4 - n_dom
        spec = "llr" + "c" * n_dom + "|c" + ("|" + "c" * n_open if n_open else "")
        title = _block_title(first).replace("·", "--")
        out.append(f"% {title}")
        out.append(f"\\begin{{tabular}}{{{spec}}}")
        out.append("\\hline")
        out.append(f"\\multicolumn{{{n}}}{{l}}{{\\textbf{{{_latex_escape(title)}}}}} \\\\")
        out.append("\\hline")
        out.append(" & ".join(_latex_escape(h) for h in header) + " \\\\")
        out.append("\\hline")
        for cells in body:
            out.append(" & ".join(cells) + " \\\\")
        out.append("\\hline")
        out.append("\\end{tabular}")
        out.append("")
    if tables:
        text = " ".join(_latex_escape(n).replace("±", "$\\pm$").replace("—", "--")
                        .replace(FEWER_SEEDS_MARK, "$^{\\dagger}$") for n in notes)
        out.append("\\par\\smallskip\\noindent{\\footnotesize " + text + "}")
        out.append("")
    else:
        out.append("% No finished runs (no valid results.json) found.")
    out.extend(_latex_footer(incomplete, malformed, warnings))
    return "\n".join(out).rstrip("\n") + "\n"


def _latex_footer(incomplete, malformed, warnings):
    out = []
    if incomplete:
        out.append("% Incomplete runs (config.yaml / log.txt but no results.json; not averaged):")
        out.extend(f"%   {p}" for p in incomplete)
    if malformed:
        out.append("% Skipped: malformed results.json:")
        out.extend(f"%   {p}: {reason}".replace("\n", " ") for p, reason in malformed)
    if warnings:
        out.append("% Warnings:")
        out.extend(f"%   {w}".replace("\n", " ") for w in warnings)
    return out
