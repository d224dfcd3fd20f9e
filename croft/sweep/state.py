"""The state of a run folder, read from disk (nothing else is trusted).

- **done**: ``results.json`` is valid (:func:`croft.results.io.read_results_json`) and its ``fingerprint``
  equals the run's; a 0-byte, truncated or foreign ``results.json`` is not done.
- **running**: a live process holds the folder's claim (``.run.lock``, :mod:`croft.engine.run_folder`):
  another ``croft-sweep``, a SLURM job or a ``croft-train`` is executing it now.
- **queued**: submitted to SLURM / submitit (``submitted.json``) and that job is still alive.
- **failed**: ``error.txt`` holds the one-line error of the last attempt (``log.txt`` has the traceback).
- **incomplete**: checkpoints or ``last.pth.tar`` (resumable), or an unusable ``results.json``.
- **pending**: nothing yet.

Files the sweep writes into a run folder: ``error.txt`` (failed attempt), ``stage.json`` (stages,
read by the results table, :mod:`croft.results.stages`) and ``submitted.json`` (submitit job).
"""
import json
import os
import shutil
import subprocess
import time

from ..utils.layout import (ERROR_FILE, FINGERPRINT_FILE, RESULTS_FILE, STAGE_FILE, SUBMITTED_FILE,  # noqa: F401
                              has_checkpoints)

DONE, RUNNING, QUEUED, FAILED, INCOMPLETE, PENDING = "done", "running", "queued", "failed", "incomplete", "pending"
STATES = (DONE, RUNNING, QUEUED, FAILED, INCOMPLETE, PENDING)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_done(spec):
    """``(results dict or None, why not done)``."""
    from ..results.io import read_results_json

    path = os.path.join(spec.out_dir, RESULTS_FILE)
    if not os.path.exists(path):
        return None, "no results.json"
    try:
        results = read_results_json(path)
    except (ValueError, OSError) as exc:
        return None, f"results.json unusable ({str(exc).replace(path + ': ', '')[:120]})"
    if results.get("fingerprint") != spec.fingerprint:
        return None, (f"results.json of other settings (fingerprint {str(results.get('fingerprint'))[:12]}, "
                      f"expected {spec.fingerprint[:12]})")
    return results, ""


def read_error(out_dir):
    """The first line of the run's ``error.txt`` ("" when absent); bytes that are not UTF-8 are read as
    replacement characters, so a damaged file never stops the sweep."""
    try:
        with open(os.path.join(out_dir, ERROR_FILE), encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
    except OSError:
        return ""
    return text.splitlines()[0] if text else ""


def running_note(out_dir):
    """``"pid 123 on host h since ..."`` when a live process holds the run folder's claim, else ""."""
    from ..engine.run_folder import describe_holder, run_folder_holder

    holder = run_folder_holder(out_dir)
    return "" if holder is None else describe_holder(holder)


def run_state(spec, active_jobs=None):
    """``(state, note)`` of a run. ``active_jobs``: ids of live submitit jobs (None: do not check)."""
    results, why = read_done(spec)
    if results is not None:
        return DONE, ""
    holder = running_note(spec.out_dir)
    if holder:
        return RUNNING, holder
    if active_jobs is not None:
        marker, _ = read_submitted(spec.out_dir)
        if marker and str(marker.get("job_id")) in active_jobs:
            return QUEUED, f"job {marker.get('job_id')}"
    if os.path.isfile(os.path.join(spec.out_dir, ERROR_FILE)):
        return FAILED, read_error(spec.out_dir) or ERROR_FILE
    if os.path.exists(os.path.join(spec.out_dir, RESULTS_FILE)):
        return INCOMPLETE, why
    if has_checkpoints(spec.out_dir):
        return INCOMPLETE, "checkpoints, no results.json"
    return PENDING, ""


def needs_restart(spec):
    """Whether the folder holds files croft-train would refuse to resume from: results or checkpoints
    without a fingerprint, or with another one (``--restart`` moves them to ``.old/``, deleting nothing)."""
    out = spec.out_dir
    has_results = os.path.exists(os.path.join(out, RESULTS_FILE))
    if not (has_results or has_checkpoints(out)):
        return False
    stored = _read_json(os.path.join(out, FINGERPRINT_FILE))
    if not isinstance(stored, dict) or stored.get("hash") != spec.fingerprint:
        return True
    if has_results:
        results, _ = read_done(spec)
        return results is None  # an unusable or foreign results.json next to our own fingerprint
    return False


def headline(results):
    """The closed-set test accuracy of a results dict (None when absent)."""
    value = (results or {}).get("closed_set", {}).get("test_accuracy")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------------------
# writes

def write_json(path, obj):
    from ..utils.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_error(out_dir, message):
    from ..utils.atomic import atomic_write_text

    os.makedirs(out_dir, exist_ok=True)
    line = " ".join(str(message).split()) or "error: the run failed"
    atomic_write_text(os.path.join(out_dir, ERROR_FILE), line + "\n")


def clear_error(out_dir):
    path = os.path.join(out_dir, ERROR_FILE)
    if os.path.exists(path):
        os.remove(path)


def stage_record(spec):
    """``stage.json`` of a run with stages: an evaluation stage names the training run it evaluates and what the
    table takes from it; a training run lists its stages (folder, fingerprint, sections). None: no stages.
    The file's fields are defined in :mod:`croft.results.stages`, which the results table reads them with."""
    from ..results.stages import evaluation_stage_record, training_stage_record

    if spec.parent_key is not None:
        return evaluation_stage_record(spec.stage, os.path.relpath(spec.parent_dir, spec.out_dir),
                                       spec.training_fingerprint, spec.fingerprint, spec.uses, spec.stage_overrides)
    if spec.stages:
        return training_stage_record(spec.stage, spec.fingerprint, spec.stages)
    return None


def write_stage_file(spec):
    """Write the run's ``stage.json`` (when it has stages) unless it already says the same."""
    record = stage_record(spec)
    if record is None:
        return
    record = json.loads(json.dumps(record, default=str))
    path = os.path.join(spec.out_dir, STAGE_FILE)
    if _read_json(path) != record:
        os.makedirs(spec.out_dir, exist_ok=True)
        write_json(path, record)


def write_submitted(out_dir, job_id, folder, cluster):
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, SUBMITTED_FILE),
               {"job_id": str(job_id), "folder": str(folder), "cluster": cluster,
                "time": time.strftime("%Y-%m-%d %H:%M:%S")})


def read_submitted(out_dir):
    """``(marker dict or None, problem)``: a ``submitted.json`` that is not the JSON object croft-sweep
    writes is ignored (the run does not count as queued), and ``problem`` says why in one line."""
    path = os.path.join(out_dir, SUBMITTED_FILE)
    if not os.path.exists(path):
        return None, ""
    marker = _read_json(path)
    if isinstance(marker, dict):
        return marker, ""
    what = "not valid JSON" if marker is None else f"a JSON {type(marker).__name__}"
    return None, (f"{path}: expected a JSON object {{\"job_id\": ..., \"cluster\": ...}} as croft-sweep writes, "
                  f"found {what}; ignored (the run does not count as queued)")


def active_jobs(specs, warn=None):
    """Ids of the live jobs named by the runs' ``submitted.json`` (SLURM via squeue, local by pid); None if
    no run has one. ``warn(line)`` hears of each unusable ``submitted.json``."""
    markers = []
    for spec in specs:
        marker, problem = read_submitted(spec.out_dir)
        if problem and warn is not None:
            warn(problem)
        if marker:
            markers.append(marker)
    if not markers:
        return None
    alive = set()
    if any(m.get("cluster") == "slurm" for m in markers) and shutil.which("squeue"):
        try:
            out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=60)
            alive.update(line.strip() for line in out.stdout.splitlines() if line.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    for m in markers:
        if m.get("cluster") == "local" and _local_job_alive(m.get("job_id")):
            alive.add(str(m.get("job_id")))
    return alive


def _local_job_alive(job_id):
    """A LocalExecutor job id is the pid of its process: alive, and (where /proc tells) a submitit process."""
    try:
        pid = int(job_id)
        os.kill(pid, 0)
    except (OSError, ValueError, TypeError):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"submitit" in f.read()
    except OSError:
        return True


def clear_submitted(out_dir):
    path = os.path.join(out_dir, SUBMITTED_FILE)
    if os.path.exists(path):
        os.remove(path)
