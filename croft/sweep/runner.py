"""The in-process runner: many runs one after another in one Python process, each through ``croft.train.main``.

A run is exactly the command line ``python -m croft.train <argv>`` (same config, same seeding, same
files; tested bit for bit against subprocess runs), minus the interpreter start-up and the imports;
with :func:`croft.engine.shared.enable_sharing` later runs also reuse the frozen backbone and the
image features already in memory. A run that fails is recorded (``error.txt``: its one-line error;
``log.txt``: the traceback) and the runner goes on with the next one.

Each run claims its folder first (:func:`croft.engine.run_folder.claim_run_folder`): a run that another
process is executing (a second ``croft-sweep``, another SLURM job) is reported as ``running`` and left
to it, so two sweeps over one grid execute every run once.

:func:`run_payload` is what every launcher executes: in this process (``--launcher local``), in each
worker process (``--workers N``) and in each submitit job.
"""
import contextlib
import io
import logging
import os
import sys
import time
import traceback

from . import state as st
from .identity import RunSpec

SKIPPED = "skipped"  # not run: its training run is not done (a stage), or done meanwhile


class Outcome:
    FIELDS = ("key", "state", "seconds", "message", "accuracy", "stage", "out_dir")

    def __init__(self, **kw):
        for name in self.FIELDS:
            setattr(self, name, kw.get(name))

    def to_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


class _ErrorTap:
    """A console stream that keeps the ``error: ...`` lines written to it (and forwards to ``echo``)."""

    encoding = "utf-8"

    def __init__(self, echo=None):
        self.echo = echo
        self.error_lines = []
        self._partial = ""

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        raise io.UnsupportedOperation("fileno")

    def write(self, text):
        if self.echo is not None:
            self.echo.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._keep(line)
        if len(self._partial) > 65536:  # a progress bar that never ends its line
            self._partial = self._partial[-4096:]
        return len(text)

    def _keep(self, line):
        line = line.strip().split("\r")[-1].strip()
        if line.startswith("error:"):
            self.error_lines.append(line)

    def flush(self):
        if self.echo is not None:
            self.echo.flush()

    def last_error(self):
        if self._partial:
            self._keep(self._partial)
            self._partial = ""
        return self.error_lines[-1] if self.error_lines else ""


def enable_sharing():
    """Share frozen backbones and features between the runs of this process."""
    from ..engine.shared import enable_sharing as enable

    enable(max_backbones=2, max_feature_mb=2048)


def _log_traceback(out_dir, text):
    """Append a traceback to the run's log (the croft logger's file, else ``log.txt``)."""
    logger = logging.getLogger("croft")
    for handler in logger.handlers:
        name = getattr(handler, "baseFilename", "")
        if name and os.path.dirname(os.path.abspath(name)) == os.path.abspath(out_dir):
            handler.stream.write(text if text.endswith("\n") else text + "\n")
            handler.flush()
            return
    os.makedirs(out_dir, exist_ok=True)
    from ..utils.layout import LOG_FILE

    with open(os.path.join(out_dir, LOG_FILE), "a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def _reset_logger():
    from ..utils.logging import setup_logger

    setup_logger()  # closes the finished run's log file


def execute(spec, verbose=False):
    """Run one :class:`RunSpec` here; returns its :class:`Outcome` (never raises for a failed run)."""
    from ..engine.run_folder import RunFolderBusy, claim_run_folder, describe_holder

    base = dict(key=spec.key, stage=spec.stage, out_dir=spec.out_dir)
    results, _ = st.read_done(spec)
    if results is not None:
        return Outcome(state=st.DONE, seconds=0.0, message="already done", accuracy=st.headline(results), **base)
    if spec.parent_key is not None and _training_fingerprint(spec.parent_dir) != spec.training_fingerprint:
        holder = st.running_note(spec.parent_dir)
        if holder:
            return Outcome(state=st.RUNNING, seconds=0.0, accuracy=None, **base,
                           message=f"its training run is running in another process ({holder})")
        return Outcome(state=SKIPPED, seconds=0.0, message="its training run has no results", accuracy=None, **base)
    try:
        claim = claim_run_folder(spec.out_dir)
    except RunFolderBusy as exc:
        return Outcome(state=st.RUNNING, seconds=0.0, accuracy=None, **base,
                       message=f"running in another process ({describe_holder(exc.holder)})")
    except OSError as exc:  # the folder cannot be made or written: nothing can be recorded in it either
        return Outcome(state=st.FAILED, seconds=0.0, accuracy=None, **base,
                       message=f"error: cannot use the run folder {spec.out_dir}: {exc.strerror or exc}")
    with claim:
        results, _ = st.read_done(spec)  # finished by another process between the look above and the claim
        if results is not None:
            return Outcome(state=st.DONE, seconds=0.0, message="already done", accuracy=st.headline(results),
                           **base)
        return _execute_claimed(spec, verbose, base)


def _execute_claimed(spec, verbose, base):
    started = time.time()
    st.clear_error(spec.out_dir)
    restart = st.needs_restart(spec)
    tap = _ErrorTap(echo=sys.__stdout__ if verbose else None)
    message = ""
    argv = spec.argv(restart=restart)
    saved_argv = sys.argv
    try:
        from ..train import main

        sys.argv = ["croft-train", *argv]  # the log's "Command:" line names the run, not the sweep
        with contextlib.redirect_stdout(tap), contextlib.redirect_stderr(tap):
            rc = main(argv)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an unexpected error (or SystemExit) must not end the sweep
        rc = 1
        message = f"error: {type(exc).__name__}: {exc}".splitlines()[0]
        _log_traceback(spec.out_dir, f"{message}\n{traceback.format_exc()}")
    finally:
        sys.argv = saved_argv
        _reset_logger()
    seconds = time.time() - started
    results, why = st.read_done(spec)
    if results is not None:
        return Outcome(state=st.DONE, seconds=seconds, message="", accuracy=st.headline(results), **base)
    if not message:
        message = tap.last_error() or f"error: croft-train exited with status {rc} without a valid results.json ({why})"
    st.write_error(spec.out_dir, message)
    return Outcome(state=st.FAILED, seconds=seconds, message=message, accuracy=None, **base)


def _training_fingerprint(run_dir):
    """The training fingerprint of a finished run's results.json, or None."""
    from ..results.io import read_results_json

    try:
        return read_results_json(run_dir).get("training_fingerprint")
    except (ValueError, OSError):
        return None


def run_chains(chains, emit, verbose=False, sharing=True):
    """Execute chains (a training run, then its stages) in order; ``emit(outcome dict)`` after each run."""
    if sharing:
        enable_sharing()
    for chain in chains:
        for spec in chain:
            spec = spec if isinstance(spec, RunSpec) else RunSpec.from_dict(spec)
            st.write_stage_file(spec)
            emit(execute(spec, verbose=verbose).to_dict())


def run_payload(payload, emit):
    """Launcher entry point: ``payload = {"chains": [[spec dict, ...], ...], "verbose": bool}``."""
    run_chains(payload["chains"], emit, verbose=payload.get("verbose", False), sharing=payload.get("sharing", True))
