"""Training curves from the per-epoch records of ``OUTPUT_DIR/metrics.jsonl``.

Each line of ``metrics.jsonl`` is one JSON object per trained epoch (docs/results-schema.md §4)::

    {"epoch": 1, "lr": 0.002, "train": {"loss": 1.23, "acc": 45.0, ...}, "val_accuracy": 50.0, "epoch_s": 1.7}

Reading is tolerant, because the file is appended to while a run trains: a last line cut short
(a run still writing, or killed while writing) is skipped with a warning naming the file and the
line; so are other lines that are not a JSON object with an integer ``epoch``. An epoch that
appears twice keeps its later record. A file without any usable record is an error naming the file.

A *metric name* is looked up as a top-level key first (``lr``, ``val_accuracy``, ``epoch_s``),
then in ``train`` (``loss``, ``acc`` and a trainer's other meters, e.g. CRoFT's loss terms);
``train.loss`` names a ``train`` entry explicitly. Values that are null, NaN or not numbers are
left out of the curves (``val_accuracy`` is null for epochs without validation).

:func:`curve_series` returns what :func:`plot_curves` draws, and :func:`curves_figure` the figure it saves.
Figures use matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), like
:mod:`croft.results.plots`; matplotlib is imported only when plotting.
"""
import json
import math
import numbers
import os
from collections import OrderedDict

from ..utils.layout import METRICS_FILE

__all__ = ["METRICS_FILE", "DEFAULT_METRICS", "metrics_path", "read_metrics", "metric_value",
           "available_metrics", "run_labels", "load_runs", "curve_series", "curves_figure", "plot_curves"]

#: The panels drawn by default (those with at least one value in some run).
DEFAULT_METRICS = ("loss", "acc", "lr", "val_accuracy")
_NOT_METRICS = ("epoch", "train")


def metrics_path(run):
    """``run/metrics.jsonl`` for a run folder; a file path is returned as it is."""
    return os.path.join(run, METRICS_FILE) if os.path.isdir(run) else run


def _number(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _epoch(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def read_metrics(path, warnings=None):
    """The records of one ``metrics.jsonl`` (a file or a run folder), sorted by epoch.

    Skipped lines add a warning naming the file and the line to ``warnings`` (a list) when given.
    Raises FileNotFoundError naming the file when it does not exist, and ValueError naming the
    file when it cannot be read or holds no usable record.
    """
    path = metrics_path(path)
    warnings = warnings if warnings is not None else []
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    last = numbered[-1][0] if numbered else None
    by_epoch, repeated = OrderedDict(), []
    for lineno, line in numbered:
        try:
            record = json.loads(line)
        except ValueError:
            if lineno == last:
                warnings.append(f"{path}:{lineno}: truncated last line ignored (a run still writing, or killed "
                                "while writing)")
            else:
                warnings.append(f"{path}:{lineno}: not valid JSON; line ignored")
            continue
        if not isinstance(record, dict):
            warnings.append(f"{path}:{lineno}: not a JSON object; line ignored")
            continue
        epoch = _epoch(record.get("epoch"))
        if epoch is None:
            warnings.append(f"{path}:{lineno}: no integer 'epoch'; line ignored")
            continue
        if not isinstance(record.get("train", {}), dict):
            warnings.append(f"{path}:{lineno}: 'train' is not an object; its values are ignored")
            record = dict(record, train={})
        if epoch in by_epoch:
            repeated.append(epoch)
        by_epoch[epoch] = dict(record, epoch=epoch)
    if repeated:
        warnings.append(f"{path}: epoch(s) {', '.join(str(e) for e in sorted(set(repeated)))} appear more than once; "
                        "the later record is used")
    if not by_epoch:
        what = f"{len(numbered)} non-empty line(s)" if numbered else "the file is empty"
        raise ValueError(f"{path}: no readable per-epoch record ({what})")
    return [by_epoch[e] for e in sorted(by_epoch)]


def metric_value(record, name):
    """The finite value of metric ``name`` in one record, or None (see the module docstring)."""
    if name.startswith("train."):
        value = (record.get("train") or {}).get(name[len("train."):])
    elif name in record and name not in _NOT_METRICS:
        value = record[name]
    else:
        value = (record.get("train") or {}).get(name)
    return _number(value)


def available_metrics(runs):
    """Metric names with at least one value: ``train`` meters first (in file order), then top-level keys.

    A ``train`` meter whose name is also a top-level key is named ``train.<meter>``.
    """
    top, train, has_value = OrderedDict(), OrderedDict(), set()
    for _, records in runs:
        for record in records:
            for k, v in record.items():
                if k not in _NOT_METRICS:
                    top[k] = None
                    if _number(v) is not None:
                        has_value.add(("top", k))
            for k, v in (record.get("train") or {}).items():
                train[k] = None
                if _number(v) is not None:
                    has_value.add(("train", k))
    names = [f"train.{k}" if k in top else k for k in train if ("train", k) in has_value]
    return names + [k for k in top if ("top", k) in has_value]


def run_labels(run_dirs):
    """Short distinct labels: the run folders without their common leading folders."""
    paths = [os.path.normpath(os.path.abspath(os.path.dirname(d) or "." if os.path.isfile(d) else d))
             for d in run_dirs]
    if len(paths) == 1:
        return [os.path.normpath(run_dirs[0])]
    parts = [p.split(os.sep) for p in paths]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    labels = ["/".join(p[common:]) for p in parts]
    if len(set(labels)) < len(labels):  # the same folder twice
        labels = [f"{label} ({i + 1})" for i, label in enumerate(labels)]
    return labels


def load_runs(run_dirs, warnings=None):
    """``[(label, records)]`` of each run folder (or metrics.jsonl file); errors as :func:`read_metrics`."""
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ValueError("no run folders given")
    for run in run_dirs:
        if not os.path.exists(run):
            raise FileNotFoundError(f"run folder {run} does not exist")
        if os.path.isdir(run) and not os.path.isfile(metrics_path(run)):
            raise FileNotFoundError(f"run folder {run} has no {METRICS_FILE} (written per epoch by training)")
    records = [read_metrics(run, warnings) for run in run_dirs]
    return list(zip(run_labels(run_dirs), records))


def curve_series(runs, metrics=None):
    """``{metric: [(run label, epochs, values)]}``: what :func:`plot_curves` draws, one line per run.

    ``runs``: ``[(label, records)]`` (:func:`load_runs`). ``metrics``: names (a list or a
    comma-separated string), ``"all"`` for every available metric, or None for
    :data:`DEFAULT_METRICS`. With None or ``"all"`` only metrics with values appear; explicitly
    named metrics always appear (an empty list when no run has a value). A run contributes a line
    only where it has values; epochs without a value (e.g. ``val_accuracy`` null) are left out.
    """
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    explicit = True
    if metrics is None:
        explicit, metrics = False, list(DEFAULT_METRICS)
    elif "all" in metrics:
        explicit, metrics = False, available_metrics(runs)
    series = OrderedDict()
    for name in OrderedDict.fromkeys(metrics):
        lines = []
        for label, records in runs:
            points = [(r["epoch"], metric_value(r, name)) for r in records]
            points = [(e, v) for e, v in points if v is not None]
            if points:
                lines.append((label, [e for e, _ in points], [v for _, v in points]))
        if lines or explicit:
            series[name] = lines
    return series


def curves_figure(series, title=None, labels=None):
    """The matplotlib ``Figure`` of :func:`plot_curves`: one panel per metric, one line per run.

    A run keeps its colour in every panel (``labels`` fixes the order; default: first appearance).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not series:
        raise ValueError("plot_curves: no metric to draw")
    if labels is None:
        labels = list(OrderedDict.fromkeys(label for lines in series.values() for label, _, _ in lines))
    colour = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    n = len(series)
    ncols = min(n, 3)
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, lines) in zip(axes, series.items()):
        for label, epochs, values in lines:
            ax.plot(epochs, values, color=colour.get(label, "0.3"), linewidth=1.5,
                    marker="o" if len(epochs) <= 40 else None, markersize=3, label=label)
        if not lines:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="0.4")
        values = [v for _, _, vs in lines for v in vs]
        if name == "lr" and values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[:n]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        ordered = [label for label in labels if label in handles]
        fig.legend([handles[label] for label in ordered], ordered, loc="outside lower center",
                   ncols=min(len(ordered), 3), fontsize="small")
    if title:
        fig.suptitle(title)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(series, out_png, title=None, labels=None):
    """Draw :func:`curves_figure` into ``out_png``; returns ``out_png``."""
    fig = curves_figure(series, title=title, labels=labels)
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return out_png
