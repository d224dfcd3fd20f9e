"""The results table as one model, which the md / csv / latex writers (:mod:`croft.results.table_text`) render.

:func:`build_table` turns the rows of :func:`~croft.results.aggregate.collect` into a :class:`Table`: one
:class:`Block` per (dataset, backbone, pretrained, shots, protocol), each with its rows, its lead columns
(method, setting, number of seeds) and its statistic :class:`Column` objects, plus the notes, the settings
legend and what was left out (incomplete runs, malformed files, warnings). Two choices of columns:

* **compact** (default): closed-set accuracies (Setup-I: ID, each variant, Avg; Setup-II: each held-out
  domain, Avg), then for each score of ``scores`` (default ``energy``; ``"all"`` for every score) and each
  metric of ``ood_metrics`` (default AUROC and FPR95) the value per open-set set. Rows are sorted by method,
  then by their distinguishing settings, which are named by a key (``CRoFT [a]``) spelled out in the legend;
  the best value of each column is marked (highest accuracy / AUROC / AUPR, lowest FPR95; among complete
  cells, only when at least two rows have a value; cells whose means print the same are all best).
* **wide**: every score (``scores`` restricts them), AUROC and FPR95 per (set, score), the distinguishing
  settings spelled out in each row, rows in collected order, no best marks.

Columns are held in one order (accuracies, then by open-set set, score, metric); the blocks' ``parts``
(markdown: one table each) and ``groups`` (LaTeX: column groups) arrange them.
"""
import json
from collections import OrderedDict

from .aggregate import available_scores
from .records import ALL_METRICS
from .settings import POOLED_KEYS, block_key, setting_sort_key
from .stages import stage_notes

__all__ = ["Table", "Block", "Column", "build_table", "table_notes", "DEFAULT_SCORES", "DEFAULT_OOD_METRICS",
           "METRIC_LABELS", "LOWER_IS_BETTER", "ID_COLUMN", "PARTIAL_MARK", "FEWER_SEEDS_MARK"]

DEFAULT_SCORES = ("energy",)
DEFAULT_OOD_METRICS = ("auroc", "fpr95")
METRIC_LABELS = dict(ALL_METRICS)
#: The open-set metrics of the wide table.
WIDE_METRICS = ("auroc", "fpr95")
LOWER_IS_BETTER = frozenset({"fpr95"})
ID_COLUMN = "ID"
PARTIAL_MARK = "*"
FEWER_SEEDS_MARK = "†"


class Column:
    """One statistic column of a block: ``cells`` ``[(stat, mark)]`` (one per row), ``best`` flags.

    ``kind`` ``"acc"`` (``name``: ID, a domain or variant, Avg) or ``"open"`` (``name``: ``<set> <score>
    <METRIC>``, with ``set``, ``score`` and ``metric``).
    """

    __slots__ = ("kind", "name", "set", "score", "metric", "cells", "best", "tie")

    def __init__(self, kind, name, cells, best, set_name=None, score=None, metric=None):
        self.kind, self.name, self.cells, self.best = kind, name, cells, best
        self.set, self.score, self.metric = set_name, score, metric
        self.tie = sum(best) > 1


class Block:
    """The rows of one (dataset, backbone, pretrained, shots, protocol) and their columns.

    ``lead``: the lead columns (``"method"``, ``"setting"``, ``"n_seeds"`` or ``"n"``); ``keys``: each row's
    legend key (or None); ``parts``: ``[(section, columns)]`` with section ``"acc"``, ``(score, metric)`` or
    None (every column in one table); ``groups``: ``[(title, rule, columns)]`` with title ``"acc"``,
    ``(score, set)`` or None, ``rule``: a vertical rule before the group.
    """

    def __init__(self, rows, columns, lead, keys, parts, groups):
        self.rows, self.columns, self.lead, self.keys = rows, columns, lead, keys
        self.parts, self.groups = parts, groups
        self.first = rows[0]
        self.n_seeds = [row["n_seeds"] for row in rows]
        self.show_n = "n" in lead
        self.has_id = any(c.kind == "acc" and c.name == ID_COLUMN for c in columns)

    @property
    def title(self):
        row = self.first
        bb = row["backbone"] if row["backbone"] is not None else "?"
        pre = f" ({row['pretrained']})" if row["pretrained"] is not None else ""
        shots = f"{row['shots']} shots" if row["shots"] is not None else "shots ?"
        return f"{row['dataset']} · {bb}{pre} · {shots} · protocol {row['protocol']}"


class Table:
    """Blocks, legend ``[(key, setting)]``, the scores and metrics shown, scores asked for but absent
    (``missing``), and what the rows left out: ``incomplete``, ``malformed``, ``warnings``."""

    def __init__(self, rows, wide, blocks, legend, scores, metrics, missing):
        self.rows, self.wide, self.blocks, self.legend = rows, wide, blocks, legend
        self.scores, self.metrics, self.missing = scores, metrics, missing
        self.incomplete = list(getattr(rows, "incomplete", []))
        self.malformed = list(getattr(rows, "malformed", []))
        self.warnings = list(getattr(rows, "warnings", []))
        self.select = getattr(rows, "select", None)
        if self.select is None and any(r.get("selected_by") for r in rows):
            self.select = "val"

    def columns(self):
        return [c for block in self.blocks for c in block.columns]


# ---------------------------------------------------------------------------------------------
# choices of scores and metrics

def resolve_scores(rows, scores, wide=False):
    """The scores shown. Compact: ``scores`` in the order given (default :data:`DEFAULT_SCORES`); wide: the
    scores found in ``rows`` (those of ``scores`` only, when given). ``"all"``: every score found."""
    if isinstance(scores, str):
        scores = [s.strip() for s in scores.split(",") if s.strip()]
    if wide:
        found = available_scores(rows)
        return found if not scores or "all" in scores else [s for s in found if s in set(scores)]
    if scores is None:
        return list(DEFAULT_SCORES)
    scores = list(OrderedDict.fromkeys(scores))
    return available_scores(rows) if "all" in scores else scores


def resolve_metrics(ood_metrics):
    if ood_metrics is None:
        return list(DEFAULT_OOD_METRICS)
    if isinstance(ood_metrics, str):
        ood_metrics = [m.strip() for m in ood_metrics.split(",") if m.strip()]
    ood_metrics = list(OrderedDict.fromkeys(ood_metrics))
    unknown = [m for m in ood_metrics if m not in METRIC_LABELS]
    if unknown or not ood_metrics:
        raise ValueError(f"unknown open-set metric(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(METRIC_LABELS)}")
    return ood_metrics


# ---------------------------------------------------------------------------------------------
# best marks

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
    printed = {i: f"{stat['mean']:.2f}" for i, stat in pool}
    best = (max if higher else min)(printed.values(), key=float)
    if len(printed) > 1 and all(v == best for v in printed.values()):
        return flags  # all equal: nothing to point out
    for i, v in printed.items():
        flags[i] = v == best
    return flags


def _stat_mark(stat, mark):
    return mark if stat is not None and stat.get("partial") else ""


# ---------------------------------------------------------------------------------------------
# blocks

def _columns(rows, scores, metrics, wide):
    """Accuracy columns, then one per (open-set set, score, metric) in that order. Compact: a score's sets
    are those of rows with that score, and a column with no value at all is left out; wide keeps both
    metrics of every (set, score) found."""
    def column(kind, name, cells, set_name=None, score=None, metric=None):
        best = [False] * len(cells) if wide else _best_flags(cells, metric not in LOWER_IS_BETTER)
        return Column(kind, name, cells, best, set_name, score, metric)

    cols = []
    if any(row.get("id") for row in rows):
        cols.append(column("acc", ID_COLUMN, [(row.get("id"), _stat_mark(row.get("id"), FEWER_SEEDS_MARK))
                                              for row in rows]))
    for d in rows[0]["domains"]:
        cols.append(column("acc", d, [(row["per_domain"].get(d), _stat_mark(row["per_domain"].get(d),
                                                                             FEWER_SEEDS_MARK)) for row in rows]))
    cols.append(column("acc", "Avg", [(row["avg"], PARTIAL_MARK if row["avg_partial"] else "") for row in rows]))
    sets = sorted({s for row in rows for s, by_score in row["open_set"].items() if set(by_score) & set(scores)})
    for set_name in sets:
        for score in scores:
            if not any(score in row["open_set"].get(set_name, {}) for row in rows):
                continue
            for metric in metrics:
                cells = []
                for row in rows:
                    stat = row["open_set"].get(set_name, {}).get(score, {}).get(metric)
                    cells.append((stat, _stat_mark(stat, PARTIAL_MARK)))
                if wide or any(stat is not None for stat, _ in cells):
                    cols.append(column("open", f"{set_name} {score} {METRIC_LABELS[metric]}", cells,
                                       set_name, score, metric))
    return cols


def _compact_block(rows, scores, metrics, keys_of):
    rows = sorted(rows, key=_compact_sort_key)
    cols = _columns(rows, scores, metrics, wide=False)
    acc = [c for c in cols if c.kind == "acc"]
    parts = [("acc", acc)]
    for score in scores:
        for metric in metrics:
            section = [c for c in cols if c.kind == "open" and (c.score, c.metric) == (score, metric)]
            if section:
                parts.append(((score, metric), section))
    groups = [("acc", True, acc)]
    by_group = OrderedDict()
    for c in cols:
        if c.kind == "open":
            by_group.setdefault((c.score, c.set), []).append(c)
    for (score, set_name), group in sorted(by_group.items(), key=lambda kv: (scores.index(kv[0][0]), kv[0][1])):
        groups.append(((score, set_name), True, group))
    n_seeds = {row["n_seeds"] for row in rows}
    lead = ("method", "n") if len(n_seeds) > 1 else ("method",)
    keys = [keys_of.get(_legend_id(row)) if row["setting"] else None for row in rows]
    return Block(rows, cols, lead, keys, parts, groups)


def _wide_block(rows, scores):
    cols = _columns(rows, scores, WIDE_METRICS, wide=True)
    avg = [c for c in cols if c.kind == "acc" and c.name == "Avg"]
    before_avg = [c for c in cols if c.kind == "acc" and c not in avg]
    opened = [c for c in cols if c.kind == "open"]
    groups = [(None, False, before_avg), (None, True, avg)] + ([(None, True, opened)] if opened else [])
    return Block(list(rows), cols, ("method", "setting", "n_seeds"), [None] * len(rows), [(None, cols)], groups)


def _compact_sort_key(row):
    return (str(row["method"]).casefold(), str(row["method"]), setting_sort_key(row["setting"]), row["setting_str"])


def _legend_id(row):
    return json.dumps(row["setting"], default=str)


def _key_name(i):
    """a, b, ..., z, aa, ab, ..."""
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(ord("a") + r) + name
    return name


def build_table(rows, scores=None, wide=False, ood_metrics=None):
    """The :class:`Table` of ``rows`` (from :func:`~croft.results.aggregate.collect`); see the module docstring.
    An unknown name in ``ood_metrics`` is a ValueError listing the known ones."""
    scores = resolve_scores(rows, scores, wide)
    metrics = list(WIDE_METRICS) if wide else resolve_metrics(ood_metrics)
    by_block = OrderedDict()
    for row in rows:
        by_block.setdefault(block_key(row), []).append(row)
    legend, keys_of = [], {}
    if wide:
        blocks = [_wide_block(block_rows, scores) for block_rows in by_block.values()]
    else:
        for block_rows in by_block.values():  # keys in the order the rows are printed
            for row in sorted(block_rows, key=_compact_sort_key):
                if row["setting"] and _legend_id(row) not in keys_of:
                    keys_of[_legend_id(row)] = _key_name(len(keys_of))
                    legend.append((keys_of[_legend_id(row)], row["setting"]))
        blocks = [_compact_block(block_rows, scores, metrics, keys_of) for block_rows in by_block.values()]
    available = available_scores(rows)
    missing = [] if wide else [s for s in scores if s not in available]
    return Table(rows, wide, blocks, legend, scores, metrics, missing)


# ---------------------------------------------------------------------------------------------
# notes

def _marks_used(table):
    return {m for col in table.columns() for _, mark in col.cells for m in mark}


def table_notes(table, fmt="md"):
    """The notes under the table: how numbers are computed, the marks used, how rows group, selection and
    stages (``fmt`` only words how the best cells are marked)."""
    rows = table.rows
    # the wide CSV never listed its marks (its cells have none: each statistic has its own n column)
    marks = set() if table.wide and fmt == "csv" else _marks_used(table)
    if table.wide:
        notes = ["Numbers are mean ± std over seeds; std is the population std (ddof=0), as in the reference "
                 "collectors.",
                 "Avg: per seed, the mean over all held-out domains / variants; then mean ± std over seeds."]
        if any(r.get("id") for r in rows):
            notes.append("ID (Setup-I): accuracy on the ID test set (closed_set.test_accuracy); not part of Avg.")
        notes.append("Open-set AUROC / FPR95 (%): per seed, the mean over held-out domains; then mean ± std over "
                     "seeds.")
        fewer = "fewer seeds than n_seeds for this domain."
    else:
        notes = ["Numbers: mean ± std over seeds (population std, ddof=0, as in the reference collectors). "
                 + ("Best per column in bold " if fmt == "md" else "Best per column in bold face ")
                 + "(highest accuracy / AUROC / AUPR, lowest FPR95; among complete cells)."]
        if any(b.has_id for b in table.blocks):
            notes.append("ID (Setup-I): accuracy on the ID test set (closed_set.test_accuracy); not part of Avg.")
        notes.append("Avg: per seed, the mean over all held-out domains / variants; then mean ± std over seeds.")
        if any(len(b.parts) > 1 for b in table.blocks):
            names = " / ".join(METRIC_LABELS[m] for m in table.metrics)
            notes.append(f"Open set {names} (%): per seed, the mean over held-out domains; then mean ± std over "
                         "seeds.")
        notes.append("Every score and column, settings spelled out in each row: --wide.")
        if any(b.show_n for b in table.blocks):
            notes.append("n: number of seeds.")
        fewer = "fewer seeds than the setting has for this domain."
    if PARTIAL_MARK in marks:
        notes.append(f"{PARTIAL_MARK} partial: some seed lacks a held-out domain; averaged over the seeds "
                     "that have every domain only (— when none has).")
    if FEWER_SEEDS_MARK in marks:
        notes.append(f"{FEWER_SEEDS_MARK} {fewer}")
    if not table.wide:
        if table.missing and rows:
            available = available_scores(rows)
            notes.append(f"No open-set results for score(s) {', '.join(table.missing)} "
                         f"(available: {', '.join(available) if available else 'none'}).")
        if any(col.tie for col in table.columns()):
            notes.append("Ties: cells whose means are equal at the printed precision (2 decimals) are all marked "
                         "best.")
    notes.extend(_grouping_notes(rows))
    if table.select == "val":
        notes.append("Selection: per (trainer, dataset, backbone, pretrained, shots, protocol), the setting with the "
                     "best mean closed_set.val_accuracy (test numbers are never used)." if table.wide else
                     "Selection (--select val): the setting with the best mean closed_set.val_accuracy "
                     "per (trainer, dataset, backbone, pretrained, shots, protocol); test numbers are never used.")
    notes.extend(stage_notes(rows))
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
