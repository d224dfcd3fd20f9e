"""Run folders under a grid's output that are none of the planned runs: other settings, other points.

``croft-sweep status GRID --root DATA`` after ``croft-sweep run GRID --root DATA --backbone tiny`` plans
the default settings' folders (other fingerprints, other folder names) and would show every run
pending. :func:`find_other_runs` walks the grids' output folders for run folders the plan does not
name; :func:`other_settings` compares each with the run of the same grid point (the folder key
without its hashes, :func:`croft.sweep.identity.plain_key`) and says, as ``croft-sweep`` options, with
which settings it ran (``--backbone tiny --pretrained none --set OPTIM.MAX_EPOCH 1``).
"""
import os
import shlex
from collections import Counter, OrderedDict

from . import state as st
from .identity import format_value, plain_key

#: Config keys with a ``croft-sweep`` option of their own.
_FLAGS = OrderedDict([("DATASET.ROOT", "--root"), ("MODEL.BACKBONE.NAME", "--backbone"),
                      ("MODEL.BACKBONE.PRETRAINED", "--pretrained")])
_MARKERS = (st.RESULTS_FILE, st.FINGERPRINT_FILE)


class OtherRun:
    def __init__(self, key, out_dir, state, values):
        self.key = key
        self.out_dir = out_dir
        self.state = state
        self.values = values  # the fingerprint values it recorded (None: none readable)
        self.settings = None  # filled by other_settings: options text, or None for no run of these grids


def _state_and_values(out_dir):
    from ..results.io import read_results_json

    holder = st.running_note(out_dir)
    values = None
    state = None
    try:
        results = read_results_json(out_dir)
        values = results.get("fingerprint_values")
        state = st.DONE
    except (ValueError, OSError):
        pass
    if values is None:
        stored = st._read_json(os.path.join(out_dir, st.FINGERPRINT_FILE))
        values = stored.get("values") if isinstance(stored, dict) else None
    if state is None:
        state = st.RUNNING if holder else st.FAILED if os.path.isfile(os.path.join(out_dir, st.ERROR_FILE)) \
            else st.INCOMPLETE
    return state, values if isinstance(values, dict) else None


def find_other_runs(plan, output):
    """``{grid root: [OtherRun]}``: run folders (a ``results.json`` or ``fingerprint.json``) under the plan's
    grid folders that are none of its runs with these settings (selected or not); dot-folders skipped."""
    output = os.path.abspath(output)
    known = {os.path.normpath(spec.out_dir) for spec in plan.every.values()}
    known.update(os.path.normpath(spec.out_dir) for spec in plan.runs)
    found = OrderedDict()
    for root in OrderedDict.fromkeys(os.path.normpath(r) for r in plan.folders):
        others = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if folder in known or not any(m in files for m in _MARKERS):
                continue
            state, values = _state_and_values(folder)
            others.append(OtherRun(os.path.relpath(folder, output).replace(os.sep, "/"), folder, state, values))
        if others:
            found[root] = others
    return found


def _option(key, value):
    if key in _FLAGS:
        return [_FLAGS[key], str(value)]
    return ["--set", key, format_value(value)]


def settings_options(planned, stored):
    """The ``croft-sweep`` options that turn the planned run's fingerprint values into the stored ones
    (text), or a description where no option does (other weights in the same file, an older croft)."""
    from ..engine.fingerprint import differences

    diffs = differences({"values": planned}, {"values": stored})
    changed = {k for k, _, _ in diffs}
    first, rest, notes = [], [], []
    for key, _, value in diffs:
        if key == "weights":
            if "MODEL.BACKBONE.PRETRAINED" not in changed:
                notes.append("other weights under the same MODEL.BACKBONE.PRETRAINED")
        elif key == "fingerprint_version":
            notes.append(f"an older croft (fingerprint_version {value})")
        elif key in _FLAGS:
            first.append((list(_FLAGS).index(key), _option(key, value)))
        else:
            rest.append(_option(key, value))
    words = [w for _, option in sorted(first) for w in option] + [w for option in rest for w in option]
    text = " ".join(shlex.quote(w) for w in words)
    return "; ".join([text] * bool(text) + notes) or "the same values (another fingerprint version)"


def other_settings(plan, others):
    """Fill each :class:`OtherRun`'s ``settings``: options against the same grid point's planned run."""
    for run in others:
        spec = plan.every.get(plain_key(run.key))
        if spec is not None and spec.values is not None and run.values is not None:
            run.settings = settings_options(spec.values, run.values)
    return others


def summary_lines(plan, output, listing=False):
    """Lines for ``status`` / ``list``: the run folders of the grids' output with other settings, grouped by
    the options that select them (``listing``: one line per folder too)."""
    lines = []
    for root, others in find_other_runs(plan, output).items():
        groups = OrderedDict()
        for run in other_settings(plan, others):
            groups.setdefault(run.settings, []).append(run)
        for settings, runs in groups.items():
            counts = Counter(r.state for r in runs)
            states = ", ".join(f"{counts[s]} {s}" for s in st.STATES if counts[s])
            if settings is None:
                lines.append(f"plus {states} run(s) under {root} that are no run of these grid(s) (other axis "
                             "values, trainer configs or grids)")
            else:
                lines.append(f"plus {states} run(s) of these grid(s) with other settings: {settings}")
            if listing:
                lines.extend(f"  {r.state:<10} {r.key}" for r in runs)
    if lines:
        lines.append("(status, list and collect show a grid's runs with the settings given on their command line)")
    return lines


__all__ = ["find_other_runs", "other_settings", "settings_options", "summary_lines", "OtherRun"]
