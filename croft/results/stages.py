"""Evaluation stages (``croft-sweep``, docs/sweeps.md §4): the content of the ``stage.json`` file
(:data:`~croft.utils.layout.STAGE_FILE`), written by the sweep (:mod:`croft.sweep.state`) and read by the results
table, defined once here.

A training run's ``stage.json`` lists its evaluation stages (:func:`training_stage_record`); an evaluation
stage's (an ``--eval-only`` run of that model with its own overrides, e.g. CRoFT's Setup-II open-set evaluation
at ``EVAL_RATIO 0.5``) names its training run (:func:`evaluation_stage_record`). The stage's results form no row
of their own: each section it provides (``use``: ``open_set`` and/or ``closed_set``) replaces that section of
its training run, checked by the training fingerprint (:func:`combine_stages`); while a stage has no results
yet, that section of its training run is left out (never taken from the training run's own evaluation). A
stage with ``use: []`` is read by a table of its own (base-to-new, :mod:`croft.results.fewshot_tables`).
"""
import json
import os
from collections import OrderedDict, defaultdict

from .values import format_value, normalise

__all__ = ["STAGE_SECTIONS", "DEFAULT_USE", "training_stage_record", "evaluation_stage_record",
           "read_stage_file", "combine_stages", "stage_identity", "stage_notes"]

#: The sections of results.json an evaluation stage may provide to its training run.
STAGE_SECTIONS = ("open_set", "closed_set")
#: What a stage provides when its grid entry (or stage.json) names none.
DEFAULT_USE = ("open_set",)


def training_stage_record(stage, fingerprint, stages):
    """``stage.json`` of a training run: ``stages`` maps each stage name to ``{"folder"`` (relative to the training
    run), ``"fingerprint", "use"`` (the sections it provides), ``"overrides"}``."""
    return {"stage": stage, "fingerprint": fingerprint, "stages": stages}


def evaluation_stage_record(stage, stage_of, training_fingerprint, fingerprint, use, overrides):
    """``stage.json`` of an evaluation stage: ``stage_of`` is its training run's folder, relative to its own."""
    return {"stage": stage, "stage_of": stage_of, "training_fingerprint": training_fingerprint,
            "fingerprint": fingerprint, "use": list(use or []), "overrides": dict(overrides or {})}


def read_stage_file(path, warnings):
    """The object of a ``stage.json``, or None with a warning naming ``path`` when it is not one."""
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
    return ", ".join(f"{k} {format_value(normalise(v))}" for k, v in overrides.items())


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
    """Fold evaluation-stage results into their training runs; return the runs that form rows (training
    runs and runs without stages).

    ``runs``: :class:`~croft.results.records.RunRecord` objects; ``stage_files``: ``{normalised absolute
    run folder: stage.json object}``. Each training run gets ``stage_plan`` (every stage its stage.json
    names, with or without results) and ``stages`` (those whose sections it took), as
    ``(section, stage name, overrides text)``.
    """
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
            sections = [u for u in (DEFAULT_USE if use is None else use) if u in STAGE_SECTIONS]
            stage_folder = os.path.normpath(os.path.join(folder, str(info.get("folder", ""))))
            if not sections:  # read by a table of its own
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


def stage_identity(plan):
    """The stages a run takes sections from (its ``stage_plan``), as one value of its identity."""
    return "; ".join(f"{section} from {name}" + (f" ({text})" if text else "") for section, name, text in sorted(plan))


def stage_notes(rows):
    """Notes that say which sections of the rows came from which evaluation stage."""
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
