"""Run results: results.json / scores.npz I/O, the results table and the energy plots.

- :mod:`croft.results.io`: ``write_results_json``, ``read_results_json``, ``save_scores``,
  ``load_scores`` (atomic writes, validated reads).
- :mod:`croft.results.collect`: ``collect(root, select=None)`` and ``format_table(rows, fmt)``.
- :mod:`croft.results.plots`: ``plot_run(scores, out_png)`` and ``plot_runs(run_dirs, out_png)``
  (imported lazily, so that reading results does not import matplotlib).
"""
from .collect import collect, format_table
from .io import load_scores, read_results_json, save_scores, write_results_json

__all__ = ["collect", "format_table", "load_scores", "read_results_json", "save_scores",
           "write_results_json", "plot_run", "plot_runs"]


def __getattr__(name):
    if name in ("plot_run", "plot_runs"):
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
