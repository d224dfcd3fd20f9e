"""Aggregation of run records into table rows (one per setting, :mod:`croft.results.settings`), and the
``--select val`` model selection.

* **Closed set**: a run contributes ``closed_set.test_accuracy`` under its held-out domain (``target_domains``
  joined with ``+``, or the dataset name when there is none). A run whose ``closed_set.per_domain`` holds
  several entries (Setup-I: ImageNet-V2/-Sketch/-A/-R evaluated in one run) contributes each entry as its own
  column instead. Each column of a setting is the mean ± std over seeds; such a run's
  ``closed_set.test_accuracy`` (the ID accuracy) is shown as an **ID** column, outside the average. **Avg** is
  computed per seed as the mean over all columns of the dataset, then mean ± std over seeds, using only the
  seeds that have every column; when some seed lacks a column the average is *partial*.
* **Open set**: for each OOD set, score and metric, the per-seed value is the mean over the held-out domains,
  then mean ± std over seeds (again only complete seeds; partial otherwise).
* std is the population std (``ddof=0``), as in the reference collectors.
* ``select="val"`` keeps, per :data:`SELECT_FIELDS`, the setting with the best mean
  ``closed_set.val_accuracy`` (never test numbers).
"""
import functools
import json
from collections import OrderedDict, defaultdict

import numpy as np

from .records import ALL_METRICS, scan
from .settings import (BLOCK_FIELDS, format_hparams, identity_of, label_rows, pooled_keys, run_identities,
                       setting_sort_key, sort_value)

__all__ = ["CollectedRows", "aggregate", "collect", "score_order", "available_scores", "SELECT_FIELDS"]

#: ``--select val`` picks one setting per value of these fields.
SELECT_FIELDS = ("trainer", "dataset", "backbone", "pretrained", "shots", "protocol")


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


@functools.lru_cache(maxsize=1)
def _default_scores():
    from ..config import get_cfg_default

    return tuple(get_cfg_default().TEST.OOD_SCORES)


def score_order(score):
    """Sort key of a score name found in results: croft's default ``TEST.OOD_SCORES`` order (energy, mcm,
    max_logit, knn), then any other score alphabetically."""
    names = _default_scores()
    return (names.index(score), "") if score in names else (len(names), score)


def available_scores(rows):
    """Sorted score names that occur in the open-set results of ``rows``."""
    names = {score for row in rows for by_score in row["open_set"].values() for score in by_score}
    return sorted(names, key=score_order)


# ---------------------------------------------------------------------------------------------
# rows

def _settings(runs):
    """``{key: (identity, [runs])}``: the runs of each setting, in the order of ``runs``."""
    settings = OrderedDict()
    identities = run_identities([(r.trainer, r.values, r.fallback_identity()) for r in runs])
    for run, identity in zip(runs, identities):
        identity = identity_of(run, identity)
        key = (run.recorded,) + run.setting_key[:-1] + (json.dumps(identity, sort_keys=True, default=str),)
        settings.setdefault(key, (identity, []))[1].append(run)
    return settings


def _one_per_seed_and_unit(setting_runs, warnings):
    """One run per (seed, held-out unit); later duplicates are reported and ignored."""
    chosen = OrderedDict()
    for run in setting_runs:
        k = (run.seed, run.unit)
        if k in chosen:
            same = "same settings" if run.recorded else "same trainer, dataset and hparams"
            warnings.append(f"duplicate run ({same}, seed {run.seed}, held-out {run.unit}): using "
                            f"{chosen[k].path}, ignoring {run.path}")
            continue
        chosen[k] = run
    return list(chosen.values())


def _row(identity, used, dataset_columns, dataset_units):
    first = used[0]
    seeds = sorted({r.seed for r in used})
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
    open_keys = sorted({(k[0], k[1]) for k in open_by_seed}, key=lambda k: (k[0], score_order(k[1])))
    for set_name, score in open_keys:
        entry = OrderedDict()
        for metric, _ in ALL_METRICS:
            by_seed = open_by_seed.get((set_name, score, metric))
            if by_seed is None:
                entry[metric] = None
                continue
            stat, _ = _complete_seed_average(by_seed, dataset_units, seeds)
            entry[metric] = stat if stat is not None else {"mean": None, "std": None, "n": 0, "values": [],
                                                           "partial": True}
        open_set.setdefault(set_name, OrderedDict())[score] = entry

    return {
        "method": first.trainer, "trainer": first.trainer, "dataset": first.dataset,
        "backbone": first.backbone, "pretrained": first.pretrained, "shots": first.shots,
        "protocol": first.protocol, "hparams": first.hparams,
        "hparams_str": format_hparams(first.hparams),
        "recorded": first.recorded, "identity": identity, "pooled": pooled_keys(used),
        "seeds": seeds, "n_seeds": len(seeds), "n_runs": len(used),
        "run_paths": [r.path for r in used],
        "domains": dataset_columns, "units": dataset_units,
        "per_domain": per_domain,
        "id": _stat([id_by_seed[s] for s in seeds if s in id_by_seed], partial=len(id_by_seed) < len(seeds)),
        "avg": avg if avg is not None else {"mean": None, "std": None, "n": 0, "values": [], "partial": True},
        "avg_partial": avg_partial,
        "val": val,
        "open_set": open_set,
        "stages": sorted({t for r in used for t in r.stages}),
    }


def aggregate(runs, select=None, warnings=None):
    """Rows (one per setting) from :class:`~croft.results.records.RunRecord` objects; see the module docstring."""
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

    rows = []
    for identity, setting_runs in _settings(runs).values():
        used = _one_per_seed_and_unit(setting_runs, warnings)
        dataset = used[0].dataset
        rows.append(_row(identity, used, sorted(columns[dataset]), sorted(units[dataset])))

    label_rows(rows)
    if select == "val":
        rows = select_by_val(rows, warnings)
    rows.sort(key=lambda r: tuple(sort_value(r[f]) for f in BLOCK_FIELDS)
              + (sort_value(r["trainer"]), setting_sort_key(r["setting"])))
    return rows


def select_by_val(rows, warnings):
    """Per :data:`SELECT_FIELDS`, the row with the best mean ``val`` (ties: the first by setting, with a
    warning); groups without any val accuracy keep every row, with a warning when there are several."""
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
        eligible.sort(key=lambda r: (-r["val"]["mean"], setting_sort_key(r["setting"])))
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
    settings its runs share, :func:`~croft.results.settings.run_identities`), ``setting`` (``[(key, value)]``:
    what tells it apart from the other rows of its method and block), ``setting_str``, ``pooled`` (the keys
    that vary between its runs), ``seeds``, ``n_seeds``, ``n_runs``,
    ``run_paths``, ``domains`` (column order), ``per_domain`` ``{column: stat}``, ``id``, ``avg``,
    ``avg_partial``, ``val``, ``open_set`` ``{set: {score: {metric: stat}}}`` and ``stages``,
    where a stat is ``{"mean", "std", "n" (seeds), "values" (per seed), "partial"}`` or None.
    """
    runs, incomplete, malformed, warnings, refused = scan(root)
    rows = aggregate(runs, select=select, warnings=warnings)
    return CollectedRows(rows, incomplete, malformed, warnings, select=select, root=root, refused=refused)
