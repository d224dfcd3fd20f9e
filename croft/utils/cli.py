"""One line per expected failure, for every command-line front end and tool.

An expected error (bad file, bad value, missing folder) prints ``error: <message>`` on stderr and
exits without a traceback:

- a *usage* error (a bad config, a bad option: what the user gave) with exit status 2;
- a *plain* error (one whose message is the whole story) with exit status 1;
- any other expected error with exit status 1 and the hint ``(set CROFT_TRACEBACK=1 for the traceback)``.

With ``CROFT_TRACEBACK=1`` every error keeps its traceback. ``sys.exit(run_tool(main))`` wraps a
tool's ``main``; a front end with more than one phase calls :func:`report_error` in each ``except``.
"""
import os
import sys

EXPECTED_ERRORS = (KeyError, ValueError, OSError, RuntimeError, FloatingPointError)
TRACEBACK_HINT = "(set CROFT_TRACEBACK=1 for the traceback)"


def error_message(exc):
    """The message of ``exc`` (a KeyError's own text, not its quoted repr)."""
    return exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)


def wants_traceback():
    return bool(os.environ.get("CROFT_TRACEBACK"))


def one_line(exc, usage=(), plain=(), expected=EXPECTED_ERRORS):
    """``(line, exit status)`` that reports ``exc``, or None when it keeps its traceback (an unexpected
    error, or ``CROFT_TRACEBACK=1``). Usage errors are looked for first, then plain ones."""
    if wants_traceback() or not isinstance(exc, Exception):
        return None
    if isinstance(exc, usage):
        return f"error: {error_message(exc)}", 2
    if isinstance(exc, plain):
        return f"error: {error_message(exc)}", 1
    if isinstance(exc, expected):
        return f"error: {error_message(exc)} {TRACEBACK_HINT}", 1
    return None


def print_error(message, status=1):
    """Print ``error: <message>`` on stderr; return ``status`` (``return print_error(...)`` ends a tool)."""
    print(f"error: {message}", file=sys.stderr)
    return status


def _to_stderr(line):
    print(line, file=sys.stderr)


def report_error(exc, usage=(), plain=(), expected=EXPECTED_ERRORS, write=_to_stderr):
    """Write the line of :func:`one_line` with ``write`` and return its exit status; raise ``exc`` again
    when it keeps its traceback. Call it in the ``except`` block that caught ``exc``."""
    found = one_line(exc, usage, plain, expected)
    if found is None:
        raise exc
    write(found[0])
    return found[1]


def run_tool(main, argv=None, usage=(), plain=(), expected=EXPECTED_ERRORS, write=_to_stderr):
    """``main(argv)``, its errors reported by :func:`report_error`; returns the exit status."""
    try:
        return main(argv)
    except Exception as exc:
        return report_error(exc, usage, plain, expected, write)
