"""The effective-robustness plot: ID accuracy (x) against OOD accuracy (y) on logit axes.

One point per method and setting (the runs the results table averages in one row), or per run,
read from each run's ``results.json`` (docs/robustness.md):

* **Setup-I** (``setup1``): x = ``closed_set.test_accuracy`` (the ImageNet-style ID test split),
  y = the mean of ``closed_set.per_domain`` (the covariate-shifted variants).
* **Setup-II** (``setup2``): x = ``closed_set.val_accuracy`` (val split of the source domains),
  y = ``closed_set.test_accuracy`` (the held-out domain).

A setting's point averages its runs over seeds within each held-out domain, then over the held-out
domains. Both axes are logit-scaled (Taori et al. 2020); accuracies are clipped to
[:data:`ACC_EPS`, 100 - :data:`ACC_EPS`] % first, because logit(0) and logit(100 %) are infinite.
The baseline points (``ZeroshotCLIP`` by default) get a least-squares line in logit space, drawn
back-transformed; a point's *effective robustness* is its OOD accuracy minus the line's value at its
ID accuracy. Runs that record a WiSE-FT mixing coefficient (``TRAINER.<NAME>.WISE_ALPHA`` in
``fingerprint_values``, or ``hparams.wise_alpha``) form one curve per setting, connected in the
order of α.

:func:`robustness_data` returns what is drawn (:class:`RobustnessData`) from the runs
:mod:`croft.results.robustness_runs` reads, :func:`robustness_figure` the figure, and :func:`plot_robustness` does
both and saves the file. Figures use matplotlib's Agg canvas
directly, like :mod:`croft.results.plots`.
"""
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .robustness_runs import (WISE_ALPHA_KEY, OptionError, RobustnessError, RunPoint, find_results, read_runs,
                              run_accuracies, wise_alpha)

__all__ = ["ACC_EPS", "DEFAULT_BASELINES", "WISE_ALPHA_KEY", "POOLED", "RobustnessError", "OptionError", "RunPoint",
           "Point", "Curve", "Fit", "Panel", "RobustnessData", "find_results", "read_runs", "wise_alpha",
           "run_accuracies", "logit", "expit", "fit_logit_line", "robustness_data", "robustness_figure",
           "plot_robustness", "format_points"]

#: Accuracies are clipped to [ACC_EPS, 100 - ACC_EPS] percent before the logit (logit(0), logit(100 %) are infinite).
ACC_EPS = 0.1
DEFAULT_BASELINES = ("ZeroshotCLIP",)
#: Name of the one panel of the default plot (every OOD set of a run averaged).
POOLED = "mean"
OUTPUT_FORMATS = ("png", "pdf", "svg")
_TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8, 99.9)
_FIT_SAMPLES = 200


# ---------------------------------------------------------------------------------------------
# logit space

def logit(acc):
    """logit of an accuracy in %, clipped to [ACC_EPS, 100 - ACC_EPS] first."""
    p = np.clip(np.asarray(acc, dtype=float), ACC_EPS, 100.0 - ACC_EPS) / 100.0
    return np.log(p) - np.log1p(-p)


def expit(z):
    """The inverse of :func:`logit`, in %."""
    return 100.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def fit_logit_line(xs, ys):
    """``(slope, intercept)`` of the least-squares line ``logit(y) = slope * logit(x) + intercept``, or None
    when fewer than two of the points have different ID accuracies."""
    lx, ly = logit(xs), logit(ys)
    if lx.size < 2 or np.ptp(lx) == 0:
        return None
    slope, intercept = np.polyfit(lx, ly, 1)
    return float(slope), float(intercept)


# ---------------------------------------------------------------------------------------------
# what is drawn

@dataclass
class Point:
    """One marker: the mean of a group of runs. ``x`` / ``y`` are the plotted (clipped) accuracies in %,
    ``id_accuracy`` / ``ood_accuracy`` the means before clipping; ``effective_robustness`` is
    ``y`` minus the fit line at ``x`` (percentage points; None without a fit)."""
    label: str
    trainer: str
    x: float
    y: float
    id_accuracy: float
    ood_accuracy: float
    n_runs: int
    seeds: list
    units: list
    baseline: bool = False
    alpha: float = None
    effective_robustness: float = None
    paths: list = field(default_factory=list)


@dataclass
class Curve:
    """A WiSE-FT curve: the points of one setting at each α, in increasing α."""
    label: str
    trainer: str
    points: list

    @property
    def alphas(self):
        return [p.alpha for p in self.points]


@dataclass
class Fit:
    """The line through the baseline points, fitted in logit space; ``xs`` / ``ys`` the drawn line in %."""
    slope: float
    intercept: float
    baselines: list
    n_points: int
    xs: np.ndarray
    ys: np.ndarray

    def __call__(self, x):
        return expit(self.slope * logit(x) + self.intercept)


@dataclass
class Panel:
    """One axes: ``name`` is :data:`POOLED` or one OOD set (a held-out domain, a variant)."""
    name: str
    points: list          # every point, those of curves included, in legend order
    curves: list
    fit: Fit = None
    xlim: tuple = None
    ylim: tuple = None


@dataclass
class RobustnessData:
    setup: str
    dataset: str
    baselines: list
    panels: list
    xlabel: str
    ylabel: str
    title: str
    warnings: list = field(default_factory=list)


def _check_one_setup(runs):
    setups = OrderedDict()
    for run in runs:
        setups.setdefault((run.setup, run.dataset), run.path)
    if len({s for s, _ in setups}) > 1:
        listed = "; ".join(f"{setup} ({dataset}, e.g. {path})" for (setup, dataset), path in setups.items())
        raise RobustnessError(f"runs of mixed setups: {listed}; plot the runs of one setup at a time")
    if len(setups) > 1:
        listed = "; ".join(f"{dataset} (e.g. {path})" for (_, dataset), path in setups.items())
        raise RobustnessError(f"runs of several datasets: {listed}; plot one dataset at a time")
    return next(iter(setups))


def _group_runs(runs, every_run, warnings):
    """``OrderedDict{(trainer, identity json, [seed, unit]): {alpha: [runs]}}`` and the label of each group."""
    from .settings import ABSENT, differing_keys, format_setting, run_identities

    identities = run_identities([(r.trainer, r.values, r.fallback) for r in runs])
    groups, ident_of, seen = OrderedDict(), {}, {}
    for run, identity in zip(runs, identities):
        key = (run.trainer, json.dumps(identity, sort_keys=True, default=str))
        if every_run:
            key += (run.seed, run.unit)
        first = seen.setdefault(key + (run.alpha, run.seed, run.unit), run)
        if first is not run:
            # a WiSE-FT stage at the training run's own α evaluates the same model with the same settings
            folders = {os.path.normpath(os.path.dirname(os.path.abspath(r.path))) for r in (first, run)}
            if not (first.fingerprint and first.fingerprint == run.fingerprint
                    and {first.stage_of, run.stage_of} & folders):
                warnings.append(f"{run.path}: same settings, seed and held-out domain as {first.path}; "
                                "the first is used")
            continue
        ident_of[key] = identity
        groups.setdefault(key, OrderedDict()).setdefault(run.alpha, []).append(run)
    by_trainer = OrderedDict()
    for key in groups:
        by_trainer.setdefault(key[0], OrderedDict())[key[1]] = ident_of[key]
    keys = {t: differing_keys(list(ids.values())) for t, ids in by_trainer.items()}
    labels = {}
    for key in groups:
        identity = ident_of[key]
        setting = format_setting([(k, identity.get(k, ABSENT)) for k in keys[key[0]]])
        parts = [key[0]] + ([setting] if setting else [])
        if every_run:
            parts.append(f"seed {key[2]}" + (f" {key[3]}" if runs[0].setup == "setup2" else ""))
        labels[key] = " ".join(parts)
    return groups, labels


def _mean_point(runs, panel, setup):
    """``(id mean, ood mean, units, runs used)`` over ``runs`` for one panel: seeds averaged within each held-out
    domain, then the domains; None when no run has that panel's OOD set."""
    by_unit, used = OrderedDict(), []
    for run in runs:
        if panel == POOLED:
            ood = float(np.mean(list(run.ood.values())))
        elif panel in run.ood:
            ood = run.ood[panel]
        else:
            continue
        by_unit.setdefault(run.unit, []).append((run.id_accuracy, ood))
        used.append(run)
    if not by_unit:
        return None
    ids = [np.mean([a for a, _ in pairs]) for pairs in by_unit.values()]
    oods = [np.mean([b for _, b in pairs]) for pairs in by_unit.values()]
    return float(np.mean(ids)), float(np.mean(oods)), sorted(by_unit), used


def _limits(values):
    lo, hi = float(np.min(logit(values))), float(np.max(logit(values)))
    pad = max(0.15 * (hi - lo), 0.25)
    return float(expit(lo - pad)), float(expit(hi + pad))


def robustness_data(paths, baselines=None, every_run=False, per_domain=False, warnings=None):
    """What :func:`robustness_figure` draws, from the run folders ``paths``.

    ``baselines``: trainer names whose points the line is fitted through (default ``ZeroshotCLIP``; a name
    given explicitly that no run has is an error). ``every_run``: one point per run instead of per
    setting. ``per_domain``: one panel per OOD set (Setup-II: each held-out domain; Setup-I: each
    variant) instead of one panel of their means. Warnings (runs left out, no fit, clipped
    accuracies) go to ``warnings`` and :attr:`RobustnessData.warnings`.
    """
    warnings = warnings if warnings is not None else []
    explicit = baselines is not None
    baselines = list(baselines) if explicit else list(DEFAULT_BASELINES)
    runs = read_runs(paths, warnings)
    setup, dataset = _check_one_setup(runs)
    trainers = list(OrderedDict.fromkeys(r.trainer for r in runs))
    unknown = [b for b in baselines if b not in trainers]
    if explicit and unknown:
        raise OptionError(f"--baseline: no runs of trainer {', '.join(unknown)} under the folders given "
                              f"(trainers found: {', '.join(sorted(trainers))})")
    groups, labels = _group_runs(runs, every_run, warnings)
    ood_names = list(OrderedDict.fromkeys(name for r in runs for name in r.ood))
    panel_names = ood_names if per_domain else [POOLED]
    if not per_domain and setup == "setup2":
        units = [r.unit for r in runs]
        for key, by_alpha in groups.items():
            have = {r.unit for rs in by_alpha.values() for r in rs}
            if not every_run and have != set(units):
                warnings.append(f"{labels[key]}: held-out domain(s) {', '.join(sorted(have))} only (others: "
                                f"{', '.join(sorted(set(units)))}); its point averages those")

    panels = []
    for name in panel_names:
        points, curves = [], []
        for key, by_alpha in groups.items():
            trainer = key[0]
            made = []
            for alpha in sorted(by_alpha, key=lambda a: (a is not None, a)):
                group = by_alpha[alpha]
                mean = _mean_point(group, name, setup)
                if mean is None:
                    continue
                id_acc, ood_acc, units, used = mean
                label = labels[key] if alpha is None else f"{labels[key]} α={alpha:g}"
                point = Point(label, trainer, float(np.clip(id_acc, ACC_EPS, 100 - ACC_EPS)),
                              float(np.clip(ood_acc, ACC_EPS, 100 - ACC_EPS)), id_acc, ood_acc, len(used),
                              sorted({r.seed for r in used}), units, trainer in baselines, alpha,
                              paths=[r.path for r in used])
                if (point.x, point.y) != (id_acc, ood_acc):
                    warnings.append(f"{label}{'' if name == POOLED else f' ({name})'}: accuracy "
                                    f"{id_acc:g}/{ood_acc:g} % clipped to [{ACC_EPS:g}, {100 - ACC_EPS:g}] % "
                                    "for the logit axes")
                made.append(point)
            points.extend(made)
            alpha_points = [p for p in made if p.alpha is not None]
            if alpha_points:
                curves.append(Curve(f"{labels[key]} (WiSE-FT)", trainer, alpha_points))
        if not points:
            continue
        xs, ys = [p.x for p in points], [p.y for p in points]
        xlim, ylim = _limits(xs), _limits(ys)
        base = [p for p in points if p.baseline]
        line = fit_logit_line([p.x for p in base], [p.y for p in base])
        fit = None
        where = "" if name == POOLED else f" (panel {name})"
        if line is None:
            what = ", ".join(baselines)
            warnings.append(f"no fit line{where}: {len(base)} point(s) of {what}; a fit needs two with different "
                            "ID accuracy (name other baseline trainers with --baseline)")
        else:
            lo, hi = min(xlim[0], ylim[0]), max(xlim[1], ylim[1])
            grid = expit(np.linspace(float(logit(lo)), float(logit(hi)), _FIT_SAMPLES))
            fit = Fit(line[0], line[1], list(baselines), len(base), grid, expit(line[0] * logit(grid) + line[1]))
            for p in points:
                p.effective_robustness = float(p.y - fit(p.x))
        panels.append(Panel(name, points, curves, fit, xlim, ylim))
    if not explicit and not any(p.baseline for panel in panels for p in panel.points):
        warnings.insert(0, f"no runs of the baseline trainer(s) {', '.join(baselines)} under the folders given: no "
                        "fit line (add their run folders, or name others with --baseline)")

    if setup == "setup1":
        xlabel = f"ID accuracy: {dataset} test (%)"
        ylabel = "OOD accuracy: " + ("mean over " + ", ".join(ood_names) if not per_domain else "variant") + " (%)"
        what = "Setup-I"
    else:
        xlabel = "ID accuracy: source-domain val (%)"
        ylabel = "OOD accuracy: held-out domain" + ("s, mean" if not per_domain and len(ood_names) > 1 else "") + " (%)"
        what = "Setup-II"
    title = f"{dataset} ({what}): effective robustness" + (", every run" if every_run else "")
    return RobustnessData(setup, dataset, baselines, panels, xlabel, ylabel, title, warnings)


# ---------------------------------------------------------------------------------------------
# drawing

def _logit_axis(axis, limits):
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = [t for t in _TICKS if limits[0] <= t <= limits[1]]
    if len(ticks) < 2:
        ticks = sorted({round(float(t), 1) for t in expit(np.linspace(*logit(limits), 4))})
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _draw_panel(ax, data, panel, colours):
    scale = dict(functions=(logit, expit))
    ax.set_xscale("function", **scale)
    ax.set_yscale("function", **scale)
    lo, hi = min(panel.xlim[0], panel.ylim[0]), max(panel.xlim[1], panel.ylim[1])
    diag = expit(np.linspace(float(logit(lo)), float(logit(hi)), 2))
    ax.plot(diag, diag, linestyle=":", color="0.55", linewidth=1, label="y = x")
    if panel.fit is not None:
        ax.plot(panel.fit.xs, panel.fit.ys, color="black", linewidth=1.2,
                label=f"fit through {', '.join(panel.fit.baselines)} (logit)")
    on_curve = {id(p) for c in panel.curves for p in c.points}
    for curve in panel.curves:
        colour = colours[curve.label]
        ax.plot([p.x for p in curve.points], [p.y for p in curve.points], color=colour, marker="o", markersize=5,
                linewidth=1.5, label=curve.label)
        for p in curve.points:
            ax.annotate(f"α={p.alpha:g}", (p.x, p.y), textcoords="offset points", xytext=(4, -10),
                        fontsize="x-small", color=colour)
    for p in panel.points:
        if id(p) in on_curve:
            continue
        ax.scatter([p.x], [p.y], s=60 if p.baseline else 45, marker="s" if p.baseline else "o",
                   color=colours[p.label], edgecolors="black" if p.baseline else "none", zorder=3, label=p.label)
    ax.set_xlim(*panel.xlim)
    ax.set_ylim(*panel.ylim)
    _logit_axis(ax.xaxis, panel.xlim)
    _logit_axis(ax.yaxis, panel.ylim)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    if panel.name != POOLED:
        ax.set_title(f"held out: {panel.name}" if data.setup == "setup2" else panel.name, fontsize="medium")


def robustness_figure(data, title=None):
    """The figure of :func:`robustness_data`'s result: one axes per panel, one shared legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(data.panels)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = Figure(figsize=(5.2 * cols + 3.8, 4.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False)).ravel()
    names = list(OrderedDict.fromkeys([c.label for p in data.panels for c in p.curves] +
                                      [pt.label for p in data.panels for pt in p.points if pt.alpha is None]))
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for ax, panel in zip(axes, data.panels):
        _draw_panel(ax, data, panel, colours)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles = OrderedDict()
    for ax in axes[:n]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize="small")
    title = title if title is not None else data.title
    if n == 1:
        axes[0].set_title(title)  # a figure title would be centred over the legend too
    else:
        fig.suptitle(title)
    return fig


def plot_robustness(paths, output, baselines=None, every_run=False, per_domain=False, title=None, warnings=None):
    """Read the runs under ``paths``, draw the plot and save it to ``output`` (.png, .pdf or .svg);
    return ``(figure, data)``."""
    ext = os.path.splitext(output)[1].lower().lstrip(".")
    if ext not in OUTPUT_FORMATS:
        raise OptionError(f"--output {output}: expected a file name ending in "
                              f"{', '.join('.' + f for f in OUTPUT_FORMATS)}")
    data = robustness_data(paths, baselines, every_run, per_domain, warnings)
    fig = robustness_figure(data, title)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(output, dpi=120)
    return fig, data


def format_points(data):
    """A plain-text table of the plotted points: panel, label, ID, OOD, effective robustness, runs."""
    rows = [("panel", "point", "ID %", "OOD %", "eff. rob.", "runs")]
    for panel in data.panels:
        for p in panel.points:
            er = "" if p.effective_robustness is None else f"{p.effective_robustness:+.2f}"
            rows.append((panel.name, p.label + (" [baseline]" if p.baseline else ""), f"{p.id_accuracy:.2f}",
                         f"{p.ood_accuracy:.2f}", er, str(p.n_runs)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    for panel in data.panels:
        if panel.fit is not None:
            where = "" if panel.name == POOLED else f" ({panel.name})"
            sign = "-" if panel.fit.intercept < 0 else "+"
            lines.append(f"fit{where}: logit(OOD) = {panel.fit.slope:.4f} * logit(ID) {sign} "
                         f"{abs(panel.fit.intercept):.4f} through {panel.fit.n_points} point(s) of "
                         f"{', '.join(panel.fit.baselines)}")
    return "\n".join(lines)
