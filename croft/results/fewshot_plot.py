"""CoOp's few-shot figure: test accuracy vs shots per dataset, plus the average over datasets; one line per method.

Drawn from a :class:`~croft.results.fewshot_tables.FewshotTable`, so the figure shows exactly the table's means.
The shot axis is logarithmic as in CoOp's figure: 1, 2, 4, 8, 16 evenly spaced (:func:`shot_position`), and a
method that trains nothing (zero-shot CLIP) is one marker at 0 shots, left of them. The **Average** panel comes
first and draws only rows that have every dataset of the table (an average over fewer is not comparable).
Figures are drawn on matplotlib's Agg canvas directly, so no display is needed and pyplot's backend is untouched.
"""
import math
import os

from ..utils.atomic import atomic_write
from .fewshot_tables import AVERAGE

__all__ = ["shot_position", "panels", "plot_fewshot", "save_fewshot"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def shot_position(shots):
    """x of a shot count: 0 for 0 shots, else log2(shots) + 1 (1 -> 1, 2 -> 2, 4 -> 3, 16 -> 5)."""
    return 0.0 if not shots or shots <= 0 else math.log2(shots) + 1.0


def panels(table):
    """``[(title, {method: [(shots, mean)]})]``: Average first, then each dataset column."""
    return [(AVERAGE, table.series(AVERAGE))] + [(column, table.series(column)) for column in table.columns]


def plot_fewshot(table, columns=3, title=None):
    """A matplotlib ``Figure``: one panel per :func:`panels` entry, each method one line (same colour and
    marker in every panel). Raises ValueError when the table has no rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not table.rows:
        raise ValueError("the few-shot table has no rows: nothing to plot")
    methods = table.methods()
    style = {m: (f"C{i % 10}", _MARKERS[i % len(_MARKERS)]) for i, m in enumerate(methods)}
    items = panels(table)
    ncols = max(1, min(columns, len(items)))
    nrows = math.ceil(len(items) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.4 * nrows))
    FigureCanvasAgg(fig)
    shots = sorted({row["shots"] for row in table.rows if row["shots"] is not None})
    ticks = [shot_position(s) for s in shots]
    for i, (name, series) in enumerate(items):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for method in methods:
            points = sorted(series.get(method, []), key=lambda p: p[0])
            if not points:
                continue
            colour, marker = style[method]
            xs = [shot_position(s) for s, _ in points]
            ys = [v for _, v in points]
            if len(points) == 1 and points[0][0] == 0:
                ax.plot(xs, ys, linestyle="none", marker="*", markersize=12, color=colour, label=method)
            else:
                ax.plot(xs, ys, marker=marker, color=colour, label=method)
        ax.set_title("Average over datasets" if name == AVERAGE else name)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(s) for s in shots])
        ax.set_xlabel("shots per class")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    handles, labels = [], []
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
    if title:
        fig.suptitle(title)
    legend_in = 0.3 + 0.25 * math.ceil(len(labels) / 4)  # the legend's height below the panels, in inches
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 0.97 if title else 1))
    return fig


def save_fewshot(table, path, columns=3, title=None, dpi=120):
    """Draw :func:`plot_fewshot` and write it to ``path`` atomically (PNG, PDF, SVG by the extension); return the
    figure."""
    fig = plot_fewshot(table, columns=columns, title=title)
    fmt = os.path.splitext(path)[1][1:].lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), binary=True)
    return fig
