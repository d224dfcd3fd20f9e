"""One ``error:`` line for what croft-train reports in one line, under the launcher and the import line.

croft's own errors, an unknown config key or wrong type, and a trainer name Dassl's registry lacks
(:func:`_one_line`): ``croft-dassl`` exits with 2 (config) or 1; under the import line,
:func:`_excepthook` (installed by :func:`~croft.dassl_bridge.install.install`) prints the line
(Python's exit status 1). Other errors keep their traceback.
"""
import difflib
import os
import sys
import traceback

from ..config.merge import ConfigError, get_value
from .names import dassl_names

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CROFT_DIR = os.path.dirname(_PACKAGE_DIR)
#: The launcher's own files: a frame there does not make an error croft's.
_LAUNCHER_FILES = frozenset(os.path.join(_PACKAGE_DIR, name) for name in ("launcher.py", "__main__.py"))

#: ``previous_excepthook`` (the hook :func:`_excepthook` replaced) and ``kept_traceback`` (an error the
#: launcher already judged to keep its traceback).
HOOK_STATE = {}


def _unknown_trainer(exc):
    """The message for Dassl's ``build_trainer`` refusing ``TRAINER.NAME`` (its registry lacks it), else None."""
    if not isinstance(exc, (KeyError, ValueError)):
        return None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_name != "build_trainer" or frame.f_globals.get("__name__") != "dassl.engine.build":
            continue
        registry, cfg = frame.f_globals.get("TRAINER_REGISTRY"), frame.f_locals.get("cfg")
        name = get_value(cfg, "TRAINER.NAME", None) if isinstance(cfg, dict) else None
        if registry is None or not isinstance(name, str) or name in registry.registered_names():
            return None
        names = registry.registered_names()
        ours = sorted((n for n in dassl_names().values() if n in names), key=str.lower)
        others = sorted(n for n in names if n not in ours)
        close = difflib.get_close_matches(name, names, n=1)
        what = f"unknown trainer '{name}'" if name else "no trainer given"
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return (f"{what} (--trainer / TRAINER.NAME); croft's trainers in Dassl: {', '.join(ours)}; "
                f"Dassl's and the script's: {', '.join(others)}{hint}")
    return None


def _passes_through_croft(exc):
    """Whether a frame of croft's code (not the launcher's) is on ``exc``'s traceback."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        code = frame.f_code
        path = os.path.abspath(code.co_filename)
        if (code is not _excepthook.__code__ and path not in _LAUNCHER_FILES
                and path.startswith(_CROFT_DIR + os.sep)):
            return True
    return False


def _one_line(exc):
    """``(line, exit status)`` for the errors croft-train reports in one line, else None (a traceback)."""
    from ..utils.cli import one_line

    message = _unknown_trainer(exc)
    if message is not None:
        return f"error: {message}", 2
    if isinstance(exc, ConfigError) or _passes_through_croft(exc):
        return one_line(exc, usage=ConfigError)
    return None


def _dassl_log_file():
    """The ``log.txt`` that Dassl's ``setup_logger`` tees stdout into, if it did."""
    out = sys.stdout
    if type(out).__module__ == "dassl.utils.logger":
        return getattr(out, "file", None)
    return None


def _report(exc):
    """Print ``exc`` as one ``error:`` line (its traceback to Dassl's log.txt) and return the exit
    status, as croft-train does; None for an error that keeps its traceback (or ``CROFT_TRACEBACK=1``)."""
    if os.environ.get("CROFT_TRACEBACK") or not isinstance(exc, Exception):
        return None
    found = _one_line(exc)
    if found is None:
        return None
    line, status = found
    log = _dassl_log_file()
    if log is not None:
        try:
            log.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + line + "\n")
            log.flush()
        except (OSError, ValueError):
            pass
    sys.stdout.flush()
    print(line, file=sys.stderr)
    return status


def _excepthook(exc_type, exc, tb):
    """``sys.excepthook`` while the bridge is installed: croft's expected errors in one line (exit status 1)."""
    if exc is HOOK_STATE.get("kept_traceback") or _report(exc) is None:
        HOOK_STATE.get("previous_excepthook", sys.__excepthook__)(exc_type, exc, tb)
