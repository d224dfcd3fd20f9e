"""Energy histograms and ROC curves from a run's score arrays (``scores.npz``).

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), so
plotting works without a display and never changes the pyplot backend of the caller.
Every score is "higher means more in-distribution"; ID samples are the positive class.
Keys that are absent are skipped; a panel with nothing to draw says so. Each open-set set (and
each ID-side series) has one colour in every panel of a figure, histogram and ROC alike.
"""
import json
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .io import RESULTS_FILE, SCORES_FILE, VAL_ENERGY_KEY, id_key, load_scores, named_keys

__all__ = ["plot_run", "plot_runs", "energy_series", "roc_series", "run_titles", "series_colours"]

_N_BINS = 50
_OOD_PREFIX = "OOD: "


def _finite(values):
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def energy_series(scores):
    """``[(label, values)]`` for the energy histogram: val, each shift domain, each OOD set.

    ``energy/id`` is drawn only when neither ``energy/val`` nor any ``energy/shift/*`` exists,
    so that the ID side is always represented.
    """
    series = []
    if VAL_ENERGY_KEY in scores:
        series.append(("val (ID)", scores[VAL_ENERGY_KEY]))
    for name, key in named_keys(scores, "shift", "energy"):
        series.append((f"shift: {name}", scores[key]))
    if not series and id_key("energy") in scores:
        series.append(("ID", scores[id_key("energy")]))
    for name, key in named_keys(scores, "ood", "energy"):
        series.append((f"{_OOD_PREFIX}{name}", scores[key]))
    out = []
    for label, values in series:
        values = _finite(values)
        if values.size:
            out.append((label, values))
    return out


def roc_series(scores, score="energy"):
    """``[(ood set, fpr, tpr, auroc %)]``: ``<score>/id`` (positives) vs each ``<score>/ood/<SET>``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    pos = _finite(scores.get(id_key(score), ()))
    if not pos.size:
        return []
    out = []
    for name, key in named_keys(scores, "ood", score):
        neg = _finite(scores[key])
        if not neg.size:
            continue
        labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
        values = np.concatenate([pos, neg])
        fpr, tpr, _ = roc_curve(labels, values)
        out.append((name, fpr, tpr, 100.0 * roc_auc_score(labels, values)))
    return out


def _empty(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _series_name(label):
    """The colour key of a histogram series: the open-set set's name, else the label itself."""
    return label[len(_OOD_PREFIX):] if label.startswith(_OOD_PREFIX) else label


def series_colours(all_scores):
    """``{series name: colour}`` over one or more runs' scores: open-set sets first (sorted), then the
    ID-side series (val, shift domains, ID), so that a set has the same colour in every panel."""
    sets, others = set(), []
    for scores in all_scores:
        sets.update(name for name, _ in named_keys(scores, "ood", "energy"))
        for label, _ in energy_series(scores):
            if not label.startswith(_OOD_PREFIX) and label not in others:
                others.append(label)
    return {name: f"C{i % 10}" for i, name in enumerate(sorted(sets) + others)}


def _draw(ax_hist, ax_roc, scores, title="", colours=None):
    colours = colours if colours is not None else series_colours([scores])
    series = energy_series(scores)
    if series:
        bins = np.histogram_bin_edges(np.concatenate([v for _, v in series]), bins=_N_BINS)
        for label, values in series:
            color = colours[_series_name(label)]
            ax_hist.hist(values, bins=bins, density=True, histtype="stepfilled", alpha=0.3, color=color)
            ax_hist.hist(values, bins=bins, density=True, histtype="step", linewidth=1.2, color=color,
                         label=f"{label} (n={values.size})")
        ax_hist.set_xlabel("energy = logsumexp(logits)  (higher = more ID)")
        ax_hist.set_ylabel("density")
        ax_hist.legend(fontsize="small")
    else:
        _empty(ax_hist, "no energy scores")
    ax_hist.set_title(f"{title}  energy" if title else "energy", fontsize="medium")

    curves = roc_series(scores, "energy")
    if curves:
        for name, fpr, tpr, auroc in curves:
            ax_roc.plot(fpr, tpr, color=colours[name], linewidth=1.5, label=f"{name} (AUROC {auroc:.2f})")
        ax_roc.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1)
        ax_roc.set_xlim(0, 1)
        ax_roc.set_ylim(0, 1.01)
        ax_roc.set_xlabel("false positive rate (OOD accepted)")
        ax_roc.set_ylabel("true positive rate (ID accepted)")
        ax_roc.legend(fontsize="small", loc="lower right")
    else:
        _empty(ax_roc, "no ID/OOD energy scores")
    ax_roc.set_title(f"{title}  ROC (energy, ID positive)" if title else "ROC (energy, ID positive)",
                     fontsize="medium")


def _save(fig, out_png):
    folder = os.path.dirname(os.path.abspath(out_png))
    os.makedirs(folder, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out_png, dpi=110)
    return out_png


def plot_run(scores, out_png, title=""):
    """One run: energy histograms (left) and energy ROC curves, ID vs each OOD set (right)."""
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_hist, ax_roc = fig.subplots(1, 2)
    _draw(ax_hist, ax_roc, scores)
    if title:
        fig.suptitle(title)
    return _save(fig, out_png)


def _read_results(run_dir):
    try:
        with open(os.path.join(run_dir, RESULTS_FILE), encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def _described(results):
    """``[(field, text)]`` that name a run: method, dataset, held-out domain, seed."""
    held = results.get("target_domains") or []
    held = "+".join(map(str, held)) if isinstance(held, list) else str(held)
    return [("trainer", str(results.get("trainer", "?"))), ("dataset", str(results.get("dataset", "?"))),
            ("held out", f"held out {held}" if held else ""), ("seed", f"seed {results.get('seed', '?')}")]


def _identity_entry(results):
    """``(trainer, fingerprint_values or None, hparams)`` for :func:`~croft.results.settings.run_identities`."""
    values = results.get("fingerprint_values")
    hparams = results.get("hparams") if isinstance(results.get("hparams"), dict) else {}
    return (results.get("trainer"), values if isinstance(values, dict) else None,
            {f"hparams.{k}": v for k, v in hparams.items()})


def run_titles(run_dirs):
    """``(common, [title per run])``: what the runs share, and what tells each one apart.

    A run is named by its method, dataset, held-out domain and seed (the fields that are the same for
    every run go to ``common``) and by the recorded settings (results.json ``fingerprint_values``) in
    which it differs from the other given runs of its method, as the results table labels rows. A
    run folder without a readable results.json is named by its path.
    """
    from .settings import ABSENT, differing_keys, format_setting, run_identities

    infos = [_read_results(d) for d in run_dirs]
    known = [r for r in infos if r is not None]
    described = [_described(r) for r in known]
    common = [text for i, (_, text) in enumerate(described[0]) if text
              and all(d[i][1] == text for d in described)] if len(described) > 1 else []
    identities = run_identities([_identity_entry(r) for r in known])
    by_trainer = {}
    for r, identity in zip(known, identities):
        by_trainer.setdefault(r.get("trainer"), []).append(identity)
    keys = {t: differing_keys(ids) for t, ids in by_trainer.items()}
    titles, k = [], 0
    for run_dir, r in zip(run_dirs, infos):
        if r is None:
            titles.append(os.path.normpath(run_dir))
            continue
        identity = identities[k]
        parts = [text for _, text in described[k] if text and text not in common]
        setting = format_setting([(key, identity.get(key, ABSENT)) for key in keys[r.get("trainer")]])
        title = " · ".join(parts + ([setting] if setting else []))
        titles.append(title or os.path.normpath(run_dir))
        k += 1
    return " · ".join(common), titles


def plot_runs(run_dirs, out_png, titles=None):
    """Several runs, one row each (histograms left, ROC right), from each run's scores.npz.

    Without ``titles``, each row is titled by what tells its run apart from the others and the
    figure by what they share (:func:`run_titles`).

    Raises FileNotFoundError naming the run folder when a run has no scores.npz.
    """
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ValueError("plot_runs: no run folders given")
    all_scores = []
    for run_dir in run_dirs:
        path = os.path.join(run_dir, SCORES_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"run folder {run_dir} has no {SCORES_FILE} "
                                    f"(was the run evaluated to the end?)")
        all_scores.append(load_scores(path))
    common = ""
    if titles is None:
        common, titles = run_titles(run_dirs)
    n = len(run_dirs)
    fig = Figure(figsize=(12, 4.2 * n), layout="constrained")
    axes = np.asarray(fig.subplots(n, 2)).reshape(n, 2)
    colours = series_colours(all_scores)
    for (ax_hist, ax_roc), scores, title in zip(axes, all_scores, list(titles)):
        _draw(ax_hist, ax_roc, scores, title, colours)
    if common:
        fig.suptitle(common)
    return _save(fig, out_png)
