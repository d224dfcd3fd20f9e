"""CoOp's few-shot table and CoCoOp's base-to-new table from run folders (docs/benchmark.md, "The third benchmark").

Both read every ``results.json`` under a root (never log text) whose run has ``setup`` ``"custom"`` and no held-out
domain, i.e. the runs of CoOp's 11 datasets (docs/protocols.md §8), and take ``closed_set.test_accuracy``.

**Few-shot** (:func:`fewshot_table`, runs with ``DATASET.SUBSAMPLE_CLASSES`` ``all``): one column per dataset
plus **Average**, one row per method and shot count. The runs of one row agree on every recorded setting
(``fingerprint_values``) except :data:`POOLED_KEYS`: the seed, the dataset (its name and prompt) and the
epochs, which CoOp's protocol sets per shot count and per dataset (ImageNet trains 50 epochs at every
count). A cell is mean ± std (population, ``ddof=0``) over the seeds of its runs; **Average** is the mean of
the row's cell means (CoOp's average over datasets), marked ``*`` when the row lacks a column of the table.
A trainer that trains nothing (``zero_shot``: the trainer names, handed down by the caller, which knows the
trainer registry) forms a row at 0 shots whatever its ``DATASET.NUM_SHOTS``; other runs that trained nothing in
their folder (no ``metrics.jsonl`` records: an ``--eval-only`` evaluation of a model) are left out with a warning. Rows of one method that differ in
a setting at the same shot count are told apart by a label of those settings (``CRoFT [λ2=10]``); settings
that change with the shot count alone (CRoFT's ``gen_step``) stay in one method, which the figure draws as
one line.

**Base-to-new** (:func:`base2new_table`): a run with ``DATASET.SUBSAMPLE_CLASSES base`` gives the base
accuracy; an evaluation with ``new`` of a model it did not train (no ``metrics.jsonl`` records: the sweep's
stage ``new``, ``croft-train --eval-only --model-dir``, or zero-shot CLIP) gives the new accuracy of the setting it
shares with the base runs (all settings but :data:`POOLED_KEYS` and ``DATASET.SUBSAMPLE_CLASSES``). Base and
New are each averaged over seeds first, then H = 2·Base·New / (Base + New), as CoCoOp reports it; the
average row takes the mean Base and the mean New over the datasets and their H.

Both tables render as md, csv (numbers only: mean, std, n columns) or LaTeX; :func:`format_fewshot` and
:func:`format_base2new`.
"""
import json
import math
import numbers
import os
from collections import OrderedDict, defaultdict

import numpy as np

from .curves import METRICS_FILE
from .io import RESULTS_FILE, UnreadableSchemaVersion, read_results_json, schema_version

__all__ = ["TABLES", "FORMATS", "POOLED_KEYS", "FewshotRun", "FewshotTable", "Base2NewTable", "scan_runs",
           "fewshot_table", "base2new_table", "format_fewshot", "format_base2new", "harmonic_mean"]

TABLES = ("fewshot", "base2new")
FORMATS = ("md", "csv", "latex")
SUBSAMPLE_KEY = "DATASET.SUBSAMPLE_CLASSES"
SHOTS_KEY = "DATASET.NUM_SHOTS"
#: Recorded settings that may differ between the runs of one row: the seed, the dataset's own keys, and the
#: epochs (per shot count and per dataset in CoOp's protocol). The shot count is the row's own field.
POOLED_KEYS = ("SEED", "DATASET.NAME", "DATASET.PROMPT_TEMPLATE", "OPTIM.MAX_EPOCH", SHOTS_KEY, SUBSAMPLE_KEY,
               "fingerprint_version")
PARTIAL_MARK = "*"
AVERAGE = "Average"


# ---------------------------------------------------------------------------------------------
# reading

def _number(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _norm(value):
    """15 and 15.0, [1, 2] and (1, 2) are the same setting."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Real):
        value = float(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    return str(value)


class FewshotRun:
    """What the tables need from one results.json."""

    __slots__ = ("path", "trainer", "dataset", "seed", "shots", "subsample", "accuracy", "trained", "values")

    def __init__(self, path, results, trained):
        values = results.get("fingerprint_values")
        if not isinstance(values, dict):
            raise ValueError("no 'fingerprint_values' (written by an older croft): its settings are unknown")
        self.path = path
        self.values = {str(k): _norm(v) for k, v in values.items()}
        self.trainer = str(results["trainer"])
        self.dataset = str(results["dataset"])
        self.seed = int(results["seed"])
        shots = _number(results.get("shots", self.values.get(SHOTS_KEY)))
        self.shots = int(shots) if shots is not None and shots.is_integer() else shots
        self.subsample = str(self.values.get(SUBSAMPLE_KEY, "all"))
        self.trained = trained
        self.accuracy = _number((results.get("closed_set") or {}).get("test_accuracy"))
        if self.accuracy is None:
            raise ValueError("closed_set.test_accuracy is not a finite number")

    def identity(self):
        """The recorded settings a row's runs share."""
        return {k: v for k, v in self.values.items() if k not in POOLED_KEYS}


def _trained_here(folder, filenames):
    """Whether the run trained in its folder: its per-epoch records (metrics.jsonl, written by every trained epoch
    and kept on resume) hold a line. An ``--eval-only`` run (a sweep's stage, zero-shot CLIP) has none."""
    if METRICS_FILE not in filenames:
        return False
    try:
        with open(os.path.join(folder, METRICS_FILE), encoding="utf-8", errors="replace") as f:
            return any(line.strip() for line in f)
    except OSError:
        return False


def scan_runs(root):
    """``(runs, skipped, warnings)``: the :class:`FewshotRun` of every results.json under ``root`` (sorted by
    path, dot-folders skipped) whose run has ``setup`` ``custom`` and no held-out domain; ``skipped``:
    ``(path, reason)`` of the files that cannot be used; ``warnings``: lines about what was left out."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"results root {root} is not a folder")
    runs, skipped, other = [], [], 0
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if RESULTS_FILE not in filenames:
            continue
        path = os.path.join(folder, RESULTS_FILE)
        try:
            results = read_results_json(path)
            schema_version(results, path)
            if results.get("setup") != "custom" or results.get("target_domains") or results.get("test_env"):
                other += 1
                continue
            runs.append(FewshotRun(path, results, _trained_here(folder, filenames)))
        except UnreadableSchemaVersion as exc:
            skipped.append((path, str(exc)))
        except (ValueError, TypeError, KeyError, OSError) as exc:
            reason = str(exc)
            skipped.append((path, reason[len(path) + 2:] if reason.startswith(path + ": ") else reason))
    warnings = []
    if other:
        warnings.append(f"{other} run(s) of other benchmarks (Setup-I/II, held-out domains) under {root} are not "
                        "part of these tables")
    runs.sort(key=lambda r: r.path)
    return runs, skipped, warnings


# ---------------------------------------------------------------------------------------------
# shared: settings, labels, statistics

def _key(identity):
    return json.dumps(identity, sort_keys=True, default=str)


def _stat(by_seed):
    """mean ± population std over ``{seed: value}``; None when empty."""
    if not by_seed:
        return None
    seeds = sorted(by_seed)
    arr = np.asarray([by_seed[s] for s in seeds], dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=0)), "n": int(arr.size), "seeds": seeds,
            "values": [float(v) for v in arr]}


def harmonic_mean(base, new):
    """CoCoOp's H of two accuracies (0 when both are 0)."""
    return 2.0 * base * new / (base + new) if base + new > 0 else 0.0


def _short(key):
    """``TRAINER.CRoFT.lambda2`` -> ``λ2``, ``MODEL.BACKBONE.NAME`` -> ``NAME``; other keys as they are."""
    part = key.split(".")[-1]
    if part.startswith("lambda") and part[len("lambda"):].isdigit():
        return "λ" + part[len("lambda"):]
    return part if key.startswith("TRAINER.") else key


def _value_text(value):
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, list):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def _differing(identities):
    keys = sorted({k for identity in identities for k in identity})
    return [k for k in keys if len({_key(identity.get(k, "(absent)")) for identity in identities}) > 1]


def _labels(groups, strata=None):
    """``{group key: label}`` for ``groups`` ``{key: (trainer, identity)}``: the trainer, plus the settings in
    which its groups differ. ``strata``: ``{group key: stratum}``; then only the settings in which groups of one
    stratum differ count (the few-shot table's shot counts: a setting that changes with the shot count alone
    names no method)."""
    by_trainer = defaultdict(list)
    for key, (trainer, identity) in groups.items():
        by_trainer[trainer].append((key, identity))
    labels = {}
    for trainer, members in by_trainer.items():
        by_stratum = defaultdict(list)
        for key, identity in members:
            by_stratum[strata[key] if strata else None].append(identity)
        differ = sorted({k for identities in by_stratum.values() for k in _differing(identities)})
        for key, identity in members:
            parts = [f"{_short(k)}={_value_text(identity.get(k, '(absent)'))}" for k in differ]
            labels[key] = f"{trainer} [{' '.join(parts)}]" if parts else trainer
    return labels


def _duplicates_warning(cells, warnings, what):
    """Drop the seeds that more than one run gives to one cell (they differ only in pooled keys); warn once."""
    dropped = []
    for cell, by_seed in cells.items():
        for seed in [s for s, runs in by_seed.items() if len(runs) > 1]:
            dropped.append(by_seed.pop(seed))
    if dropped:
        paths = [r.path for r in dropped[0]]
        warnings.append(f"{len(dropped)} {what} cell seed(s) have several runs that differ only in "
                        f"{', '.join(k for k in POOLED_KEYS if k not in ('SEED', SUBSAMPLE_KEY))} (e.g. "
                        f"{' and '.join(paths)}); those seeds are left out of their cells")


# ---------------------------------------------------------------------------------------------
# the few-shot table

class FewshotTable:
    """``columns``: dataset names; ``rows``: dicts with ``method`` (label), ``trainer``, ``shots`` (0 for a
    trainer that trains nothing), ``cells`` ``{dataset: stat}``, ``average`` (mean of the cell means or None),
    ``partial`` (a column of the table is missing), ``identity``; ``varying``: per method, the settings that
    change with the shot count; ``skipped``/``warnings``: what was left out."""

    def __init__(self, columns, rows, skipped, warnings, varying):
        self.columns = columns
        self.rows = rows
        self.skipped = skipped
        self.warnings = warnings
        self.varying = varying

    def methods(self):
        """Method labels in row order."""
        return list(OrderedDict.fromkeys(row["method"] for row in self.rows))

    def series(self, column):
        """``{method: [(shots, mean)]}`` of one column (a dataset, or ``Average``: complete rows only)."""
        out = OrderedDict()
        for row in self.rows:
            if column == AVERAGE:
                value = None if row["partial"] else row["average"]
            else:
                stat = row["cells"].get(column)
                value = stat["mean"] if stat else None
            if value is not None:
                out.setdefault(row["method"], []).append((row["shots"], value))
        return out


def fewshot_table(root_or_runs, zero_shot=(), datasets=None):
    """The few-shot table of the runs under a root (or of :func:`scan_runs`' result). ``zero_shot``: names of
    trainers that train nothing; ``datasets``: column order (default: sorted; others follow)."""
    runs, skipped, warnings = scan_runs(root_or_runs) if isinstance(root_or_runs, str) else root_or_runs
    warnings = list(warnings)
    zero_shot = set(zero_shot)
    runs = [r for r in runs if r.subsample == "all"]
    evaluations = [r for r in runs if not r.trained and r.trainer not in zero_shot]
    if evaluations:
        warnings.append(f"{len(evaluations)} evaluation-only run(s) of a model trained elsewhere (e.g. "
                        f"{evaluations[0].path}) are not shown: a cell holds the runs that trained")
    runs = [r for r in runs if r.trained or r.trainer in zero_shot]
    shots_of = {id(r): 0 if r.trainer in zero_shot else r.shots for r in runs}
    groups = OrderedDict()  # (trainer, identity key, shots) -> (trainer, identity)
    cells = defaultdict(lambda: defaultdict(list))  # (group, dataset) -> seed -> [runs]
    for run in runs:
        identity = run.identity()
        group = (run.trainer, _key(identity), shots_of[id(run)])
        groups.setdefault(group, (run.trainer, identity))
        cells[group, run.dataset][run.seed].append(run)
    _duplicates_warning(cells, warnings, "few-shot")
    labels = _labels(groups, strata={group: group[2] for group in groups})
    names = sorted({dataset for (_, dataset) in cells})
    order = [d for d in (datasets or []) if d in names] + [d for d in names if d not in (datasets or [])]
    rows = []
    for group, (trainer, identity) in groups.items():
        row_cells = OrderedDict()
        for dataset in order:
            by_seed = {seed: runs_[0].accuracy for seed, runs_ in cells.get((group, dataset), {}).items()}
            stat = _stat(by_seed)
            if stat is not None:
                row_cells[dataset] = stat
        if not row_cells:
            continue
        means = [s["mean"] for s in row_cells.values()]
        rows.append({"method": labels[group], "trainer": trainer, "shots": group[2], "cells": row_cells,
                     "average": float(np.mean(means)), "partial": len(row_cells) < len(order),
                     "identity": identity, "zero_shot": trainer in zero_shot})
    rows.sort(key=lambda r: (not r["zero_shot"], r["method"], r["shots"] if r["shots"] is not None else -1))
    varying = OrderedDict()
    for method in OrderedDict.fromkeys(r["method"] for r in rows):
        changed = _differing([r["identity"] for r in rows if r["method"] == method])
        if changed:
            varying[method] = changed
    return FewshotTable(order, rows, skipped, warnings, varying)


# ---------------------------------------------------------------------------------------------
# the base-to-new table

class Base2NewTable:
    """``columns``: dataset names; ``rows``: dicts with ``method``, ``trainer``, ``cells`` ``{dataset: {"base":
    stat, "new": stat, "h": float or None}}``, ``average`` ``{"base", "new", "h"}`` (means over the datasets
    with both halves) and ``partial``; ``skipped``/``warnings``."""

    def __init__(self, columns, rows, skipped, warnings):
        self.columns = columns
        self.rows = rows
        self.skipped = skipped
        self.warnings = warnings


def base2new_table(root_or_runs, datasets=None):
    runs, skipped, warnings = scan_runs(root_or_runs) if isinstance(root_or_runs, str) else root_or_runs
    warnings = list(warnings)
    groups = OrderedDict()
    cells = defaultdict(lambda: defaultdict(list))  # (group, dataset, half) -> seed -> [runs]
    trained_new = []
    for run in runs:
        if run.subsample not in ("base", "new"):
            continue
        if run.subsample == "new" and run.trained:
            trained_new.append(run.path)
            continue
        identity = run.identity()
        group = (run.trainer, _key(identity))
        if run.subsample == "base":
            groups.setdefault(group, (run.trainer, identity))
        cells[group, run.dataset, run.subsample][run.seed].append(run)
    if trained_new:
        warnings.append(f"{len(trained_new)} run(s) trained on the new classes (e.g. {trained_new[0]}) are no part "
                        "of base-to-new (which evaluates a model trained on the base classes); not shown")
    orphans = [k for k in cells if k[2] == "new" and k[0] not in groups]
    if orphans:
        warnings.append(f"{len(orphans)} new-class evaluation(s) without base runs of the same settings; not shown")
    _duplicates_warning(cells, warnings, "base-to-new")
    labels = _labels(groups)
    names = sorted({dataset for (group, dataset, _) in cells if group in groups})
    order = [d for d in (datasets or []) if d in names] + [d for d in names if d not in (datasets or [])]
    rows, missing_new = [], 0
    for group, (trainer, identity) in groups.items():
        row_cells = OrderedDict()
        for dataset in order:
            halves = {half: _stat({s: rs[0].accuracy for s, rs in cells.get((group, dataset, half), {}).items()})
                      for half in ("base", "new")}
            if halves["base"] is None:
                continue
            if halves["new"] is None or halves["new"]["seeds"] != halves["base"]["seeds"]:
                missing_new += 1
            h = harmonic_mean(halves["base"]["mean"], halves["new"]["mean"]) if halves["new"] else None
            row_cells[dataset] = {"base": halves["base"], "new": halves["new"], "h": h}
        complete = [c for c in row_cells.values() if c["new"] is not None]
        average = None
        if complete:
            base = float(np.mean([c["base"]["mean"] for c in complete]))
            new = float(np.mean([c["new"]["mean"] for c in complete]))
            average = {"base": base, "new": new, "h": harmonic_mean(base, new)}
        rows.append({"method": labels[group], "trainer": trainer, "cells": row_cells, "average": average,
                     "partial": len(complete) < len(order), "identity": identity})
    if missing_new:
        warnings.append(f"{missing_new} base-to-new cell(s) lack the new-class evaluation of some of their seeds "
                        "(croft-sweep's stage 'new' not run yet?); New is then the mean over the seeds it has")
    rows.sort(key=lambda r: r["method"])
    return Base2NewTable(order, rows, skipped, warnings)


# ---------------------------------------------------------------------------------------------
# formatting

_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _latex(text):
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return text.replace("λ", r"$\lambda$").replace("±", r"$\pm$").replace("·", r"$\cdot$")


def _pm(stat, fmt):
    if stat is None:
        return {"md": "—", "latex": "--"}[fmt]
    pm = r" $\pm$ " if fmt == "latex" else " ± "
    return f"{stat['mean']:.2f}{pm}{stat['std']:.2f}"


def _num(value, fmt, mark=""):
    if value is None:
        return {"md": "—", "latex": "--"}[fmt]
    return f"{value:.2f}" + ((f"$^{{{mark}}}$" if fmt == "latex" else mark) if mark else "")


def _md(header, body, right_from=1):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < right_from else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def _latex_table(header, body, caption, left=1):
    spec = "l" * left + "r" * (len(header) - left)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(cells) + r" \\" for cells in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _csv(header, body):
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue()


def _csv_num(value):
    return "" if value is None else repr(float(value))


def _footer(table, fmt):
    lines = []
    for path, reason in table.skipped:
        lines.append(f"skipped {path}: {reason}")
    lines.extend(f"warning: {w}" for w in table.warnings)
    if not lines:
        return ""
    if fmt == "latex":
        return "".join(f"% {line}\n" for line in lines)
    return "\n" + "".join(f"- {line}\n" for line in lines)


def fewshot_notes(table):
    notes = ["Test accuracy (%), mean ± std over seeds (population std); Average: the mean of the row's dataset "
             "means (CoOp's average over datasets)."]
    if any(r["partial"] for r in table.rows):
        notes.append(f"{PARTIAL_MARK}: the row lacks some of the table's datasets; its average is over those it has.")
    if any(r["zero_shot"] for r in table.rows):
        notes.append("0 shots: a method that trains nothing (zero-shot CLIP).")
    for method, keys in table.varying.items():
        notes.append(f"{method}: rows of different shot counts also differ in {', '.join(keys)} (the grid's "
                     "per-shot settings).")
    notes.append("Cells pool seeds and OPTIM.MAX_EPOCH, which CoOp's protocol sets per shot count and per dataset.")
    return notes


def format_fewshot(table, fmt="md"):
    """The few-shot table as text: md (with notes), csv (numbers: mean, std, n per dataset; average) or LaTeX."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "csv":
        header = ["method", "trainer", "shots"]
        for dataset in table.columns:
            header += [f"{dataset} mean", f"{dataset} std", f"{dataset} n"]
        header += [f"{AVERAGE} mean", f"{AVERAGE} partial"]
        body = []
        for row in table.rows:
            line = [row["method"], row["trainer"], row["shots"]]
            for dataset in table.columns:
                stat = row["cells"].get(dataset)
                line += [_csv_num(stat["mean"]), _csv_num(stat["std"]), stat["n"]] if stat else ["", "", ""]
            body.append(line + [_csv_num(row["average"]), row["partial"]])
        return _csv(header, body)
    esc = _latex if fmt == "latex" else (lambda t: str(t))
    header = [esc("Method"), esc("Shots")] + [esc(d) for d in table.columns] + [esc(AVERAGE)]
    body = []
    for row in table.rows:
        cells = [_pm(row["cells"].get(d), fmt) for d in table.columns]
        mark = PARTIAL_MARK if row["partial"] else ""
        body.append([esc(row["method"]), str(row["shots"])] + cells + [_num(row["average"], fmt, mark)])
    notes = fewshot_notes(table)
    if fmt == "latex":
        return _latex_table(header, body, _latex("Few-shot classification (CoOp's protocol): " + notes[0]), left=2) \
            + "".join(f"% {_latex(n)}\n" for n in notes[1:]) + _footer(table, fmt)
    if not table.rows:
        return "no few-shot runs (results.json of CoOp's datasets with DATASET.SUBSAMPLE_CLASSES all)\n" \
            + _footer(table, fmt)
    return ("## Few-shot classification (CoOp's protocol)\n\n" + _md(header, body, right_from=1)
            + "\n" + "".join(f"- {n}\n" for n in notes) + _footer(table, fmt))


def base2new_notes(table):
    notes = ["Test accuracy (%) on the base classes (the training run) and on the new classes (the trained model "
             "evaluated with DATASET.SUBSAMPLE_CLASSES new), each mean ± std over seeds; H = 2·Base·New / "
             "(Base + New) of the two means (CoCoOp's harmonic mean).",
             "Average: the mean Base and the mean New over the datasets with both halves, and their H."]
    if any(r["partial"] for r in table.rows):
        notes.append(f"{PARTIAL_MARK}: the average is over the datasets the row has both halves of.")
    return notes


def format_base2new(table, fmt="md"):
    """The base-to-new table: one block per dataset (Average first), rows = methods, columns Base, New, H
    (CoCoOp's layout); csv: one line per (method, dataset)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "csv":
        header = ["method", "trainer", "dataset", "base mean", "base std", "base n", "new mean", "new std", "new n",
                  "H", "partial"]
        body = []
        for row in table.rows:
            avg = row["average"] or {}
            body.append([row["method"], row["trainer"], AVERAGE, _csv_num(avg.get("base")), "", "",
                         _csv_num(avg.get("new")), "", "", _csv_num(avg.get("h")), row["partial"]])
            for dataset, cell in row["cells"].items():
                line = [row["method"], row["trainer"], dataset]
                for half in ("base", "new"):
                    stat = cell[half]
                    line += [_csv_num(stat["mean"]), _csv_num(stat["std"]), stat["n"]] if stat else ["", "", ""]
                body.append(line + [_csv_num(cell["h"]), False])
        return _csv(header, body)
    esc = _latex if fmt == "latex" else (lambda t: str(t))
    header = [esc("Dataset"), esc("Method"), "Base", "New", "H"]
    body = []
    for block in [AVERAGE] + list(table.columns):
        for row in table.rows:
            if block == AVERAGE:
                avg = row["average"]
                if avg is None:
                    continue
                mark = PARTIAL_MARK if row["partial"] else ""
                body.append([esc(block), esc(row["method"]), _num(avg["base"], fmt), _num(avg["new"], fmt),
                             _num(avg["h"], fmt, mark)])
                continue
            cell = row["cells"].get(block)
            if cell is None:
                continue
            body.append([esc(block), esc(row["method"]), _pm(cell["base"], fmt), _pm(cell["new"], fmt),
                         _num(cell["h"], fmt)])
    notes = base2new_notes(table)
    if fmt == "latex":
        return _latex_table(header, body, _latex("Base-to-new generalization (CoCoOp's protocol). " + notes[0]),
                            left=2) + "".join(f"% {_latex(n)}\n" for n in notes[1:]) + _footer(table, fmt)
    if not table.rows:
        return "no base-to-new runs (results.json with DATASET.SUBSAMPLE_CLASSES base)\n" + _footer(table, fmt)
    return ("## Base-to-new generalization (CoCoOp's protocol)\n\n" + _md(header, body, right_from=2) + "\n"
            + "".join(f"- {n}\n" for n in notes) + _footer(table, fmt))
